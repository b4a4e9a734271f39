// Row softmax / log-softmax over x [rows, n] and their backward.

import { checkDim, checkLen } from './util.ts';

function checkRows(K: string, rows: number, n: number, bufs: [string, Float32Array][]): void {
  checkDim(K, 'rows', rows);
  checkDim(K, 'n', n);
  for (const [name, b] of bufs) checkLen(K, `${name} [${rows}, ${n}]`, b, rows * n);
}

/** y = softmax(x) (or log_softmax) per row; max-subtracted, sums in f64. y may alias x. */
export function softmax(x: Float32Array, y: Float32Array, rows: number, n: number, log: boolean): void {
  checkRows('softmax', rows, n, [['x', x], ['y', y]]);
  const e = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let mx = -Infinity;
    for (let j = 0; j < n; j++) mx = Math.max(mx, x[o + j]);
    let s = 0;
    for (let j = 0; j < n; j++) {
      e[j] = x[o + j] - mx;
      s += Math.exp(e[j]);
    }
    if (log) {
      const ls = Math.log(s);
      for (let j = 0; j < n; j++) y[o + j] = e[j] - ls;
    } else {
      for (let j = 0; j < n; j++) y[o + j] = Math.exp(e[j]) / s;
    }
  }
}

/**
 * softmax:     gx = y * (gy - sum_j gy_j y_j)
 * log_softmax: gx = gy - exp(y) * sum_j gy_j
 */
export function softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, n: number, log: boolean): void {
  checkRows('softmaxBackward', rows, n, [['y', y], ['gy', gy], ['gx', gx]]);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let s = 0;
    if (log) {
      for (let j = 0; j < n; j++) s += gy[o + j];
      for (let j = 0; j < n; j++) gx[o + j] = gy[o + j] - Math.exp(y[o + j]) * s;
    } else {
      for (let j = 0; j < n; j++) s += gy[o + j] * y[o + j];
      for (let j = 0; j < n; j++) gx[o + j] = y[o + j] * (gy[o + j] - s);
    }
  }
}
