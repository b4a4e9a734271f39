// SliME pieces (SPEC §2.2): the per-token gate that mixes the two global-view experts
// (expert 0 = MLP(x), expert 1 = MLP(Resampler(x))), and the text-guided selector that keeps the
// local tokens most similar to the text (cosine scores, softmax, top-p plus one, original order).
//
// Dims: T image tokens, C gate input width (vision width, 1024), D expert output width, L text tokens.
//
// Param tree: { w_gate [C, 2] } (zero-initialised, so the mix starts at exactly 0.5 / 0.5).

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { fromData, type Tensor } from '../engine/tensor.ts';
import { constInit } from '../nn/init.ts';

export interface SlimeGate {
  w_gate: Tensor; // [C, 2]
}

export function initSlimeGate(C: number): SlimeGate {
  if (!Number.isInteger(C) || C < 1) throw new Error(`slime gate: input width must be a positive integer, got ${C}`);
  return { w_gate: constInit([C, 2], 0) };
}

export interface SlimeGateOptions {
  /** Training adds noise ε·(softplus(x·w_gate) + 0.01), ε ~ N(0, 1) drawn from rng. */
  training?: boolean;
  rng?: Rng | null;
  /** mm_learnable_gated >= 0: output expert `force` only (staged training). */
  force?: number | null;
}

/** softplus(z) = max(z, 0) + log(1 + exp(-|z|)). */
function softplus(z: Tensor): Tensor {
  return F.add(F.relu(z), F.log(F.addScalar(F.exp(F.neg(F.abs(z))), 1)));
}

/** Per-token mixing weights g [..., T, 2] (softmax of the (noisy) gate logits; top-2 of 2 = all, sums to 1). */
export function slimeGateWeights(p: SlimeGate, x: Tensor, opts: SlimeGateOptions = {}): Tensor {
  const C = p.w_gate.shape[0]!;
  if (p.w_gate.ndim !== 2 || p.w_gate.shape[1] !== 2) throw new Error(`slime gate: w_gate must be [C, 2], got ${p.w_gate.describe()}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== C) throw new Error(`slime gate: input ${x.describe()} must end in C=${C}`);
  let logits = F.matmul(x, p.w_gate); // [..., T, 2]
  if (opts.training) {
    if (!opts.rng) throw new Error('slime gate: training noise needs an rng');
    const eps = F.randn(logits.shape, { rng: opts.rng });
    logits = F.add(logits, F.mul(eps, F.addScalar(softplus(logits), 0.01)));
  }
  return F.softmax(logits, -1);
}

/**
 * Σ_e g_e · expert_e. x [..., T, C] is the gate input; e0, e1 [..., T, D] are the expert outputs.
 * At initialisation (w_gate = 0, no noise) this is exactly 0.5·e0 + 0.5·e1.
 */
export function slimeGateMix(p: SlimeGate, x: Tensor, e0: Tensor, e1: Tensor, opts: SlimeGateOptions = {}): Tensor {
  const lead = x.shape.slice(0, -1);
  for (const [name, e] of [['expert 0', e0], ['expert 1', e1]] as const) {
    if (e.ndim !== x.ndim || e.shape.slice(0, -1).some((d, i) => d !== lead[i])) {
      throw new Error(`slime gate: ${name} output ${e.describe()} must be [${lead.join(', ')}, D] to match gate input ${x.describe()}`);
    }
  }
  if (e0.shape[e0.ndim - 1] !== e1.shape[e1.ndim - 1]) throw new Error(`slime gate: expert widths differ: ${e0.describe()} vs ${e1.describe()}`);
  const force = opts.force ?? null;
  if (force !== null && force >= 0) {
    if (force !== 0 && force !== 1) throw new Error(`slime gate: force must be 0 or 1 (or negative for the learned mix), got ${force}`);
    return F.mul(force === 0 ? e0 : e1, 1);
  }
  const g = slimeGateWeights(p, x, opts); // [..., T, 2]
  const last = g.ndim - 1;
  return F.add(F.mul(e0, F.slice(g, last, 0, 1)), F.mul(e1, F.slice(g, last, 1, 2))); // [..., T, D]
}

// ---- text-guided selector ---------------------------------------------------------------------

/**
 * score_i = Σ_t cos(local_i, text_t) over unmasked text positions. local [T, C], text [L, C],
 * textMask bool/u8 [L] (1 = real token) or null = all. Returns [T].
 */
export function textSimilarityScores(local: Tensor, text: Tensor, textMask: Tensor | null = null): Tensor {
  if (local.ndim !== 2 || text.ndim !== 2 || local.shape[1] !== text.shape[1]) {
    throw new Error(`slime selector: local tokens must be [T, C] and text [L, C] with the same C, got ${local.describe()} and ${text.describe()}`);
  }
  const L = text.shape[0]!;
  const unit = (t: Tensor): Tensor => F.div(t, F.clamp(F.sqrt(F.sum(F.square(t), -1, true)), 1e-8)); // rows / ||row||
  let S = F.matmul(unit(local), F.transpose(unit(text))); // [T, L]
  if (textMask !== null) {
    if (textMask.ndim !== 1 || textMask.shape[0] !== L) throw new Error(`slime selector: text mask ${textMask.describe()} must be [L=${L}]`);
    const m = F.denseU8(textMask, 'slime selector');
    S = F.mul(S, fromData(Float32Array.from(m, (v) => (v ? 1 : 0)), [1, L]));
  }
  return F.sum(S, -1); // [T]
}

export interface TopPOptions {
  /** Probability mass to keep, in [0, 1]; 1 keeps every token. */
  topp: number;
  /** Softmax temperature (mm_resampler_temp, default 1). */
  temp?: number;
  /** Training adds N(0, noiseStd²) to the scores (SliME: 0.1) using rng. */
  noiseStd?: number;
  rng?: Rng | null;
}

/**
 * Indices (ascending) of the tokens to keep: p = softmax(score / temp), sort descending, keep the
 * largest prefix with cumsum <= topp plus one more token (if any remain). Ties keep the lower index first.
 */
export function selectTopP(scores: Tensor | Float32Array, opts: TopPOptions): Int32Array {
  const topp = opts.topp, temp = opts.temp ?? 1, noiseStd = opts.noiseStd ?? 0;
  if (!(topp >= 0 && topp <= 1)) throw new Error(`slime selector: topp must be in [0, 1], got ${topp}`);
  if (!(temp > 0) || !Number.isFinite(temp)) throw new Error(`slime selector: temp must be a positive finite number, got ${temp}`);
  if (!(noiseStd >= 0)) throw new Error(`slime selector: noiseStd must be >= 0, got ${noiseStd}`);
  if (noiseStd > 0 && !opts.rng) throw new Error('slime selector: score noise needs an rng');
  let s: Float32Array;
  if (scores instanceof Float32Array) s = scores;
  else {
    if (scores.ndim !== 1) throw new Error(`slime selector: scores must be [T], got ${scores.describe()}`);
    s = F.denseData(scores);
  }
  const T = s.length;
  if (topp >= 1) return Int32Array.from({ length: T }, (_, i) => i);
  const z = Array.from(s, (v) => (v + (noiseStd > 0 ? noiseStd * opts.rng!.normal() : 0)) / temp);
  for (const v of z) if (!Number.isFinite(v)) throw new Error(`slime selector: non-finite score ${v}`);
  const mx = Math.max(...z);
  const ex = z.map((v) => Math.exp(v - mx));
  const tot = ex.reduce((a, b) => a + b, 0);
  const order = ex.map((_, i) => i).sort((a, b) => ex[b]! - ex[a]! || a - b);
  let keep = 0, cum = 0;
  while (keep < T && cum + ex[order[keep]!]! / tot <= topp) cum += ex[order[keep++]!]! / tot;
  keep = Math.min(T, keep + 1);
  return Int32Array.from(order.slice(0, keep)).sort();
}

/** The selected local tokens [K, D] of tokens [T, D], in their original order. */
export function gatherTokens(tokens: Tensor, keep: Int32Array): Tensor {
  if (tokens.ndim !== 2) throw new Error(`slime selector: tokens must be [T, D], got ${tokens.describe()}`);
  for (const i of keep) if (i < 0 || i >= tokens.shape[0]!) throw new Error(`slime selector: index ${i} outside [0, ${tokens.shape[0]})`);
  return F.indexSelect(tokens, 0, fromData(Int32Array.from(keep), [keep.length], 'i32')); // [K, D]
}
