// Yes/no benchmarks. POPE: a reply counts as "no" when its first sentence (text before the
// first '.') with commas removed has the word "No", "no" or "not" among its space-separated
// words, else "yes" (POPE's evaluate script); "yes" is the positive class. MME: a reply is
// lower-cased, stripped and its periods removed; "yes"/"no" as is, else "yes"/"no" when found in
// its first 4 characters, else "other" (always wrong); acc = questions right, acc+ = images with
// both of their questions right, score = 100·(acc + acc+).

export type YesNoAnswer = 'yes' | 'no';

export function popeParse(reply: string): YesNoAnswer {
  let t = reply;
  const dot = t.indexOf('.');
  if (dot !== -1) t = t.slice(0, dot);
  const words = t.replace(/,/g, '').split(' ');
  return words.includes('No') || words.includes('no') || words.includes('not') ? 'no' : 'yes';
}

export interface PopeMetrics {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  yes_ratio: number;
  count: number;
}

function labelOf(s: string): YesNoAnswer {
  const t = s.trim().toLowerCase().replace(/[.!]$/, '');
  if (t === 'yes' || t === 'no') return t;
  throw new Error(`POPE: reference label must be yes or no, got '${s}'`);
}

export function popeScore(items: readonly { prediction: string; label: string }[]): PopeMetrics {
  if (items.length === 0) throw new Error('popeScore: no items');
  let tp = 0, fp = 0, tn = 0, fn = 0, yes = 0;
  for (const it of items) {
    const p = popeParse(it.prediction), l = labelOf(it.label);
    if (p === 'yes') yes++;
    if (p === 'yes' && l === 'yes') tp++; else if (p === 'yes') fp++; else if (l === 'no') tn++; else fn++;
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { accuracy: (tp + tn) / items.length, precision, recall, f1, yes_ratio: yes / items.length, count: items.length };
}

export function mmeParse(reply: string): YesNoAnswer | 'other' {
  const t = reply.toLowerCase().trim().replace(/\./g, '');
  if (t === 'yes' || t === 'no') return t;
  const prefix = t.slice(0, 4);
  if (prefix.includes('yes')) return 'yes';
  if (prefix.includes('no')) return 'no';
  return 'other';
}

export interface MmeMetrics {
  /** Fraction of questions right. */
  acc: number;
  /** Fraction of images with every question right. */
  acc_plus: number;
  /** 100·(acc + acc_plus), per MME (max 200 per subtask). */
  score: number;
  count: number;
  images: number;
  /** Per category, when items carry one. */
  categories?: Record<string, { acc: number; acc_plus: number; score: number }>;
}

function mmeOf(items: readonly { prediction: string; label: string; image: string }[]): { acc: number; acc_plus: number; score: number; images: number } {
  const byImage = new Map<string, boolean>();
  let right = 0;
  for (const it of items) {
    const ok = mmeParse(it.prediction) === labelOf(it.label);
    if (ok) right++;
    byImage.set(it.image, (byImage.get(it.image) ?? true) && ok);
  }
  const acc = right / items.length;
  const accPlus = [...byImage.values()].filter(Boolean).length / byImage.size;
  return { acc, acc_plus: accPlus, score: 100 * (acc + accPlus), images: byImage.size };
}

/** `image` groups the two questions of one image; `category` (optional) gives per-subtask scores. */
export function mmeScore(items: readonly { prediction: string; label: string; image: string; category?: string }[]): MmeMetrics {
  if (items.length === 0) throw new Error('mmeScore: no items');
  const all = mmeOf(items);
  const out: MmeMetrics = { acc: all.acc, acc_plus: all.acc_plus, score: all.score, count: items.length, images: all.images };
  const cats = new Map<string, typeof items[number][]>();
  for (const it of items) if (it.category !== undefined) { const l = cats.get(it.category) ?? []; l.push(it); cats.set(it.category, l); }
  if (cats.size > 0) {
    out.categories = Object.create(null) as Record<string, { acc: number; acc_plus: number; score: number }>;
    for (const [c, l] of [...cats].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      // Images are grouped within their category.
      const m = mmeOf(l);
      out.categories[c] = { acc: m.acc, acc_plus: m.acc_plus, score: m.score };
    }
  }
  return out;
}
