// LLaVA's vision-to-language projector (`mm_projector`): 'linear' (LLaVA-1) is one Linear;
// 'mlp<N>x_gelu' (LLaVA-1.5 uses 'mlp2x_gelu') is Linear, then (GELU, Linear) N-1 times, the
// layout of LLaVA's builder.py nn.Sequential. The param tree is the `model.mm_projector` module:
//   linear:      weight [D, Dv], bias [D]
//   mlpNx_gelu:  0.weight [D, Dv], 0.bias, 2.weight [D, D], 2.bias, ... (2k for the k-th Linear)
// so flatten(tree, 'model.mm_projector') gives the checkpoint keys.
//
// Dims: B batch, N image tokens, Dv vision width (mm_hidden_size), D LLM width (hidden_size).

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { initLinear, zeroLinear, type Linear } from '../nn/linear.ts';

export interface MlpProjectorConfig {
  /** LLaVA's `mm_projector_type`: 'linear' or 'mlp<N>x_gelu' with N >= 1. */
  type: string;
  inDim: number; // Dv
  outDim: number; // D
}

/** A Linear, or an ordered map '0', '2', ... -> Linear (odd indices are the parameterless GELUs). */
export type MlpProjectorParams = Linear | { readonly [index: string]: Linear };

/** Number of Linear layers for a projector type ('linear' -> 1, 'mlp2x_gelu' -> 2); throws on others. */
export function projectorDepth(type: string): number {
  if (type === 'linear') return 1;
  const m = /^mlp(\d+)x_gelu$/.exec(type);
  if (m === null || Number(m[1]) < 1) throw new Error(`mlp-projector: unknown mm_projector_type '${type}' (expected 'linear' or 'mlp<N>x_gelu')`);
  return Number(m[1]);
}

function checkDims(cfg: MlpProjectorConfig): void {
  for (const k of ['inDim', 'outDim'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new Error(`mlp-projector: ${k} must be a positive integer, got ${cfg[k]}`);
  }
}

/** PyTorch default Linear init, or all zeros when rng is null (weights to be loaded). */
export function initMlpProjector(cfg: MlpProjectorConfig, rng: Rng | null): MlpProjectorParams {
  checkDims(cfg);
  const depth = projectorDepth(cfg.type);
  const lin = (i: number, o: number): Linear => (rng === null ? zeroLinear(i, o) : initLinear(i, o, rng));
  if (cfg.type === 'linear') return lin(cfg.inDim, cfg.outDim);
  const out: Record<string, Linear> = {};
  for (let k = 0; k < depth; k++) out[String(2 * k)] = lin(k === 0 ? cfg.inDim : cfg.outDim, cfg.outDim);
  return out;
}

function isLinear(p: MlpProjectorParams): p is Linear {
  return 'weight' in p && !('0' in p);
}

/** x [B, N, Dv] (or [N, Dv]) -> [B, N, D]. GELU is the exact erf form (nn.GELU()). */
export function mlpProjector(cfg: MlpProjectorConfig, p: MlpProjectorParams, x: Tensor): Tensor {
  if (x.ndim < 2 || x.shape[x.ndim - 1] !== cfg.inDim) {
    throw new Error(`mlp-projector: input must be [..., ${cfg.inDim}] (mm_hidden_size), got ${x.describe()}`);
  }
  const depth = projectorDepth(cfg.type);
  if (isLinear(p)) {
    if (depth !== 1 || cfg.type !== 'linear') throw new Error(`mlp-projector: params are a single Linear but type is '${cfg.type}'`);
    return F.linear(x, p.weight, p.bias);
  }
  let h = x; // [B, N, Dv]
  for (let k = 0; k < depth; k++) {
    const l = p[String(2 * k)];
    if (l === undefined) throw new Error(`mlp-projector: missing layer '${2 * k}' for type '${cfg.type}'`);
    if (k > 0) h = F.gelu(h);
    h = F.linear(h, l.weight, l.bias); // [B, N, D]
  }
  return h;
}
