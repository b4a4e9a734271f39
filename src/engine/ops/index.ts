// The op set. Every op takes and returns Tensors and records its gradient when needed.

import { installAutogradHelpers } from '../autograd.ts';
import { backend } from '../backend.ts';
import { fmt, shapeEq } from '../shape.ts';
import type { Tensor } from '../tensor.ts';
import { clone, denseData, onesLike } from './core.ts';
import { add, sumTo } from './elementwise.ts';
import { installSumTo } from './shape.ts';

export * from './core.ts';
export * from './shape.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './linalg.ts';
export * from './nn.ts';
export * from './conv.ts';

/** dst += src in place (dst dense and exclusively owned; src same shape). */
export function addInPlace(dst: Tensor, src: Tensor): void {
  if (!shapeEq(dst.shape, src.shape)) throw new Error(`addInPlace: ${fmt(src.shape)} into ${fmt(dst.shape)}`);
  const d = dst.data;
  const s = denseData(src);
  backend().binary('add', d, 0, [1], s, 0, [1], [d.length], d);
}

installSumTo(sumTo);
installAutogradHelpers({ add: (a, b) => add(a, b), addInPlace, clone, onesLike });
