// Parameter initialisers (PyTorch defaults) returning trainable leaves.

import { param } from '../engine/autograd.ts';
import type { Rng } from '../engine/rng.ts';
import { empty, keep, type Tensor } from '../engine/tensor.ts';

/** A trainable leaf kept out of tidy scopes. */
export function leaf(t: Tensor): Tensor {
  return keep(param(t));
}

/** U(-bound, bound): nn.Linear / nn.Conv2d default with bound = 1/sqrt(fanIn). */
export function uniformInit(shape: readonly number[], bound: number, rng: Rng): Tensor {
  const t = empty(shape);
  rng.fillUniform(t.data, -bound, bound);
  return leaf(t);
}

export function normalInit(shape: readonly number[], std: number, rng: Rng): Tensor {
  const t = empty(shape);
  rng.fillNormal(t.data, 0, std);
  return leaf(t);
}

export function constInit(shape: readonly number[], value: number): Tensor {
  const t = empty(shape);
  if (value !== 0) t.data.fill(value);
  return leaf(t);
}
