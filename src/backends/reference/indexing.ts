// index_select / index_add along the middle dim, and gather / scatter_add (torch.gather's adjoint).

import { checkDim, checkLen, fail } from './util.ts';

function checkIndices(K: string, idx: Int32Array, n: number): void {
  if (!(idx instanceof Int32Array)) fail(K, `idx must be an Int32Array, got ${Object.prototype.toString.call(idx).slice(8, -1)}`);
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= n) fail(K, `idx[${i}] = ${idx[i]} outside [0, ${n})`);
  }
}

function checkDims(K: string, dims: [string, number][]): void {
  for (const [name, v] of dims) checkDim(K, name, v);
}

/** y[o, i, r] = x[o, idx[i], r]: x [outer, n, inner], idx [m] -> y [outer, m, inner]. */
export function indexSelect(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, inner: number): void {
  const K = 'indexSelect';
  checkDims(K, [['outer', outer], ['n', n], ['inner', inner]]);
  const m = idx.length;
  checkLen(K, `x [${outer}, ${n}, ${inner}]`, x, outer * n * inner);
  checkLen(K, `y [${outer}, ${m}, ${inner}]`, y, outer * m * inner);
  checkIndices(K, idx, n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const src = (o * n + idx[i]) * inner;
      const dst = (o * m + i) * inner;
      for (let r = 0; r < inner; r++) y[dst + r] = x[src + r];
    }
  }
}

/** gx[o, idx[i], r] += gy[o, i, r]: gy [outer, m, inner] with m = idx.length. */
export function indexAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, inner: number): void {
  const K = 'indexAdd';
  checkDims(K, [['outer', outer], ['n', n], ['inner', inner]]);
  const m = idx.length;
  checkLen(K, `gy [${outer}, ${m}, ${inner}]`, gy, outer * m * inner);
  checkLen(K, `gx [${outer}, ${n}, ${inner}]`, gx, outer * n * inner);
  checkIndices(K, idx, n);
  const acc = Float64Array.from(gx);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const dst = (o * n + idx[i]) * inner;
      const src = (o * m + i) * inner;
      for (let r = 0; r < inner; r++) acc[dst + r] += gy[src + r];
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = acc[i];
}

/** y[o, i, r] = x[o, idx[o, i, r], r]: x [outer, n, inner], idx/y [outer, m, inner]. */
export function gather(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, m: number, inner: number): void {
  const K = 'gather';
  checkDims(K, [['outer', outer], ['n', n], ['m', m], ['inner', inner]]);
  checkLen(K, `x [${outer}, ${n}, ${inner}]`, x, outer * n * inner);
  checkLen(K, `idx [${outer}, ${m}, ${inner}]`, idx, outer * m * inner);
  checkLen(K, `y [${outer}, ${m}, ${inner}]`, y, outer * m * inner);
  checkIndices(K, idx, n);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      for (let r = 0; r < inner; r++) {
        const p = (o * m + i) * inner + r;
        y[p] = x[(o * n + idx[p]) * inner + r];
      }
    }
  }
}

/** gx[o, idx[o, i, r], r] += gy[o, i, r]. */
export function scatterAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, m: number, inner: number): void {
  const K = 'scatterAdd';
  checkDims(K, [['outer', outer], ['n', n], ['m', m], ['inner', inner]]);
  checkLen(K, `gy [${outer}, ${m}, ${inner}]`, gy, outer * m * inner);
  checkLen(K, `idx [${outer}, ${m}, ${inner}]`, idx, outer * m * inner);
  checkLen(K, `gx [${outer}, ${n}, ${inner}]`, gx, outer * n * inner);
  checkIndices(K, idx, n);
  const acc = Float64Array.from(gx);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      for (let r = 0; r < inner; r++) {
        const p = (o * m + i) * inner + r;
        acc[(o * n + idx[p]) * inner + r] += gy[p];
      }
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = acc[i];
}
