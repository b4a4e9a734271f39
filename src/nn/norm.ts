// LayerNorm and RMSNorm parameter trees.

import * as F from '../engine/ops/index.ts';
import type { Tensor } from '../engine/tensor.ts';
import { constInit } from './init.ts';

export interface LayerNorm {
  weight: Tensor; // [D]
  bias: Tensor; // [D]
}

export function initLayerNorm(d: number): LayerNorm {
  return { weight: constInit([d], 1), bias: constInit([d], 0) };
}

export function layerNorm(p: LayerNorm, x: Tensor, eps = 1e-5): Tensor {
  return F.layerNorm(x, p.weight, p.bias, eps);
}

export interface RMSNorm {
  weight: Tensor; // [D]
}

export function initRMSNorm(d: number): RMSNorm {
  return { weight: constInit([d], 1) };
}

export function rmsNorm(p: RMSNorm, x: Tensor, eps = 1e-6): Tensor {
  return F.rmsNorm(x, p.weight, eps);
}
