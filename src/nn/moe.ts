// Sparse mixture-of-experts FFN: a linear router, softmax, top-k selection, optional expert
// capacity with token dropping, dispatch by gathering each expert's tokens, and a weighted combine.
// Covers Mixtral / SPHINX-MoE (top-2 of E, renormalised, no capacity) and MoE-LLaVA / DeepSpeed
// top-2 gating (capacity, top-1 priority, renormalisation over the kept slots).
//
// Dims: N tokens (all leading dims flattened), D width, F expert hidden, E experts, k slots per token.
//
// Param tree (Mixtral names, under the layer's `block_sparse_moe`):
//   gate.weight [E, D]; experts.<e>.w1.weight [F, D], w2.weight [D, F], w3.weight [F, D].
//
// Balance loss normalisation (both variants equal exactly 1 under uniform routing, and grow as
// routing concentrates on fewer experts): L = E · Σ_e f_e · P_e, with P_e = mean_n probs[n, e] and
//   'topk': f_e = count_e / (N·k), count over all k slots (Mixtral / SPHINX-MoE §1.8);
//   'top1': f_e = count1_e / N, first choices only (DeepSpeed top2gating, MoE-LLaVA §11).
// Counts are taken before capacity dropping (as DeepSpeed) and carry no gradient; P does.

import * as F from '../engine/ops/index.ts';
import { noGrad } from '../engine/autograd.ts';
import type { Rng } from '../engine/rng.ts';
import { fromData, type Tensor } from '../engine/tensor.ts';
import { leaf } from './init.ts';
import { initLinear, linear, type Linear } from './linear.ts';

export interface SwiGluExpert {
  w1: Linear; // gate proj [F, D]
  w2: Linear; // down proj [D, F]
  w3: Linear; // up proj [F, D]
}

export interface SparseMoe {
  gate: Linear; // router [E, D], no bias
  experts: SwiGluExpert[]; // E entries
}

export interface RouterOptions {
  /** Slots per token (default 2). */
  topK?: number;
  /** Renormalise the kept slot weights to sum to 1 per token (default true: Mixtral, SPHINX, DeepSpeed). */
  normalize?: boolean;
  /** Expert capacity = max(ceil(k·N/E · capacityFactor), minCapacity); null/undefined = no dropping. */
  capacityFactor?: number | null;
  /** Lower bound on the capacity (DeepSpeed min_capacity; default 0). */
  minCapacity?: number;
  /** Which choices count towards f_e in the balance loss (default 'topk'; see the file header). */
  balance?: 'topk' | 'top1';
  /** When given, slots after the first pick argmax(logits + Gumbel noise) over the experts not yet
   * chosen (DeepSpeed top2gating in training); weights still come from the clean softmax. */
  noiseRng?: Rng | null;
}

export interface Routing {
  probs: Tensor; // [N, E] softmax of the router logits
  weights: Tensor; // [N, k] combine weight per slot; 0 on dropped slots
  experts: Int32Array; // [N·k] chosen expert per slot (row-major n, j)
  kept: Uint8Array; // [N·k] 1 = slot survived the capacity limit
  counts: Int32Array; // [E] slots routed to each expert before dropping
  capacity: number | null; // slots per expert, null = unlimited
  balanceLoss: Tensor; // [] E · Σ_e f_e · P_e (1 when uniform)
  zLoss: Tensor; // [] mean_n logsumexp(logits_n)^2 (ST-MoE router z-loss)
}

const F32_EPS = 1.1920928955078125e-7;

function checkInt(name: string, v: number, lo: number): void {
  if (!Number.isInteger(v) || v < lo) throw new Error(`moe: ${name} must be an integer >= ${lo}, got ${v}`);
}

/** Expert capacity for N tokens (DeepSpeed: ceil(k·N/E · cf), at least minCapacity). */
export function expertCapacity(N: number, E: number, k: number, capacityFactor: number, minCapacity = 0): number {
  if (!(capacityFactor > 0) || !Number.isFinite(capacityFactor)) throw new Error(`moe: capacityFactor must be a positive finite number, got ${capacityFactor}`);
  checkInt('minCapacity', minCapacity, 0);
  return Math.max(Math.ceil((k * N / E) * capacityFactor), minCapacity);
}

/**
 * Routes N tokens given router logits [N, E]. Capacity priority follows DeepSpeed: every token's
 * first choice (in token order) is placed before any second choice, and so on; a slot whose
 * position in its expert's queue is >= capacity is dropped.
 */
export function route(logits: Tensor, opts: RouterOptions = {}): Routing {
  if (logits.ndim !== 2) throw new Error(`moe: router logits must be [N, E], got ${logits.describe()}`);
  const [N, E] = logits.shape as [number, number];
  const k = opts.topK ?? 2;
  checkInt('numExperts', E, 1);
  checkInt('topK', k, 1);
  if (k > E) throw new Error(`moe: topK=${k} exceeds the number of experts ${E}`);
  const balance = opts.balance ?? 'topk';
  if (balance !== 'topk' && balance !== 'top1') throw new Error(`moe: balance must be 'topk' or 'top1', got '${String(balance)}'`);
  const cf = opts.capacityFactor ?? null;
  const capacity = cf === null ? null : expertCapacity(N, E, k, cf, opts.minCapacity ?? 0);

  const probs = F.softmax(logits, -1); // [N, E]
  const pd = F.denseData(probs);
  const ld = opts.noiseRng ? F.denseData(logits) : null;

  // Choose experts per slot: slot 0 by probability, later slots by (noisy) score excluding earlier picks.
  const experts = new Int32Array(N * k);
  const taken = new Uint8Array(E);
  for (let n = 0; n < N; n++) {
    taken.fill(0);
    for (let j = 0; j < k; j++) {
      let best = -1, bestV = -Infinity;
      for (let e = 0; e < E; e++) {
        if (taken[e]) continue;
        let v = pd[n * E + e]!;
        if (ld !== null && j > 0) v = ld[n * E + e]! + gumbel(opts.noiseRng!);
        if (best < 0 || v > bestV) { best = e; bestV = v; }
      }
      taken[best] = 1;
      experts[n * k + j] = best;
    }
  }

  const counts = new Int32Array(E);
  for (let s = 0; s < N * k; s++) counts[experts[s]!]!++;
  const kept = new Uint8Array(N * k);
  const fill = new Int32Array(E);
  for (let j = 0; j < k; j++) {
    for (let n = 0; n < N; n++) {
      const s = n * k + j, e = experts[s]!;
      if (capacity === null || fill[e]! < capacity) kept[s] = 1;
      fill[e]!++;
    }
  }

  const idx = fromData(experts.slice(), [N, k], 'i32');
  const chosen = F.gather(probs, 1, idx); // [N, k]
  const keepT = fromData(Float32Array.from(kept), [N, k]);
  let weights = F.mul(chosen, keepT); // [N, k]
  if (opts.normalize ?? true) weights = F.div(weights, F.clamp(F.sum(weights, -1, true), F32_EPS)); // [N, k]

  const frac = new Float32Array(E);
  if (balance === 'topk') for (let e = 0; e < E; e++) frac[e] = N === 0 ? 0 : counts[e]! / (N * k);
  else for (let n = 0; n < N; n++) frac[experts[n * k]!]! += 1 / N;
  const meanP = N === 0 ? F.zeros([E]) : F.mean(probs, 0); // [E]
  const balanceLoss = F.scale(F.sum(F.mul(meanP, fromData(frac, [E]))), E); // []

  const lse = F.sub(F.slice(logits, 1, 0, 1), F.slice(F.logSoftmax(logits, -1), 1, 0, 1)); // [N, 1]
  const zLoss = N === 0 ? F.zeros([]) : F.mean(F.square(lse)); // []

  return { probs, weights, experts, kept, counts, capacity, balanceLoss, zLoss };
}

function gumbel(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng.uniform();
  return -Math.log(-Math.log(u));
}

/**
 * Runs each expert on the tokens routed to it and combines: out[n] = Σ_j weights[n, j] · expert_{e(n,j)}(x[n]).
 * x [N, D]; expertFn(e, xe [m, D]) -> [m, Dout]. Experts with no kept slot are not called.
 */
export function dispatch(x: Tensor, routing: Routing, numExperts: number, expertFn: (e: number, xe: Tensor) => Tensor): Tensor {
  if (x.ndim !== 2) throw new Error(`moe: dispatch input must be [N, D], got ${x.describe()}`);
  const N = x.shape[0]!;
  const k = routing.weights.shape[1]!;
  if (routing.weights.shape[0] !== N) throw new Error(`moe: routing is for ${routing.weights.shape[0]} tokens but x has ${N}`);
  // Per expert: the token ids (in token order) of its kept slots, and each slot's row in the stacked output.
  const tokens: number[][] = Array.from({ length: numExperts }, () => []);
  const slotsOf: number[][] = Array.from({ length: numExperts }, () => []);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < k; j++) {
      const s = n * k + j, e = routing.experts[s]!;
      if (e < 0 || e >= numExperts) throw new Error(`moe: slot ${s} routes to expert ${e}, outside [0, ${numExperts})`);
      if (!routing.kept[s]) continue;
      tokens[e]!.push(n);
      slotsOf[e]!.push(s);
    }
  }
  const outs: Tensor[] = [];
  const row = new Int32Array(N * k);
  let S = 0;
  for (let e = 0; e < numExperts; e++) {
    const m = tokens[e]!.length;
    if (m === 0) continue;
    const xe = F.indexSelect(x, 0, fromData(Int32Array.from(tokens[e]!), [m], 'i32')); // [m, D]
    const ye = expertFn(e, xe); // [m, Dout]
    if (ye.ndim !== 2 || ye.shape[0] !== m) throw new Error(`moe: expert ${e} returned ${ye.describe()} for ${m} tokens; expected [${m}, Dout]`);
    outs.push(ye);
    for (let i = 0; i < m; i++) row[slotsOf[e]![i]!] = S + i;
    S += m;
  }
  // Every slot dropped: no expert ran, so the output width is taken to be D (zeros).
  if (outs.length === 0) return F.mul(x, 0);
  const Dout = outs[0]!.shape[1]!;
  for (let s = 0; s < N * k; s++) if (!routing.kept[s]) row[s] = S; // the zero row
  const Y = F.concat([...outs, F.zeros([1, Dout])], 0); // [S + 1, Dout]
  let out: Tensor | null = null;
  for (let j = 0; j < k; j++) {
    const rj = new Int32Array(N);
    for (let n = 0; n < N; n++) rj[n] = row[n * k + j]!;
    const yj = F.indexSelect(Y, 0, fromData(rj, [N], 'i32')); // [N, Dout]
    const term = F.mul(yj, F.slice(routing.weights, 1, j, j + 1)); // [N, Dout]
    out = out === null ? term : F.add(out, term);
  }
  return out!;
}

// ---- SwiGLU sparse MoE layer ------------------------------------------------------------------

/** Mixtral expert: w2(silu(w1 x) * w3 x). x [m, D] -> [m, D]. */
export function swigluExpert(p: SwiGluExpert, x: Tensor): Tensor {
  return linear(p.w2, F.mul(F.silu(linear(p.w1, x)), linear(p.w3, x)));
}

export function initSwigluExpert(D: number, Fh: number, rng: Rng): SwiGluExpert {
  return { w1: initLinear(D, Fh, rng, false), w2: initLinear(Fh, D, rng, false), w3: initLinear(D, Fh, rng, false) };
}

export function initSparseMoe(D: number, Fh: number, numExperts: number, rng: Rng): SparseMoe {
  checkInt('numExperts', numExperts, 1);
  checkInt('width', D, 1);
  checkInt('hidden', Fh, 1);
  return { gate: initLinear(D, numExperts, rng, false), experts: Array.from({ length: numExperts }, () => initSwigluExpert(D, Fh, rng)) };
}

/** MoE-LLaVA-style upcycling: E copies of one dense expert and a fresh router. */
export function upcycleSparseMoe(dense: SwiGluExpert, numExperts: number, rng: Rng): SparseMoe {
  checkInt('numExperts', numExperts, 1);
  const D = dense.w1.weight.shape[1]!;
  const copy = (l: Linear): Linear => noGrad(() => ({ weight: leaf(F.clone(l.weight)), bias: l.bias === null ? null : leaf(F.clone(l.bias)) }));
  return {
    gate: initLinear(D, numExperts, rng, false),
    experts: Array.from({ length: numExperts }, () => ({ w1: copy(dense.w1), w2: copy(dense.w2), w3: copy(dense.w3) })),
  };
}

export interface MoeOutput {
  out: Tensor; // [..., D]
  routing: Routing;
}

/** Sparse MoE FFN over x [..., D]. */
export function sparseMoe(p: SparseMoe, x: Tensor, opts: RouterOptions = {}): MoeOutput {
  const E = p.experts.length;
  if (E === 0) throw new Error('moe: the layer has no experts');
  if (p.gate.weight.ndim !== 2 || p.gate.weight.shape[0] !== E) {
    throw new Error(`moe: gate.weight ${p.gate.weight.describe()} must be [E=${E}, D]`);
  }
  const D = p.gate.weight.shape[1]!;
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== D) throw new Error(`moe: input ${x.describe()} must end in D=${D}`);
  const xf = F.reshape(x, [-1, D]); // [N, D]
  const routing = route(linear(p.gate, xf), opts); // logits [N, E]
  const y = dispatch(xf, routing, E, (e, xe) => swigluExpert(p.experts[e]!, xe)); // [N, D]
  return { out: F.reshape(y, x.shape), routing };
}
