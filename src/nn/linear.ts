// nn.Linear as a parameter tree { weight [out, in], bias [out] | null }.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { constInit, uniformInit } from './init.ts';

export interface Linear {
  weight: Tensor; // [out, in]
  bias: Tensor | null; // [out]
}

/** PyTorch's default init: kaiming-uniform(a=sqrt(5)) weight, U(±1/sqrt(in)) bias. */
export function initLinear(inF: number, outF: number, rng: Rng, bias = true): Linear {
  const bound = 1 / Math.sqrt(inF);
  return { weight: uniformInit([outF, inF], bound, rng), bias: bias ? uniformInit([outF], bound, rng) : null };
}

export function linear(p: Linear, x: Tensor): Tensor {
  return F.linear(x, p.weight, p.bias);
}

export function zeroLinear(inF: number, outF: number, bias = true): Linear {
  return { weight: constInit([outF, inF], 0), bias: bias ? constInit([outF], 0) : null };
}
