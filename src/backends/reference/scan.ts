// cumsum along the middle dim and top-k along rows.

import { checkDim, checkLen, fail } from './util.ts';

/** y[o, j, r] = sum_{j' <= j} x[o, j', r] (j' >= j when reverse), f64 running sum. y may alias x. */
export function cumsum(x: Float32Array, y: Float32Array, outer: number, n: number, inner: number, reverse: boolean): void {
  const K = 'cumsum';
  checkDim(K, 'outer', outer);
  checkDim(K, 'n', n);
  checkDim(K, 'inner', inner);
  checkLen(K, `x [${outer}, ${n}, ${inner}]`, x, outer * n * inner);
  checkLen(K, `y [${outer}, ${n}, ${inner}]`, y, outer * n * inner);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < inner; r++) {
      let s = 0;
      for (let step = 0; step < n; step++) {
        const j = reverse ? n - 1 - step : step;
        const p = (o * n + j) * inner + r;
        s += x[p];
        y[p] = s;
      }
    }
  }
}

/** a ranks before b: larger value first, NaN above everything (as PyTorch), then lower index. */
function before(va: number, ia: number, vb: number, ib: number): boolean {
  const na = Number.isNaN(va);
  const nb = Number.isNaN(vb);
  if (na !== nb) return na;
  if (!na && va !== vb) return va > vb;
  return ia < ib;
}

/** values/indices [rows, k]: the k largest of each row of x [rows, n], descending, ties by lower index. */
export function topk(x: Float32Array, rows: number, n: number, k: number, values: Float32Array, indices: Int32Array): void {
  const K = 'topk';
  checkDim(K, 'rows', rows);
  checkDim(K, 'n', n);
  checkDim(K, 'k', k);
  if (k > n) fail(K, `k = ${k} exceeds n = ${n}`);
  checkLen(K, `x [${rows}, ${n}]`, x, rows * n);
  checkLen(K, `values [${rows}, ${k}]`, values, rows * k);
  checkLen(K, `indices [${rows}, ${k}]`, indices, rows * k);
  const order: number[] = new Array<number>(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let j = 0; j < n; j++) order[j] = j;
    order.sort((a, b) => (before(x[o + a], a, x[o + b], b) ? -1 : 1));
    for (let j = 0; j < k; j++) {
      values[r * k + j] = x[o + order[j]];
      indices[r * k + j] = order[j];
    }
  }
}
