// LayerNorm (biased variance) and RMSNorm (HF LlamaRMSNorm) over rows of n, with backward.

import { checkDim, checkLen, fail } from './util.ts';

function checkNorm(K: string, rows: number, n: number): void {
  checkDim(K, 'rows', rows);
  checkDim(K, 'n', n);
  if (n === 0 && rows > 0) fail(K, `n must be >= 1 (rows ${rows})`);
}

export function layerNorm(x: Float32Array, w: Float32Array | null, b: Float32Array | null, y: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void {
  const K = 'layerNorm';
  checkNorm(K, rows, n);
  checkLen(K, `x [${rows}, ${n}]`, x, rows * n);
  checkLen(K, `y [${rows}, ${n}]`, y, rows * n);
  if (w) checkLen(K, `w [${n}]`, w, n);
  if (b) checkLen(K, `b [${n}]`, b, n);
  checkLen(K, `mean [${rows}]`, mean, rows);
  checkLen(K, `rstd [${rows}]`, rstd, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let s = 0;
    for (let j = 0; j < n; j++) s += x[o + j];
    const mu = s / n;
    let ss = 0;
    for (let j = 0; j < n; j++) ss += (x[o + j] - mu) ** 2;
    const rs = 1 / Math.sqrt(ss / n + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < n; j++) {
      let v = (x[o + j] - mu) * rs;
      if (w) v *= w[j];
      if (b) v += b[j];
      y[o + j] = v;
    }
  }
}

/**
 * xhat = (x - mean) * rstd, g = gy * w:
 * gx = rstd * (g - mean(g) - xhat * mean(g * xhat)); gw += sum_rows gy * xhat; gb += sum_rows gy.
 */
export function layerNormBackward(x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, gb: Float32Array | null, rows: number, n: number): void {
  const K = 'layerNormBackward';
  checkNorm(K, rows, n);
  checkLen(K, `x [${rows}, ${n}]`, x, rows * n);
  checkLen(K, `gy [${rows}, ${n}]`, gy, rows * n);
  checkLen(K, `gx [${rows}, ${n}]`, gx, rows * n);
  if (w) checkLen(K, `w [${n}]`, w, n);
  if (gw) checkLen(K, `gw [${n}]`, gw, n);
  if (gb) checkLen(K, `gb [${n}]`, gb, n);
  checkLen(K, `mean [${rows}]`, mean, rows);
  checkLen(K, `rstd [${rows}]`, rstd, rows);
  const gwAcc = new Float64Array(n);
  const gbAcc = new Float64Array(n);
  const xhat = new Float64Array(n);
  const g = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const mu = mean[r];
    const rs = rstd[r];
    let mg = 0;
    let mgx = 0;
    for (let j = 0; j < n; j++) {
      xhat[j] = (x[o + j] - mu) * rs;
      g[j] = w ? gy[o + j] * w[j] : gy[o + j];
      mg += g[j];
      mgx += g[j] * xhat[j];
      gwAcc[j] += gy[o + j] * xhat[j];
      gbAcc[j] += gy[o + j];
    }
    mg /= n;
    mgx /= n;
    for (let j = 0; j < n; j++) gx[o + j] = rs * (g[j] - mg - xhat[j] * mgx);
  }
  if (gw) for (let j = 0; j < n; j++) gw[j] += gwAcc[j];
  if (gb) for (let j = 0; j < n; j++) gb[j] += gbAcc[j];
}

export function rmsNorm(x: Float32Array, w: Float32Array | null, y: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void {
  const K = 'rmsNorm';
  checkNorm(K, rows, n);
  checkLen(K, `x [${rows}, ${n}]`, x, rows * n);
  checkLen(K, `y [${rows}, ${n}]`, y, rows * n);
  if (w) checkLen(K, `w [${n}]`, w, n);
  checkLen(K, `rstd [${rows}]`, rstd, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let ss = 0;
    for (let j = 0; j < n; j++) ss += x[o + j] * x[o + j];
    const rs = 1 / Math.sqrt(ss / n + eps);
    rstd[r] = rs;
    for (let j = 0; j < n; j++) y[o + j] = w ? x[o + j] * rs * w[j] : x[o + j] * rs;
  }
}

/**
 * y_j = x_j * r * w_j with r = (mean(x^2) + eps)^-1/2, so dr/dx_j = -r^3 x_j / n:
 * gx_j = r * w_j * gy_j - x_j * r^3 / n * sum_i gy_i * w_i * x_i; gw_j += sum_rows gy_j * x_j * r.
 */
export function rmsNormBackward(x: Float32Array, w: Float32Array | null, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, rows: number, n: number): void {
  const K = 'rmsNormBackward';
  checkNorm(K, rows, n);
  checkLen(K, `x [${rows}, ${n}]`, x, rows * n);
  checkLen(K, `gy [${rows}, ${n}]`, gy, rows * n);
  checkLen(K, `gx [${rows}, ${n}]`, gx, rows * n);
  if (w) checkLen(K, `w [${n}]`, w, n);
  if (gw) checkLen(K, `gw [${n}]`, gw, n);
  checkLen(K, `rstd [${rows}]`, rstd, rows);
  const gwAcc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const rs = rstd[r];
    let dot = 0;
    for (let j = 0; j < n; j++) {
      const g = w ? gy[o + j] * w[j] : gy[o + j];
      dot += g * x[o + j];
      gwAcc[j] += gy[o + j] * x[o + j] * rs;
    }
    const c = (rs * rs * rs * dot) / n;
    for (let j = 0; j < n; j++) {
      const g = w ? gy[o + j] * w[j] : gy[o + j];
      gx[o + j] = rs * g - x[o + j] * c;
    }
  }
  if (gw) for (let j = 0; j < n; j++) gw[j] += gwAcc[j];
}
