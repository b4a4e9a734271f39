// Generation and sampling against small deterministic fake decoders that honour the CausalLM
// contract (cache length, capacity, left-padding mask, HF positions); plus, when the LLaMA family
// exists, batched-vs-single greedy generation on a tiny random LLaMA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/backends/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import type { CausalLM, ForwardOptions, KVCache } from '../src/models/causal-lm.ts';
import { generate, rowSeed, type GenerateOptions } from '../src/serve/generate.ts';
import { applyRepetitionPenalty, argmax, candidateDistribution, nextToken, sampleToken } from '../src/serve/sampling.ts';

// ---- fakes -----------------------------------------------------------------------------------

class FakeCache implements KVCache {
  readonly batch: number;
  readonly capacity: number;
  length = 0;
  disposed = false;
  tokens: Int32Array; // [B, capacity]
  mask: Uint8Array; // [B, capacity]
  constructor(batch: number, capacity: number) {
    this.batch = batch;
    this.capacity = capacity;
    this.tokens = new Int32Array(batch * capacity);
    this.mask = new Uint8Array(batch * capacity);
  }
  dispose(): void {
    this.disposed = true;
  }
}

interface Call { B: number; T: number; lastOnly: boolean; masked: boolean; cacheLength: number }

/**
 * A decoder whose next-token logits depend only on the unmasked tokens of a row up to the
 * position (in order), like attention with a key-padding mask. Positions are HF's
 * cumsum(mask) - 1 and must stay below maxPositions. `score(seq, out)` fills the logits.
 */
class FakeLM implements CausalLM {
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly score: (seq: readonly number[], out: Float32Array) => void;
  calls: Call[] = [];
  caches: FakeCache[] = [];
  constructor(vocabSize: number, maxPositions: number, score: (seq: readonly number[], out: Float32Array) => void) {
    this.vocabSize = vocabSize;
    this.maxPositions = maxPositions;
    this.score = score;
  }
  newCache(batch: number, capacity: number): KVCache {
    const c = new FakeCache(batch, capacity);
    this.caches.push(c);
    return c;
  }
  forward(tokens: Tensor, kv: KVCache, opts: ForwardOptions = {}): Tensor {
    const cache = kv as FakeCache;
    assert.equal(cache.disposed, false, 'forward on a disposed cache');
    assert.equal(tokens.dtype, 'i32');
    assert.equal(tokens.ndim, 2);
    const [B, T] = tokens.shape as [number, number];
    assert.equal(B, cache.batch);
    const L = cache.length, C = cache.capacity, V = this.vocabSize;
    if (L + T > C) throw new Error(`FakeLM: cache overflow: ${L} + ${T} > capacity ${C}`);
    const ids = tokens.i32;
    const m = opts.attentionMask ?? null;
    if (m !== null) {
      assert.equal(m.dtype, 'bool');
      assert.deepEqual(m.shape, [B, L + T]);
    }
    const md = m === null ? null : m.u8;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < L; j++) {
        // The mask must repeat what the cache was filled with.
        if (md !== null) assert.equal(md[b * (L + T) + j], cache.mask[b * C + j], `mask column ${j} changed`);
      }
      for (let t = 0; t < T; t++) {
        cache.tokens[b * C + L + t] = ids[b * T + t]!;
        cache.mask[b * C + L + t] = md === null ? 1 : md[b * (L + T) + L + t]!;
      }
    }
    cache.length = L + T;
    const outT = opts.lastOnly ? 1 : T;
    const out = new Float32Array(B * outT * V);
    for (let b = 0; b < B; b++) {
      for (let t = T - outT; t < T; t++) {
        const seq: number[] = [];
        for (let j = 0; j <= L + t; j++) if (cache.mask[b * C + j]) seq.push(cache.tokens[b * C + j]!);
        const pos = seq.length - 1;
        if (pos >= this.maxPositions) throw new Error(`FakeLM: position ${pos} >= maxPositions ${this.maxPositions}`);
        this.score(seq, out.subarray((b * outT + t - (T - outT)) * V, (b * outT + t - (T - outT) + 1) * V));
      }
    }
    this.calls.push({ B, T, lastOnly: opts.lastOnly === true, masked: m !== null, cacheLength: L });
    return fromData(out, [B, outT, V]);
  }
}

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}

/** Pseudo-random logits in [-3, 3) from a hash of the whole visible sequence. */
function hashLM(V = 64, maxPositions = 256): FakeLM {
  return new FakeLM(V, maxPositions, (seq, out) => {
    let h = 12345;
    for (const t of seq) h = mix(h, t + 1);
    for (let v = 0; v < out.length; v++) out[v] = (mix(h, v + 7777) / 4294967296) * 6 - 3;
  });
}

/**
 * Emits a fixed script keyed by the row's first token: after a visible sequence of n tokens
 * the next token is script[seq[0]][n - 1] (filler 0 past the end).
 */
function scriptedLM(V: number, scripts: Record<number, readonly number[]>, maxPositions = 512): FakeLM {
  return new FakeLM(V, maxPositions, (seq, out) => {
    const s = scripts[seq[0]!] ?? [];
    const next = s[seq.length - 1] ?? 0;
    out.fill(0);
    out[next] = 10;
  });
}

/** A toy vocabulary: id -> piece. */
const PIECES = ['<pad>', 'Hel', 'lo', ' wor', 'ld', '<', '/', 's', '>', '!', '</', 'x', '</s', ' ', '<eos>'];
const piece = (s: string): number => {
  const i = PIECES.indexOf(s);
  assert.ok(i >= 0, s);
  return i;
};
const decodePieces = (ids: readonly number[]): string => ids.map((i) => PIECES[i]).join('');

/** Collects streamed deltas per row and checks the callback contract. */
function streamer(): { onToken: NonNullable<GenerateOptions['onToken']>; text: Map<number, string>; ids: Map<number, number[]> } {
  const text = new Map<number, string>(), ids = new Map<number, number[]>();
  return {
    text, ids,
    onToken: (row, id, delta) => {
      text.set(row, (text.get(row) ?? '') + delta);
      if (id >= 0) ids.set(row, [...(ids.get(row) ?? []), id]);
    },
  };
}

// ---- sampling --------------------------------------------------------------------------------

test('repetition penalty: HF/CTRL rule on a handcrafted row', () => {
  const row = new Float32Array([2, -2, 0, 1.5, -1, 3]);
  applyRepetitionPenalty(row, [0, 1, 2, 0, 1], 2); // duplicates penalised once
  assert.deepEqual(Array.from(row), [1, -4, 0, 1.5, -1, 3]);
  const row2 = new Float32Array([2, -2]);
  applyRepetitionPenalty(row2, new Set([0, 1]), 0.5); // < 1 rewards instead
  assert.deepEqual(Array.from(row2), [4, -1]);
  assert.throws(() => applyRepetitionPenalty(new Float32Array(3), [3], 1.2), /outside the vocabulary \[0, 3\)/);
  // nextToken applies it before the argmax: token 2 (3 -> 1.5) loses to token 0 (2.5).
  const row3 = new Float32Array([2.5, 0, 3]);
  assert.equal(nextToken(row3, { repetitionPenalty: 2 }, null, [2]), 0);
});

test('argmax takes the lowest index on ties; NaN is an error', () => {
  assert.equal(argmax(new Float32Array([1, 5, 5, 2])), 1);
  assert.equal(argmax(new Float32Array([-Infinity, -Infinity])), 0);
  assert.throws(() => argmax(new Float32Array([0, NaN])), /NaN/);
});

test('candidate distribution: temperature, top-k, top-p, min-p', () => {
  const p = [0.5, 0.3, 0.15, 0.05];
  const row = Float32Array.from([2, 0, 3, 1].map((i) => Math.log(p[i]!))); // ids 0..3 hold p[2], p[0], p[3], p[1]
  const all = candidateDistribution(row, { temperature: 1 });
  assert.deepEqual(Array.from(all.ids), [1, 3, 0, 2]);
  for (let j = 0; j < 4; j++) assert.ok(Math.abs(all.probs[j]! - p[j]!) < 1e-6);
  // temperature 2: softmax(log p / 2) = sqrt(p) normalised
  const t2 = candidateDistribution(row, { temperature: 2 });
  const sq = p.map(Math.sqrt), z = sq.reduce((a, b) => a + b);
  for (let j = 0; j < 4; j++) assert.ok(Math.abs(t2.probs[j]! - sq[j]! / z) < 1e-6);
  const k2 = candidateDistribution(row, { temperature: 1, topK: 2 });
  assert.deepEqual(Array.from(k2.ids), [1, 3]);
  assert.ok(Math.abs(k2.probs[0]! - 0.625) < 1e-6);
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topP: 0.75 }).ids), [1, 3]);
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topP: 0.85 }).ids), [1, 3, 0]);
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topP: 0.4 }).ids), [1]);
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topP: 1e-9 }).ids), [1]);
  // top-p after top-k works on the renormalised top-k mass: 0.5/0.8 = 0.625 < 0.7
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topK: 2, topP: 0.7 }).ids), [1, 3]);
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, topK: 2, topP: 0.6 }).ids), [1]);
  // min-p 0.35: keep p >= 0.175
  assert.deepEqual(Array.from(candidateDistribution(row, { temperature: 1, minP: 0.35 }).ids), [1, 3]);
  // -Infinity never kept, even if top-k asks for more
  const masked = new Float32Array([0, -Infinity, 1]);
  assert.deepEqual(Array.from(candidateDistribution(masked, { temperature: 1, topK: 3 }).ids), [2, 0]);
  // ties: lower id first
  assert.deepEqual(Array.from(candidateDistribution(new Float32Array([1, 2, 2, 1]), { temperature: 1, topK: 3 }).ids), [1, 2, 0]);
  assert.throws(() => candidateDistribution(row, { temperature: 1, topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => candidateDistribution(row, { temperature: 1, topK: 1.5 }), /topK/);
  assert.throws(() => candidateDistribution(new Float32Array([0, NaN]), { temperature: 1 }), /logit 1 of 2 is NaN/);
});

test('top-p on a large vocabulary matches a full sort (the threshold shortcut is exact)', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const V = 5000;
    const row = rng.fillNormal(new Float32Array(V), 0, 1 + trial);
    const p = 0.05 + 0.9 * rng.uniform();
    const got = candidateDistribution(row, { temperature: 0.7, topP: p });
    // reference: full sort, smallest prefix with mass >= p
    const order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b);
    const max = row[order[0]!]!, invT = 1 / 0.7;
    const w = order.map((i) => Math.exp((row[i]! - max) * invT));
    let tot = 0;
    for (let i = 0; i < V; i++) tot += Math.exp((row[i]! - max) * invT);
    let cum = 0, n = 0;
    while (cum < p * tot) cum += w[n++]!;
    assert.deepEqual(Array.from(got.ids), order.slice(0, n), `trial ${trial}`);
  }
});

/** HF-order filters by brute force: full sort, top-k, top-p on the renormalised rest, min-p. */
function bruteCandidates(row: Float32Array, T: number, topK: number, topP: number, minP: number): number[] {
  const invT = 1 / T;
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let order = [...row.keys()].sort((a, b) => row[b]! - row[a]! || a - b).filter((i) => Math.exp((row[i]! - max) * invT) > 0);
  const w = (i: number): number => Math.exp((row[i]! - max) * invT);
  if (topK > 0) order = order.slice(0, topK);
  if (topP < 1) {
    let mass = 0;
    if (topK > 0) for (const i of order) mass += w(i);
    else for (let i = 0; i < row.length; i++) mass += w(i);
    let cum = 0, n = 0;
    while (n < order.length && cum < topP * mass) cum += w(order[n++]!);
    order = order.slice(0, Math.max(1, n));
  }
  if (minP > 0) {
    const lo = minP * w(order[0]!);
    order = order.filter((i, j) => j === 0 || w(i) >= lo);
  }
  return order;
}

test('filter combinations match a brute-force reference', () => {
  const rng = new Rng(21);
  for (let trial = 0; trial < 300; trial++) {
    const V = [3, 50, 2000][trial % 3]!;
    const row = rng.fillNormal(new Float32Array(V), 0, [0.5, 3, 12][Math.floor(trial / 3) % 3]!);
    if (trial % 7 === 0) row[rng.int(V)] = -Infinity;
    const T = 0.3 + 1.5 * rng.uniform();
    const topK = rng.uniform() < 0.5 ? 0 : 1 + rng.int(Math.min(V, 100));
    const topP = rng.uniform() < 0.4 ? 1 : 0.05 + 0.9 * rng.uniform();
    const minP = rng.uniform() < 0.6 ? 0 : 0.3 * rng.uniform();
    const got = candidateDistribution(row, { temperature: T, topK, topP, minP });
    assert.deepEqual(Array.from(got.ids), bruteCandidates(row, T, topK, topP, minP), `trial ${trial}: V=${V} T=${T} k=${topK} p=${topP} minP=${minP}`);
    assert.ok(Math.abs(got.probs.reduce((a, b) => a + b, 0) - 1) < 1e-9);
  }
});

test('seeded sampling is reproducible and follows the distribution', () => {
  const row = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
  const draw = (seed: number, opts = {}): number[] => {
    const rng = new Rng(seed);
    return Array.from({ length: 20000 }, () => sampleToken(row, { temperature: 1, ...opts }, rng));
  };
  const a = draw(3), b = draw(3);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.slice(0, 50), draw(4).slice(0, 50));
  for (const opts of [{}, { topK: 4 }]) {
    const counts = [0, 0, 0, 0];
    for (const t of draw(11, opts)) counts[t]!++;
    [0.5, 0.3, 0.15, 0.05].forEach((p, i) => assert.ok(Math.abs(counts[i]! / 20000 - p) < 0.015, `token ${i}: ${counts[i]}`));
  }
});

test('top-k = 1 and a tiny top-p equal greedy', () => {
  const rng = new Rng(5);
  for (let i = 0; i < 200; i++) {
    const row = rng.fillNormal(new Float32Array(100), 0, 2);
    const g = argmax(row);
    assert.equal(sampleToken(row, { temperature: 1.3, topK: 1 }, rng), g);
    assert.equal(sampleToken(row, { temperature: 0.8, topP: 1e-6 }, rng), g);
    assert.equal(sampleToken(row, { temperature: 0 }, rng), g);
  }
});

// ---- generate --------------------------------------------------------------------------------

test('greedy: deterministic, batched left padding equals each row alone', async () => {
  const prompts = [[5, 9, 2, 33, 1], [7], [60, 61, 62]];
  const lm = hashLM();
  const batched = await generate(lm, prompts, { maxNewTokens: 12 });
  assert.equal(lm.calls[0]!.T, 5);
  assert.ok(lm.calls.every((c) => c.masked && c.lastOnly && c.B === 3));
  assert.deepEqual(lm.calls.map((c) => c.T), [5, ...Array(11).fill(1)]);
  assert.equal(lm.caches[0]!.capacity, 5 + 12 - 1);
  assert.ok(lm.caches[0]!.disposed);
  const again = await generate(hashLM(), prompts, { maxNewTokens: 12 });
  assert.deepEqual(again.map((r) => r.tokens), batched.map((r) => r.tokens));
  for (let b = 0; b < prompts.length; b++) {
    const alone = hashLM();
    const [r] = await generate(alone, [prompts[b]!], { maxNewTokens: 12 });
    assert.equal(alone.calls[0]!.masked, false, 'nothing padded: no mask');
    assert.deepEqual(r!.tokens, batched[b]!.tokens, `row ${b}`);
    assert.equal(batched[b]!.finishReason, 'length');
    assert.equal(batched[b]!.tokens.length, 12);
    assert.deepEqual(batched[b]!.usage, { promptTokens: prompts[b]!.length, completionTokens: 12, totalTokens: prompts[b]!.length + 12 });
    assert.equal(batched[b]!.text, null);
    assert.ok(batched[b]!.timings.prefillMs >= 0 && batched[b]!.timings.decodeTokensPerSecond >= 0);
  }
  // and the tokens are the step-by-step argmax of the fake
  const seq = [...prompts[1]!];
  const row = new Float32Array(64);
  for (let i = 0; i < 12; i++) {
    lm.score(seq, row);
    seq.push(argmax(row));
  }
  assert.deepEqual(batched[1]!.tokens, seq.slice(1));
});

test('seeded sampling through generate: reproducible, rows replayable alone with rowSeed', async () => {
  const prompts = [[3, 4, 5], [8], [1, 2]];
  const opts: GenerateOptions = { maxNewTokens: 15, temperature: 0.9, topK: 20, topP: 0.95, seed: 42 };
  const a = await generate(hashLM(), prompts, opts);
  const b = await generate(hashLM(), prompts, opts);
  assert.deepEqual(a.map((r) => r.tokens), b.map((r) => r.tokens));
  const c = await generate(hashLM(), prompts, { ...opts, seed: 43 });
  assert.notDeepEqual(a.map((r) => r.tokens), c.map((r) => r.tokens));
  assert.equal(rowSeed(42, 0), 42);
  for (let r = 0; r < prompts.length; r++) {
    const [alone] = await generate(hashLM(), [prompts[r]!], { ...opts, seed: rowSeed(42, r) });
    assert.deepEqual(alone!.tokens, a[r]!.tokens, `row ${r}`);
  }
});

test('top-k = 1 and tiny top-p through generate equal greedy', async () => {
  const prompts = [[3, 4, 5], [8]];
  const greedy = await generate(hashLM(), prompts, { maxNewTokens: 10 });
  const k1 = await generate(hashLM(), prompts, { maxNewTokens: 10, temperature: 1.5, topK: 1, seed: 9 });
  const p0 = await generate(hashLM(), prompts, { maxNewTokens: 10, temperature: 1.5, topP: 1e-7, seed: 9 });
  assert.deepEqual(k1.map((r) => r.tokens), greedy.map((r) => r.tokens));
  assert.deepEqual(p0.map((r) => r.tokens), greedy.map((r) => r.tokens));
});

test('repetition penalty in generate: prompt and generated tokens are penalised', async () => {
  const lm = hashLM(64);
  const prompt = [10, 11, 12];
  const [r] = await generate(lm, [prompt], { maxNewTokens: 20, repetitionPenalty: 1e6 });
  const all = [...prompt, ...r!.tokens];
  assert.equal(new Set(all).size, all.length, `repeats in ${all}`);
  // step-by-step reference with the same rule
  const seq = [...prompt];
  const row = new Float32Array(64);
  for (let i = 0; i < 20; i++) {
    lm.score(seq, row);
    for (const t of new Set(seq)) row[t] = row[t]! < 0 ? row[t]! * 1e6 : row[t]! / 1e6;
    seq.push(argmax(row));
  }
  assert.deepEqual(r!.tokens, seq.slice(3));
});

test('stop tokens end a row without affecting the others', async () => {
  const eos = piece('<eos>');
  const hel = piece('Hel'), lo = piece('lo'), wor = piece(' wor'), ld = piece('ld');
  const lm = scriptedLM(PIECES.length, { [hel]: [lo, eos, wor], [wor]: [ld, ld, ld, ld, ld] });
  const s = streamer();
  const res = await generate(lm, [[hel], [wor]], { maxNewTokens: 5, stopTokenIds: [eos], decode: decodePieces, onToken: s.onToken });
  assert.deepEqual(res[0]!.tokens, [lo, eos]);
  assert.equal(res[0]!.finishReason, 'stop');
  assert.equal(res[0]!.stoppedBy, eos);
  assert.equal(res[0]!.text, 'lo');
  assert.equal(res[0]!.usage.completionTokens, 2);
  assert.deepEqual(res[1]!.tokens, [ld, ld, ld, ld, ld]);
  assert.equal(res[1]!.finishReason, 'length');
  assert.equal(res[1]!.text, 'ldldldldld');
  assert.equal(s.text.get(0), 'lo');
  assert.equal(s.text.get(1), 'ldldldldld');
  assert.deepEqual(s.ids.get(0), [lo, eos]);
  // the finished row was fed pads and the model was called 5 times in all
  assert.equal(lm.calls.length, 5);
  // text held back as a possible stop string is released when a stop token ends the row
  const lt = piece('<');
  const lm2 = scriptedLM(PIECES.length, { 1: [lt, eos] });
  const s2 = streamer();
  const [r2] = await generate(lm2, [[1]], { maxNewTokens: 5, stopTokenIds: [eos], stopStrings: ['<>'], decode: decodePieces, onToken: s2.onToken });
  assert.deepEqual([r2!.text, s2.text.get(0), r2!.finishReason, r2!.stoppedBy], ['<', '<', 'stop', eos]);
});

test('stop strings across token boundaries are trimmed and never streamed', async () => {
  const ids = (...ps: string[]): number[] => ps.map(piece);
  const scripts = {
    [piece('Hel')]: ids('lo', ' wor', 'ld', '<', '/', 's', '>', '!', '!'),
    // a false start '</x' is held back, then released
    [piece(' ')]: ids('<', '/', 'x', ' ', '</', 's', '>'),
    [piece('x')]: ids('x', 'x', 'x'),
  };
  const lm = scriptedLM(PIECES.length, scripts);
  const deltas: string[][] = [[], [], []];
  const res = await generate(lm, [[piece('Hel')], [piece(' ')], [piece('x')]], {
    maxNewTokens: 9, decode: decodePieces, stopStrings: ['</s>', 'never'],
    onToken: (row, _id, d) => deltas[row]!.push(d),
  });
  assert.equal(res[0]!.text, 'lo world');
  assert.equal(res[0]!.finishReason, 'stop');
  assert.equal(res[0]!.stoppedBy, '</s>');
  assert.deepEqual(res[0]!.tokens, ids('lo', ' wor', 'ld', '<', '/', 's', '>'));
  assert.deepEqual(deltas[0], ['lo', ' wor', 'ld', '', '', '', '']);
  assert.equal(res[1]!.text, '</x ');
  assert.deepEqual(deltas[1], ['', '', '</x', ' ', '', '', '']);
  assert.equal(res[2]!.text, 'xxx' + '<pad>'.repeat(6));
  assert.equal(res[2]!.finishReason, 'length');
  for (let r = 0; r < 3; r++) assert.equal(deltas[r]!.join(''), res[r]!.text);
  await assert.rejects(generate(lm, [[1]], { maxNewTokens: 1, stopStrings: ['a'] }), /need a decode/);
});

test('streaming holds back incomplete UTF-8 so deltas concatenate to the final text', async () => {
  const bytes = Array.from(new TextEncoder().encode('héllo wörld 😀 done'));
  const lm = scriptedLM(256, { 65: bytes });
  const dec = new TextDecoder();
  const decode = (ids: readonly number[]): string => dec.decode(Uint8Array.from(ids));
  const deltas: string[] = [];
  const [r] = await generate(lm, [[65]], { maxNewTokens: bytes.length, decode, onToken: (_row, _id, d) => deltas.push(d) });
  assert.equal(r!.text, 'héllo wörld 😀 done');
  assert.equal(deltas.join(''), r!.text);
  assert.equal(deltas.length, bytes.length);
  assert.ok(deltas.every((d) => !d.includes('\ufffd')), JSON.stringify(deltas));
});

test('abort: from the callback, from a timer, and before starting', async () => {
  const lm = hashLM(64, 100000);
  const ac = new AbortController();
  let n = 0;
  const [r] = await generate(lm, [[1, 2]], { maxNewTokens: 50, signal: ac.signal, onToken: () => { if (++n === 3) ac.abort(); } });
  assert.equal(r!.finishReason, 'abort');
  assert.equal(r!.tokens.length, 3);
  assert.ok(lm.caches[0]!.disposed);

  const timer = new AbortController();
  setTimeout(() => timer.abort(), 20);
  const [t] = await generate(hashLM(64, 100000), [[1, 2]], { maxNewTokens: 90000, signal: timer.signal });
  assert.equal(t!.finishReason, 'abort');
  assert.ok(t!.tokens.length > 0 && t!.tokens.length < 90000);

  const pre = new AbortController();
  pre.abort();
  const lm3 = hashLM();
  const res = await generate(lm3, [[1], [2, 3]], { maxNewTokens: 5, signal: pre.signal, decode: (ids) => ids.join(',') });
  assert.deepEqual(res.map((x) => [x.finishReason, x.tokens.length, x.text]), [['abort', 0, ''], ['abort', 0, '']]);
  assert.equal(lm3.calls.length, 0);

  // held-back text of an aborted row is flushed with tokenId -1
  const lt = piece('<');
  const lm4 = scriptedLM(PIECES.length, { 1: [lt, lt, lt] });
  const ac4 = new AbortController();
  const seen: [number, string][] = [];
  const [a4] = await generate(lm4, [[1]], {
    maxNewTokens: 3, decode: decodePieces, stopStrings: ['<>'], signal: ac4.signal,
    onToken: (_r, id, d) => { seen.push([id, d]); if (seen.length === 2) ac4.abort(); },
  });
  assert.equal(a4!.text, '<<');
  assert.deepEqual(seen, [[lt, ''], [lt, '<'], [-1, '<']]);
});

test('max tokens and context length: errors name the limit, truncate lowers the budget', async () => {
  const lm = hashLM(64, 10);
  await assert.rejects(generate(lm, [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]], { maxNewTokens: 1 }), /prompt 0 has 11 tokens, more than the model's limit of 10 positions/);
  await assert.rejects(generate(lm, [[1], [1, 2, 3, 4]], { maxNewTokens: 7 }), /prompt 1 \(4 tokens\) \+ maxNewTokens 7 = 11 exceeds the model's limit of 10 positions/);
  const ok = await generate(lm, [[1], [1, 2, 3, 4]], { maxNewTokens: 6 });
  assert.deepEqual(ok.map((r) => r.tokens.length), [6, 6]);
  // row 0 could take 9 on its own, but the padded cache (T = 4) caps every row at 10 - 4 + 1 = 7
  const cut = await generate(lm, [[1], [1, 2, 3, 4]], { maxNewTokens: 9, lengthPolicy: 'truncate' });
  assert.deepEqual(cut.map((r) => [r.tokens.length, r.finishReason]), [[7, 'length'], [6, 'length']]);
  assert.ok(lm.caches[lm.caches.length - 1]!.capacity <= 10);
  const cut1 = await generate(lm, [[1, 2]], { maxNewTokens: 9, lengthPolicy: 'truncate' });
  assert.equal(cut1[0]!.tokens.length, 8);
  // row 1 truncated equals row 1 run alone with the lower budget
  const [alone] = await generate(hashLM(64, 10), [[1, 2, 3, 4]], { maxNewTokens: 6 });
  assert.deepEqual(cut[1]!.tokens, alone!.tokens);
  const full = await generate(hashLM(64, 10), [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], { maxNewTokens: 3, lengthPolicy: 'truncate' });
  assert.deepEqual([full[0]!.tokens.length, full[0]!.finishReason], [0, 'length']);
  const zero = hashLM();
  const z = await generate(zero, [[1, 2]], { maxNewTokens: 0 });
  assert.deepEqual([z[0]!.tokens, z[0]!.finishReason, zero.calls.length], [[], 'length', 0]);
  await assert.rejects(generate(lm, [[1, 64]], { maxNewTokens: 1 }), /prompt 0 token 1 is 64, outside the vocabulary \[0, 64\)/);
  await assert.rejects(generate(lm, [[]], { maxNewTokens: 1 }), /prompt 0 is empty/);
  await assert.rejects(generate(lm, [[1]], { maxNewTokens: -1 }), /maxNewTokens must be an integer >= 0/);
  await assert.rejects(generate(lm, [[1]], { maxNewTokens: 1, temperature: -1 }), /temperature/);
});

test('logits of the wrong shape are reported', async () => {
  const bad: CausalLM = {
    vocabSize: 8, maxPositions: 16,
    newCache: (b, c) => new FakeCache(b, c),
    forward: () => fromData(new Float32Array(7), [1, 1, 7]),
  };
  await assert.rejects(generate(bad, [[1]], { maxNewTokens: 2 }), /prefill: forward returned logits \[1, 1, 7\], expected \[1, 1, 8\]/);
});

// ---- the real LLaMA family, when present -----------------------------------------------------

interface LlamaModule { [k: string]: unknown }

/** Builds a CausalLM from src/models/llama.ts by looking at what it exports; null when it cannot. */
async function tinyLlama(): Promise<{ lm: CausalLM; how: string } | null> {
  let mod: LlamaModule;
  try {
    const spec = '../src/models/' + 'llama.js';
    mod = (await import(spec)) as LlamaModule;
  } catch {
    return null;
  }
  const family = mod['family'] as { parseConfig(j: unknown, s?: string): unknown; init(c: unknown, r: Rng | null): unknown } | undefined;
  if (family === undefined) return null;
  const cfg = family.parseConfig({
    model_type: 'llama', vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6,
    rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
  }, 'test');
  const params = family.init(cfg, new Rng(1));
  const isLM = (x: unknown): x is CausalLM =>
    x !== null && typeof x === 'object' && typeof (x as CausalLM).forward === 'function' && typeof (x as CausalLM).newCache === 'function' && typeof (x as CausalLM).vocabSize === 'number';
  const tries: [string, () => unknown][] = [];
  for (const [name, v] of Object.entries(mod)) {
    if (typeof v !== 'function') continue;
    const f = v as (...a: unknown[]) => unknown;
    const proto = (v as { prototype?: Record<string, unknown> }).prototype;
    if (proto && typeof proto['forward'] === 'function' && typeof proto['newCache'] === 'function') {
      const C = v as new (...a: unknown[]) => unknown;
      tries.push([`new ${name}(cfg, params)`, () => new C(cfg, params)], [`new ${name}(params, cfg)`, () => new C(params, cfg)]);
    } else if (!proto || name !== name[0]!.toUpperCase() + name.slice(1)) {
      tries.push([`${name}(cfg, params)`, () => f(cfg, params)], [`${name}(params, cfg)`, () => f(params, cfg)]);
    }
  }
  for (const [how, make] of tries) {
    try {
      const lm = make();
      if (isLM(lm)) return { lm, how };
    } catch {
      // not this constructor shape
    }
  }
  return null;
}

test('LLaMA: greedy batched generation with left padding equals each row alone', async (t) => {
  useBackend('reference');
  const found = await tinyLlama();
  if (found === null) {
    t.skip('src/models/llama.ts does not export a CausalLM implementation yet');
    return;
  }
  const { lm } = found;
  t.diagnostic(`built with ${found.how}`);
  const prompts = [[1, 5, 9, 13, 2, 7], [3], [40, 41, 42, 43]];
  const opts: GenerateOptions = { maxNewTokens: 8 };
  const batched = await generate(lm, prompts, opts);
  for (let b = 0; b < prompts.length; b++) {
    const [alone] = await generate(lm, [prompts[b]!], opts);
    assert.deepEqual(batched[b]!.tokens, alone!.tokens, `row ${b} (built with ${found.how})`);
  }
  const sampled = await generate(lm, prompts, { maxNewTokens: 8, temperature: 0.8, topP: 0.9, seed: 5 });
  for (let b = 0; b < prompts.length; b++) {
    const [alone] = await generate(lm, [prompts[b]!], { maxNewTokens: 8, temperature: 0.8, topP: 0.9, seed: rowSeed(5, b) });
    assert.deepEqual(sampled[b]!.tokens, alone!.tokens, `sampled row ${b}`);
  }
  // truncation near the context limit keeps the padded cache within maxPositions
  const P = lm.maxPositions;
  const long = Array.from({ length: P - 3 }, (_, i) => (i * 7) % lm.vocabSize);
  const cut = await generate(lm, [long, [5]], { maxNewTokens: 10, lengthPolicy: 'truncate' });
  assert.deepEqual(cut.map((r) => [r.tokens.length, r.finishReason]), [[3, 'length'], [4, 'length']]);
  await assert.rejects(generate(lm, [long], { maxNewTokens: 4 }), new RegExp(`limit of ${P} positions`));
  t.diagnostic(`decode ${batched[0]!.timings.decodeTokensPerSecond.toFixed(0)} tok/s (batch of 3, reference backend), prefill ${batched[0]!.timings.prefillMs.toFixed(1)} ms`);
});
