// Next-token choice from one row of logits [V]. Order follows Hugging Face generate:
// repetition penalty, then (sampling only) temperature, top-k, top-p, min-p, then a seeded draw.
// Greedy (temperature 0) is the argmax after the penalty; the sampling filters do not apply to it.

import type { Rng } from '../engine/rng.ts';

export interface SamplingOptions {
  /** 0 (the default) picks the argmax; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) is off. */
  topK?: number;
  /** Nucleus: keep the smallest most-likely set whose probability reaches p (never empty); 1 (default) is off. */
  topP?: number;
  /** Drop tokens whose probability is below minP times the largest probability; 0 (default) is off. */
  minP?: number;
  /** HF/CTRL penalty on tokens already in the sequence; 1 (default) is off. */
  repetitionPenalty?: number;
}

/** Throws on an out-of-range sampling option, naming it and the value. */
export function checkSampling(opts: SamplingOptions): void {
  const bad = (name: string, v: unknown, want: string): never => {
    throw new Error(`sampling: ${name} must be ${want}, got ${String(v)}`);
  };
  const { temperature = 0, topK = 0, topP = 1, minP = 0, repetitionPenalty = 1 } = opts;
  if (!(Number.isFinite(temperature) && temperature >= 0)) bad('temperature', temperature, 'a finite number >= 0');
  if (!(Number.isInteger(topK) && topK >= 0)) bad('topK', topK, 'an integer >= 0 (0 = off)');
  if (!(topP > 0 && topP <= 1)) bad('topP', topP, 'in (0, 1] (1 = off)');
  if (!(minP >= 0 && minP <= 1)) bad('minP', minP, 'in [0, 1] (0 = off)');
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) bad('repetitionPenalty', repetitionPenalty, 'a finite number > 0 (1 = off)');
}

/**
 * In place, each distinct id in `seen` once: a positive logit is divided by `penalty`, a negative
 * one multiplied (so penalty > 1 always makes a seen token less likely). Ids outside [0, V) throw.
 */
export function applyRepetitionPenalty(row: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  if (!(Number.isFinite(penalty) && penalty > 0)) throw new Error(`applyRepetitionPenalty: penalty must be a finite number > 0, got ${penalty}`);
  const done = seen instanceof Set ? null : new Set<number>();
  for (const id of seen) {
    if (!(Number.isInteger(id) && id >= 0 && id < row.length)) throw new Error(`applyRepetitionPenalty: token id ${id} is outside the vocabulary [0, ${row.length})`);
    if (done !== null) {
      if (done.has(id)) continue;
      done.add(id);
    }
    const v = row[id]!;
    row[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/** Index of the largest logit, the lowest index on ties. Throws on an empty row or NaN. */
export function argmax(row: Float32Array): number {
  if (row.length === 0) throw new Error('argmax: empty logits row');
  let best = 0, bv = row[0]!;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v !== v) throw new Error(`argmax: logit ${i} of ${row.length} is NaN`);
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}

/** The kept tokens after temperature/top-k/top-p/min-p, most likely first (ties: lower id first). */
export interface Candidates {
  ids: Int32Array;
  /** Probabilities of `ids`, summing to 1. */
  probs: Float64Array;
}

// Validates a row for sampling and returns its largest logit.
function rowMax(op: string, row: Float32Array, temperature: number): number {
  if (!(temperature > 0 && Number.isFinite(temperature))) throw new Error(`${op}: temperature must be a finite number > 0, got ${temperature}`);
  const V = row.length;
  if (V === 0) throw new Error(`${op}: empty logits row`);
  let max = -Infinity;
  for (let i = 0; i < V; i++) {
    const v = row[i]!;
    if (v !== v || v === Infinity) throw new Error(`${op}: logit ${i} of ${V} is ${v}`);
    if (v > max) max = v;
  }
  if (max === -Infinity) throw new Error(`${op}: every one of the ${V} logits is -Infinity`);
  return max;
}

// Reused buffer for exp((l - max) / T) of a whole row (one row at a time; nothing re-enters).
let scratch = new Float64Array(0);

/** w[i] = exp((row[i] - max) / T) for the whole row, and their sum (f64, index order). */
function weights(row: Float32Array, max: number, invT: number): { w: Float64Array; total: number } {
  if (scratch.length < row.length) scratch = new Float64Array(row.length);
  const w = scratch;
  let total = 0;
  for (let i = 0; i < row.length; i++) total += w[i] = Math.exp((row[i]! - max) * invT);
  return { w, total };
}

function truncating(opts: SamplingOptions): boolean {
  return (opts.topK ?? 0) > 0 || (opts.topP ?? 1) < 1 || (opts.minP ?? 0) > 0;
}

// Logit cut-offs below the max (in units of temperature) tried in turn to find a superset of the
// kept tokens without sorting the whole vocabulary; past the last one every token is taken.
const CUTS = [8, 16, 32, 64];

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const ID_SPAN = 2 ** 21;

/** Sorts ids by logit descending, then id ascending, with one native numeric typed-array sort. */
function sortByLogit(row: Float32Array, ids: Int32Array): Int32Array {
  if (row.length > ID_SPAN) return ids.sort((a, b) => row[b]! - row[a]! || a - b);
  const keys = new Float64Array(ids.length);
  for (let j = 0; j < ids.length; j++) {
    const i = ids[j]!;
    f32[0] = row[i]! === 0 ? 0 : row[i]!; // -0 ties with +0
    const b = u32[0]!;
    const asc = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0; // order-preserving u32 of the float
    keys[j] = (0xffffffff - asc) * ID_SPAN + i;
  }
  keys.sort();
  const out = new Int32Array(ids.length);
  for (let j = 0; j < ids.length; j++) out[j] = keys[j]! % ID_SPAN;
  return out;
}

/**
 * The distribution a draw is made from: softmax(row / temperature), then top-k, top-p (on the
 * top-k renormalised mass, as HF applies them in sequence) and min-p; zero-probability tokens
 * are never kept. `row` is not modified.
 */
export function candidateDistribution(row: Float32Array, opts: SamplingOptions): Candidates {
  checkSampling(opts);
  const temperature = opts.temperature ?? 1;
  const max = rowMax('candidateDistribution', row, temperature);
  const invT = 1 / temperature;
  const V = row.length;
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1, minP = opts.minP ?? 0;
  // Top-p without top-k needs the mass of the whole row; otherwise only the candidates' weights.
  const full = topK === 0 && topP < 1 ? weights(row, max, invT) : null;
  // Every filter keeps a most-likely prefix of the sorted order, so a set S = {logit >= cut} that
  // provably contains one filter's prefix contains the final set. Top-p after top-k needs the
  // exact top-k mass, so with both on only an S holding the whole top-k set qualifies.
  let cut = -Infinity;
  for (const c of CUTS) {
    const thr = max - c * temperature;
    let count = 0, mass = 0;
    for (let i = 0; i < V; i++) {
      if (row[i]! >= thr) {
        count++;
        if (full !== null) mass += full.w[i]!;
      }
    }
    const ok = (topK > 0 && count >= topK) ||
      (full !== null && mass >= topP * full.total) ||
      (!(topK > 0 && topP < 1) && minP > 0 && 2 * Math.exp(-c) <= minP); // margin for rounding at the cut
    if (ok) { cut = thr; break; }
  }
  let count = 0;
  for (let i = 0; i < V; i++) if (row[i]! >= cut) count++;
  let ids: Int32Array = new Int32Array(count);
  for (let i = 0, j = 0; i < V; i++) if (row[i]! >= cut) ids[j++] = i;
  ids = sortByLogit(row, ids);
  let n = ids.length;
  if (topK > 0) n = Math.min(n, topK);
  const w = new Float64Array(n);
  let kept = 0;
  for (let j = 0; j < n; j++) { w[j] = Math.exp((row[ids[j]!]! - max) * invT); kept += w[j]!; }
  while (n > 1 && w[n - 1] === 0) n--; // underflowed weights are never kept
  if (topP < 1) {
    const need = topP * (full !== null ? full.total : kept);
    let cum = 0, m = 0;
    while (m < n && cum < need) cum += w[m++]!;
    n = Math.max(1, m);
  }
  if (minP > 0) {
    const lo = minP * w[0]!;
    let m = 1;
    while (m < n && w[m]! >= lo) m++;
    n = m;
  }
  const probs = new Float64Array(n);
  let s = 0;
  for (let j = 0; j < n; j++) s += w[j]!;
  for (let j = 0; j < n; j++) probs[j] = w[j]! / s;
  return { ids: ids.slice(0, n), probs };
}

/** Uniform in [0, 1) with 48 random bits (two draws), so tiny probabilities are not rounded away. */
function uniform48(rng: Rng): number {
  return rng.uniform() + rng.uniform() / 16777216;
}

/**
 * A token drawn from `row` under `opts` with `rng` (reproducible for a given Rng state), or the
 * argmax when temperature is 0. `row` is not modified (apply the repetition penalty first).
 */
export function sampleToken(row: Float32Array, opts: SamplingOptions, rng: Rng): number {
  checkSampling(opts);
  const temperature = opts.temperature ?? 0;
  if (temperature === 0) return argmax(row);
  if (truncating(opts)) {
    const { ids, probs } = candidateDistribution(row, opts);
    const u = uniform48(rng);
    let acc = 0;
    for (let j = 0; j < ids.length; j++) {
      acc += probs[j]!;
      if (u < acc) return ids[j]!;
    }
    return ids[ids.length - 1]!;
  }
  // No filter: a walk in index order over the unnormalised weights.
  const max = rowMax('sampleToken', row, temperature);
  const { w, total } = weights(row, max, 1 / temperature);
  const u = uniform48(rng) * total;
  let acc = 0, last = 0;
  for (let i = 0; i < row.length; i++) {
    if (w[i] === 0) continue;
    acc += w[i]!;
    last = i;
    if (u < acc) return i;
  }
  return last;
}

/**
 * The next token for one sequence: applies the repetition penalty over `seen` to `row` in place,
 * then picks greedily (temperature 0) or draws with `rng` (required when sampling).
 */
export function nextToken(row: Float32Array, opts: SamplingOptions, rng: Rng | null, seen: Iterable<number> = []): number {
  applyRepetitionPenalty(row, seen, opts.repetitionPenalty ?? 1);
  if ((opts.temperature ?? 0) === 0) return argmax(row);
  if (rng === null) throw new Error('nextToken: sampling (temperature > 0) needs an Rng');
  return sampleToken(row, opts, rng);
}
