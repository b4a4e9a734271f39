// Optimizers over named parameters (paths equal checkpoint keys). Updates run in fused
// backend kernels, in place. Gradients accumulate in `.grad` across backward calls until
// `zeroGrad()`, which is how gradient accumulation works.

import { backend } from '../engine/backend.ts';
import { flatten } from '../engine/tree.ts';
import { Tensor, untracked, empty } from '../engine/tensor.ts';

export type Params = Map<string, Tensor>;

/** The trainable leaves of a tree (requiresGrad), keyed by path. */
export function paramsOf(tree: unknown): Params {
  return new Map([...flatten<Tensor>(tree)].filter(([, t]) => t.requiresGrad));
}

export interface Optimizer {
  readonly params: Params;
  lr: number;
  /** Applies one update from the accumulated gradients (parameters without .grad are skipped). */
  step(): void;
  zeroGrad(): void;
  /** Optimizer state as named f32 arrays plus scalars, for checkpoints. */
  stateDict(): { tensors: Map<string, Float32Array>; step: number };
  loadStateDict(s: { tensors: Map<string, Float32Array>; step: number }): void;
}

function checkParams(params: Params): void {
  for (const [k, p] of params) {
    if (p.dtype !== 'f32' || !p.contiguous || p.offset !== 0 || p.buffer().length !== p.size) throw new Error(`optimizer: parameter '${k}' must be a dense f32 tensor, got ${p.describe()}`);
  }
}

function zeroGrads(params: Params): void {
  for (const p of params.values()) {
    p.grad?.dispose();
    p.grad = null;
  }
}

function gradData(k: string, p: Tensor): Float32Array | null {
  const g = p.grad;
  if (g === null) return null;
  if (g.size !== p.size) throw new Error(`optimizer: gradient of '${k}' has shape [${g.shape}] but the parameter is [${p.shape}]`);
  return g.data;
}

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** AdamW with decoupled weight decay and bias correction (torch.optim.AdamW defaults). */
export class AdamW implements Optimizer {
  readonly params: Params;
  lr: number;
  readonly beta1: number; readonly beta2: number; readonly eps: number; readonly weightDecay: number;
  private t = 0;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();

  constructor(params: Params, opts: AdamWOptions = {}) {
    checkParams(params);
    this.params = params;
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) throw new Error(`AdamW: betas must be in [0, 1), got ${this.beta1}, ${this.beta2}`);
    for (const [k, p] of params) {
      this.m.set(k, new Float32Array(p.size));
      this.v.set(k, new Float32Array(p.size));
    }
  }

  step(): void {
    this.t++;
    const bc1 = 1 - this.beta1 ** this.t, bc2 = 1 - this.beta2 ** this.t;
    for (const [k, p] of this.params) {
      const g = gradData(k, p);
      if (g === null) continue;
      backend().adamw(p.data, g, this.m.get(k)!, this.v.get(k)!, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2);
    }
  }

  zeroGrad(): void { zeroGrads(this.params); }

  stateDict(): { tensors: Map<string, Float32Array>; step: number } {
    const tensors = new Map<string, Float32Array>();
    for (const k of this.params.keys()) {
      tensors.set(`${k}.exp_avg`, this.m.get(k)!);
      tensors.set(`${k}.exp_avg_sq`, this.v.get(k)!);
    }
    return { tensors, step: this.t };
  }

  loadStateDict(s: { tensors: Map<string, Float32Array>; step: number }): void {
    for (const [k, p] of this.params) {
      for (const [suffix, dst] of [['exp_avg', this.m], ['exp_avg_sq', this.v]] as const) {
        const src = s.tensors.get(`${k}.${suffix}`);
        if (src === undefined) throw new Error(`AdamW.loadStateDict: missing '${k}.${suffix}'`);
        if (src.length !== p.size) throw new Error(`AdamW.loadStateDict: '${k}.${suffix}' has ${src.length} values, parameter has ${p.size}`);
        dst.get(k)!.set(src);
      }
    }
    this.t = s.step;
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD). */
export class SGD implements Optimizer {
  readonly params: Params;
  lr: number;
  readonly momentum: number; readonly dampening: number; readonly weightDecay: number; readonly nesterov: boolean;
  private t = 0;
  private buf = new Map<string, Float32Array>();

  constructor(params: Params, opts: SGDOptions = {}) {
    checkParams(params);
    this.params = params;
    this.lr = opts.lr ?? 1e-2;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    if (this.momentum > 0) for (const [k, p] of params) this.buf.set(k, new Float32Array(p.size));
  }

  step(): void {
    const first = this.t === 0;
    this.t++;
    for (const [k, p] of this.params) {
      const g = gradData(k, p);
      if (g === null) continue;
      backend().sgd(p.data, g, this.buf.get(k) ?? null, this.lr, this.momentum, this.dampening, this.weightDecay, this.nesterov, first);
    }
  }

  zeroGrad(): void { zeroGrads(this.params); }

  stateDict(): { tensors: Map<string, Float32Array>; step: number } {
    const tensors = new Map<string, Float32Array>();
    for (const [k, b] of this.buf) tensors.set(`${k}.momentum_buffer`, b);
    return { tensors, step: this.t };
  }

  loadStateDict(s: { tensors: Map<string, Float32Array>; step: number }): void {
    for (const [k, b] of this.buf) {
      const src = s.tensors.get(`${k}.momentum_buffer`);
      if (src === undefined || src.length !== b.length) throw new Error(`SGD.loadStateDict: missing or mis-sized '${k}.momentum_buffer'`);
      b.set(src);
    }
    this.t = s.step;
  }
}

/**
 * Scales all gradients so their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping. A non-finite norm leaves gradients untouched and is returned
 * so the caller can skip the step.
 */
export function clipGradNorm(params: Params, maxNorm: number): number {
  let sq = 0;
  for (const p of params.values()) if (p.grad !== null) sq += backend().sumSquares(p.grad.data);
  const norm = Math.sqrt(sq);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const p of params.values()) if (p.grad !== null) backend().unary('scale', p.grad.data, p.grad.data, coef, 0);
  return norm;
}

/** Zeroed gradient buffers for every parameter (so accumulation can start from an explicit zero). */
export function zeroGradBuffers(params: Params): void {
  untracked(() => {
    for (const p of params.values()) {
      p.grad?.dispose();
      p.grad = empty(p.shape);
    }
  });
}
