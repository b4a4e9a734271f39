// Model-agnostic text generation over any CausalLM: batched prefill with left padding, then one
// token per row per step through the KV cache, with sampling, stop tokens, stop strings,
// streaming, cancellation and a context-length check.
//
// Dims: B rows, T padded prompt length, V vocabulary, S = cache positions used so far.

import { noGrad } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import { Rng } from '../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../engine/tensor.ts';
import type { CausalLM, KVCache } from '../models/causal-lm.ts';
import { checkSampling, nextToken, type SamplingOptions } from './sampling.ts';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens generated per row (an integer >= 0). */
  maxNewTokens: number;
  /** Seed for sampling; row r draws from its own Rng seeded with rowSeed(seed, r). Default 0. */
  seed?: number;
  /** Token ids that end a row (eos); the stop token is kept in `tokens` but not in `text`. */
  stopTokenIds?: readonly number[];
  /** A row ends once its decoded continuation contains one of these; `text` is cut before it. Needs `decode`. */
  stopStrings?: readonly string[];
  /** Token ids -> text, used for `text`, stop strings and streaming deltas. */
  decode?: (ids: readonly number[]) => string;
  /**
   * Called once per generated token, in row order within a step. The deltas of a row concatenate
   * to exactly its final `text` (for decoders whose output on a prefix is a prefix of the output
   * on the whole): text that may still change (a trailing U+FFFD or lone high surrogate, or a
   * suffix that could begin a stop string) is held back until it is settled. When a row ends
   * without a new token (abort), held-back text arrives in one last call with tokenId -1.
   */
  onToken?: (row: number, tokenId: number, textDelta: string) => void;
  /** Checked before every model call; generation also yields to the event loop between steps so it can fire. */
  signal?: AbortSignal;
  /** Token fed at left padding and after a row has finished (default 0); must be a valid id. */
  padTokenId?: number;
  /**
   * A row needs prompt + maxNewTokens <= lm.maxPositions. 'error' (default) throws naming the
   * limit; 'truncate' lowers the row's budget to min(maxPositions - its prompt length,
   * maxPositions - T + 1), T the longest prompt, so the batch's cache (which also holds the
   * left padding) never needs more than maxPositions slots; the row then ends with 'length'.
   * A prompt longer than maxPositions always throws.
   */
  lengthPolicy?: 'error' | 'truncate';
}

export interface Usage {
  promptTokens: number;
  /** Generated tokens, the stop token included. */
  completionTokens: number;
  totalTokens: number;
}

export interface Timings {
  /** The batched prefill (shared by every row of the call). */
  prefillMs: number;
  /** From the end of prefill until this row finished. */
  decodeMs: number;
  /** Tokens after the first (which prefill produces) per second of decodeMs; 0 when none. */
  decodeTokensPerSecond: number;
}

export interface GenerateResult {
  /** Generated ids (not the prompt), the stop token included. */
  tokens: number[];
  /** Decoded continuation without the stop token or stop string; null when no `decode` was given. */
  text: string | null;
  finishReason: FinishReason;
  /** The stop token id or stop string that ended the row; null otherwise. */
  stoppedBy: number | string | null;
  usage: Usage;
  timings: Timings;
}

/** The seed row r of a batch samples with (row 0 uses `seed` itself), so one row can be replayed alone. */
export function rowSeed(seed: number, row: number): number {
  return (seed + Math.imul(row, 0x9e3779b9)) >>> 0;
}

interface Row {
  prompt: readonly number[];
  tokens: number[];
  budget: number;
  finish: FinishReason | null;
  stoppedBy: number | string | null;
  seen: Set<number>;
  rng: Rng | null;
  /** Latest decoded continuation (text ids only) and the part of it already streamed. */
  text: string;
  emitted: string;
  doneAt: number;
}

const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Generates continuations of `prompts` (token id rows, any lengths >= 1) in one batch, one
 * result per row in order. Rows are independent: a row's tokens do not depend on the other rows
 * (save the shared cap of lengthPolicy 'truncate'), so greedy batched output equals each row
 * run alone, and sampled row r equals a lone run with seed rowSeed(seed, r). Errors thrown by
 * the model or by onToken propagate after the cache is disposed.
 */
export async function generate(lm: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): Promise<GenerateResult[]> {
  const rows = setup(lm, prompts, opts);
  const B = rows.length, V = lm.vocabSize;
  const pad = opts.padTokenId ?? 0;
  const stopIds = new Set(opts.stopTokenIds ?? []);
  const steps = Math.max(0, ...rows.map((r) => r.budget));
  const T = Math.max(...rows.map((r) => r.prompt.length));
  const padded = rows.some((r) => r.prompt.length !== T);
  const t0 = performance.now();
  let prefillEnd = t0;
  for (const r of rows) if (r.budget === 0) finish(r, 'length', null, t0);
  if (opts.signal?.aborted) for (const r of rows) if (r.finish === null) finish(r, 'abort', null, t0);
  if (rows.every((r) => r.finish !== null)) return results(rows, opts.decode !== undefined, 0, t0);

  // The last generated token is never fed back, so the cache needs T + steps - 1 positions.
  const cache: KVCache = lm.newCache(B, T + steps - 1);
  try {
    const ids = new Int32Array(B * T).fill(pad); // [B, T] left padded
    let mask: Uint8Array | null = padded ? new Uint8Array(B * T) : null; // [B, S] once decoding
    for (let b = 0; b < B; b++) {
      const p = rows[b]!.prompt, off = b * T + T - p.length;
      for (let j = 0; j < p.length; j++) ids[off + j] = p[j]!;
      if (mask !== null) mask.fill(1, off, (b + 1) * T);
    }
    let width = T;
    let logits = step(lm, cache, ids, [B, T], mask, width, 'prefill');
    prefillEnd = performance.now();
    for (let s = 0; ; s++) {
      // logits: [B, V] for the last fed position of each row
      for (let b = 0; b < B; b++) {
        const r = rows[b]!;
        if (r.finish !== null) continue;
        const id = nextToken(logits.subarray(b * V, (b + 1) * V), opts, r.rng, r.seen);
        accept(r, b, id, stopIds, opts);
      }
      if (rows.every((r) => r.finish !== null)) break;
      await nextTick();
      if (opts.signal?.aborted) break;
      const feed = new Int32Array(B); // [B, 1]
      for (let b = 0; b < B; b++) {
        const r = rows[b]!;
        feed[b] = r.finish === null ? r.tokens[r.tokens.length - 1]! : pad;
      }
      if (mask !== null) {
        // A finished row's pad is masked, so its positions stop advancing (truncated budgets
        // differ per row and must not push a finished row past maxPositions).
        const wider = new Uint8Array(B * (width + 1));
        for (let b = 0; b < B; b++) {
          wider.set(mask.subarray(b * width, (b + 1) * width), b * (width + 1));
          wider[b * (width + 1) + width] = rows[b]!.finish === null ? 1 : 0;
        }
        mask = wider;
      }
      width++;
      logits = step(lm, cache, feed, [B, 1], mask, width, `decode step ${s + 1}`);
    }
  } finally {
    cache.dispose();
  }
  const end = performance.now();
  for (let b = 0; b < B; b++) {
    const r = rows[b]!;
    if (r.finish !== null) continue;
    finish(r, 'abort', null, end);
    const delta = flush(r, r.text);
    if (delta !== '' && opts.onToken) opts.onToken(b, -1, delta);
  }
  return results(rows, opts.decode !== undefined, prefillEnd - t0, prefillEnd);
}

function setup(lm: CausalLM, prompts: readonly (readonly number[])[], opts: GenerateOptions): Row[] {
  checkSampling(opts);
  const V = lm.vocabSize, P = lm.maxPositions;
  const n = opts.maxNewTokens;
  if (!(Number.isInteger(n) && n >= 0)) throw new Error(`generate: maxNewTokens must be an integer >= 0, got ${n}`);
  if (!Array.isArray(prompts) || prompts.length === 0) throw new Error('generate: prompts must be a non-empty array of token id arrays');
  const pad = opts.padTokenId ?? 0;
  if (!(Number.isInteger(pad) && pad >= 0 && pad < V)) throw new Error(`generate: padTokenId ${pad} is outside the vocabulary [0, ${V})`);
  for (const id of opts.stopTokenIds ?? []) {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new Error(`generate: stop token id ${id} is outside the vocabulary [0, ${V})`);
  }
  const stops = opts.stopStrings ?? [];
  if (stops.length > 0 && opts.decode === undefined) throw new Error('generate: stopStrings need a decode function');
  if (stops.some((s) => typeof s !== 'string' || s === '')) throw new Error('generate: stop strings must be non-empty strings');
  const policy = opts.lengthPolicy ?? 'error';
  if (policy !== 'error' && policy !== 'truncate') throw new Error(`generate: lengthPolicy must be 'error' or 'truncate', got '${String(policy)}'`);
  const seed = opts.seed ?? 0;
  const sampling = (opts.temperature ?? 0) > 0;
  const T = Math.max(...prompts.map((p) => (Array.isArray(p) ? p.length : 0)));
  return prompts.map((p, b) => {
    if (!Array.isArray(p) || p.length === 0) throw new Error(`generate: prompt ${b} is empty (every row needs at least one token)`);
    for (let j = 0; j < p.length; j++) {
      const id = p[j];
      if (!(Number.isInteger(id) && id! >= 0 && id! < V)) throw new Error(`generate: prompt ${b} token ${j} is ${id}, outside the vocabulary [0, ${V})`);
    }
    if (p.length > P) throw new Error(`generate: prompt ${b} has ${p.length} tokens, more than the model's limit of ${P} positions (maxPositions)`);
    let budget = n;
    if (p.length + n > P) {
      if (policy === 'error') {
        throw new Error(`generate: prompt ${b} (${p.length} tokens) + maxNewTokens ${n} = ${p.length + n} exceeds the model's limit of ${P} positions (maxPositions); shorten the prompt, lower maxNewTokens or use lengthPolicy 'truncate'`);
      }
      budget = P - p.length;
    }
    if (policy === 'truncate') budget = Math.min(budget, P - T + 1);
    return {
      prompt: p, tokens: [], budget, finish: null, stoppedBy: null, seen: new Set(p),
      rng: sampling ? new Rng(rowSeed(seed, b)) : null, text: '', emitted: '', doneAt: 0,
    };
  });
}

/** One model call on [B, t] ids; returns a copy of the last position's logits, [B, V]. */
function step(lm: CausalLM, cache: KVCache, ids: Int32Array, shape: [number, number], mask: Uint8Array | null, width: number, what: string): Float32Array {
  const [B] = shape, V = lm.vocabSize;
  return noGrad(() => tidy(() => {
    const tokens = fromData(ids, shape, 'i32'); // [B, t]
    const attentionMask: Tensor | null = mask === null ? null : fromData(mask, [B, width], 'bool'); // [B, S]
    const logits = lm.forward(tokens, cache, { attentionMask, lastOnly: true }); // [B, 1, V]
    const sh = logits.shape;
    if (sh.length !== 3 || sh[0] !== B || sh[2] !== V || sh[1]! < 1) {
      throw new Error(`generate: ${what}: forward returned logits [${sh.join(', ')}], expected [${B}, 1, ${V}]`);
    }
    const t = sh[1]!;
    const all = F.denseData(logits);
    const out = new Float32Array(B * V);
    for (let b = 0; b < B; b++) out.set(all.subarray((b * t + t - 1) * V, (b * t + t) * V), b * V);
    return out;
  }));
}

function finish(r: Row, why: FinishReason, by: number | string | null, now: number): void {
  r.finish = why;
  r.stoppedBy = by;
  r.doneAt = now;
}

/** Appends a sampled token to a row, ends it if due and streams its text delta. */
function accept(r: Row, b: number, id: number, stopIds: Set<number>, opts: GenerateOptions): void {
  r.tokens.push(id);
  r.seen.add(id);
  const now = performance.now();
  const byToken = stopIds.has(id);
  if (byToken) finish(r, 'stop', id, now);
  let delta = '';
  if (opts.decode !== undefined) {
    const stops = opts.stopStrings ?? [];
    if (!byToken) r.text = opts.decode(r.tokens);
    let final: string | null = byToken ? r.text : null;
    if (!byToken && stops.length > 0) {
      let at = -1, which = '';
      for (const s of stops) {
        const i = r.text.indexOf(s);
        if (i >= 0 && (at < 0 || i < at)) { at = i; which = s; }
      }
      if (at >= 0) {
        finish(r, 'stop', which, now);
        r.text = r.text.slice(0, at);
        final = r.text;
      }
    }
    if (final === null && r.tokens.length >= r.budget) {
      finish(r, 'length', null, now);
      final = r.text;
    }
    delta = final !== null ? flush(r, final) : emitSettled(r, stops);
  } else if (!byToken && r.tokens.length >= r.budget) finish(r, 'length', null, now);
  if (opts.onToken) opts.onToken(b, id, delta);
}

/** The rest of a finished row's text. */
function flush(r: Row, final: string): string {
  if (!final.startsWith(r.emitted)) return '';
  const d = final.slice(r.emitted.length);
  r.emitted = final;
  return d;
}

/** New text of a running row that can no longer change or turn out to be part of a stop string. */
function emitSettled(r: Row, stops: readonly string[]): string {
  const text = r.text;
  let n = text.length;
  while (n > 0 && text.charCodeAt(n - 1) === 0xfffd) n--;
  if (n > 0) {
    const c = text.charCodeAt(n - 1);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  let hold = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, n); k > hold; k--) {
      if (text.startsWith(s.slice(0, k), n - k)) { hold = k; break; }
    }
  }
  n -= hold;
  if (n <= r.emitted.length || !text.startsWith(r.emitted)) return '';
  const d = text.slice(r.emitted.length, n);
  r.emitted = text.slice(0, n);
  return d;
}

function results(rows: Row[], hasDecode: boolean, prefillMs: number, decodeStart: number): GenerateResult[] {
  return rows.map((r) => {
    const decodeMs = Math.max(0, r.doneAt - decodeStart);
    const after = Math.max(0, r.tokens.length - 1);
    return {
      tokens: r.tokens,
      text: hasDecode ? r.text : null,
      finishReason: r.finish!,
      stoppedBy: r.stoppedBy,
      usage: { promptTokens: r.prompt.length, completionTokens: r.tokens.length, totalTokens: r.prompt.length + r.tokens.length },
      timings: { prefillMs, decodeMs, decodeTokensPerSecond: decodeMs > 0 && after > 0 ? after / (decodeMs / 1000) : 0 },
    };
  });
}
