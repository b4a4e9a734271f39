// Reductions over the middle dim of x [outer, n, inner].

import type { ReduceOp } from '../../engine/backend.ts';
import { checkDim, checkLen, fail } from './util.ts';

function checkReduce(K: string, x: { length: number }, outer: number, n: number, inner: number, out: { length: number }): void {
  checkDim(K, 'outer', outer);
  checkDim(K, 'n', n);
  checkDim(K, 'inner', inner);
  checkLen(K, `x [${outer}, ${n}, ${inner}]`, x, outer * n * inner);
  checkLen(K, `out [${outer}, ${inner}]`, out, outer * inner);
}

/** x [outer, n, inner] -> out [outer, inner]; sum in f64; max/min propagate NaN (n must be >= 1). */
export function reduce(op: ReduceOp, x: Float32Array, outer: number, n: number, inner: number, out: Float32Array): void {
  const K = 'reduce';
  if (op !== 'sum' && op !== 'max' && op !== 'min') fail(K, `unknown op '${op as string}'`);
  checkReduce(K, x, outer, n, inner, out);
  if (op !== 'sum' && n === 0 && outer * inner > 0) fail(K, `${op} over an empty dimension (n = 0)`);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      if (op === 'sum') {
        let s = 0;
        for (let j = 0; j < n; j++) s += x[base + j * inner];
        out[o * inner + i] = s;
      } else {
        let r = x[base];
        for (let j = 1; j < n; j++) {
          const v = x[base + j * inner];
          if (Number.isNaN(v) || (op === 'max' ? v > r : v < r)) r = v;
          if (Number.isNaN(r)) break;
        }
        out[o * inner + i] = r;
      }
    }
  }
}

/** Index of the first max (min) along n; a NaN counts as the extreme (first NaN wins, as PyTorch). */
export function argReduce(op: 'argmax' | 'argmin', x: Float32Array, outer: number, n: number, inner: number, out: Int32Array): void {
  const K = 'argReduce';
  if (op !== 'argmax' && op !== 'argmin') fail(K, `unknown op '${op as string}'`);
  checkReduce(K, x, outer, n, inner, out);
  if (n === 0 && outer * inner > 0) fail(K, `${op} over an empty dimension (n = 0)`);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let best = 0;
      let bv = x[base];
      for (let j = 1; j < n && !Number.isNaN(bv); j++) {
        const v = x[base + j * inner];
        if (Number.isNaN(v) || (op === 'argmax' ? v > bv : v < bv)) {
          best = j;
          bv = v;
        }
      }
      out[o * inner + i] = best;
    }
  }
}

/** sum of x[i]^2 in f64. */
export function sumSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}
