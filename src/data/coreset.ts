// SVIT-style coreset selection: pick N records that cover the most distinct concepts, with
// diminishing returns per concept (gain of a record = Σ over its concepts 1/(1 + times the
// concept is already covered)), while keeping yes/no answers balanced: a record whose answers
// are mostly "yes" may be taken only while selected yes-records <= no-records, and vice versa
// (the constraint lapses when one side runs out). Lazy greedy over per-class heaps; ties go to
// the lower index, so the result is deterministic.

import type { Turn } from './types.ts';

const STOP = new Set(('a an the and or of in on at to is are was were be been this that these those there here what which who whom ' +
  'how many much does do did it its with for from by as into please provide image picture photo shown show answer question ' +
  'using single word phrase describe description region sentence describes box bounding coordinate coordinates yes no not ' +
  'can you your me i we they he she his her them their has have had will would should could about any some all each').split(' '));

/** Lower-case content words (letters, ≥ 3 chars, stop words removed) of all turns, deduplicated. */
export function concepts(turns: readonly Turn[]): string[] {
  const out = new Set<string>();
  for (const t of turns) {
    const text = t.value.replace(/<image>/g, ' ').replace(/<\/?p>/g, ' ').toLowerCase();
    for (const w of text.match(/[a-z][a-z-]*[a-z]/g) ?? []) if (w.length >= 3 && !STOP.has(w)) out.add(w);
  }
  return [...out];
}

export type YesNo = 'yes' | 'no' | 'other';

/** 'yes'/'no' when every gpt answer starts with that word, else 'other'. */
export function yesNoClass(turns: readonly Turn[]): YesNo {
  const ans = turns.filter((t) => t.from === 'gpt').map((t) => t.value.trim().toLowerCase().match(/^[a-z]+/)?.[0] ?? '');
  if (ans.length === 0) return 'other';
  if (ans.every((a) => a === 'yes')) return 'yes';
  if (ans.every((a) => a === 'no')) return 'no';
  return 'other';
}

export interface CoresetStats {
  selected: number;
  conceptsCovered: number;
  conceptsTotal: number;
  yes: number;
  no: number;
  other: number;
}

class MaxHeap {
  private a: { gain: number; i: number }[] = [];
  get size(): number { return this.a.length; }
  peek(): { gain: number; i: number } | undefined { return this.a[0]; }
  private better(x: { gain: number; i: number }, y: { gain: number; i: number }): boolean { return x.gain > y.gain || (x.gain === y.gain && x.i < y.i); }
  push(e: { gain: number; i: number }): void {
    const a = this.a; a.push(e);
    let k = a.length - 1;
    while (k > 0) { const p = (k - 1) >> 1; if (!this.better(a[k]!, a[p]!)) break; [a[k], a[p]] = [a[p]!, a[k]!]; k = p; }
  }
  pop(): { gain: number; i: number } | undefined {
    const a = this.a; if (a.length === 0) return undefined;
    const top = a[0]!, last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1, r = l + 1; let m = k;
        if (l < a.length && this.better(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.better(a[r]!, a[m]!)) m = r;
        if (m === k) break;
        [a[k], a[m]] = [a[m]!, a[k]!]; k = m;
      }
    }
    return top;
  }
}

/** Indices (ascending) of the selected records; `items[i]` are the concept lists and yes/no classes. */
export function selectCoreset(items: readonly { concepts: readonly string[]; yesNo: YesNo }[], size: number): { indices: number[]; stats: CoresetStats } {
  if (!Number.isInteger(size) || size < 0) throw new Error(`coreset: size must be a non-negative integer, got ${size}`);
  const covered = new Map<string, number>();
  const gain = (i: number): number => items[i]!.concepts.reduce((a, c) => a + 1 / (1 + (covered.get(c) ?? 0)), 0);
  const heaps: Record<YesNo, MaxHeap> = { yes: new MaxHeap(), no: new MaxHeap(), other: new MaxHeap() };
  items.forEach((it, i) => heaps[it.yesNo].push({ gain: gain(i), i }));
  const count: Record<YesNo, number> = { yes: 0, no: 0, other: 0 };
  const picked: number[] = [];
  const target = Math.min(size, items.length);
  while (picked.length < target) {
    const allowed: YesNo[] = ['other'];
    if (count.yes <= count.no || heaps.no.size === 0) allowed.push('yes');
    if (count.no <= count.yes || heaps.yes.size === 0) allowed.push('no');
    // Lazy greedy: refresh each allowed heap's top until it is current, then take the best.
    let best: { cls: YesNo; gain: number; i: number } | null = null;
    for (const cls of allowed) {
      const h = heaps[cls];
      for (;;) {
        const top = h.peek();
        if (!top) break;
        const g = gain(top.i);
        if (g >= top.gain - 1e-12) { if (!best || g > best.gain || (g === best.gain && top.i < best.i)) best = { cls, gain: g, i: top.i }; break; }
        h.pop(); h.push({ gain: g, i: top.i });
      }
    }
    if (!best) break;
    heaps[best.cls].pop();
    picked.push(best.i);
    count[best.cls]++;
    for (const c of items[best.i]!.concepts) covered.set(c, (covered.get(c) ?? 0) + 1);
  }
  const all = new Set<string>();
  for (const it of items) for (const c of it.concepts) all.add(c);
  return {
    indices: picked.sort((a, b) => a - b),
    stats: { selected: picked.length, conceptsCovered: covered.size, conceptsTotal: all.size, yes: count.yes, no: count.no, other: count.other },
  };
}

/** Coreset over conversations. */
export function coresetOfConversations(convs: readonly (readonly Turn[])[], size: number): { indices: number[]; stats: CoresetStats } {
  return selectCoreset(convs.map((t) => ({ concepts: concepts(t), yesNo: yesNoClass(t) })), size);
}
