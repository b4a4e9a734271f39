// Cross-entropy over logits [rows, V] with ignore index and label smoothing (PyTorch semantics).

import { checkDim, checkLen, fail } from './util.ts';

function checkCE(K: string, logits: Float32Array, targets: Int32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void {
  checkDim(K, 'rows', rows);
  checkDim(K, 'V', V);
  if (V === 0 && rows > 0) fail(K, `V must be >= 1 (rows ${rows})`);
  if (!Number.isInteger(ignoreIndex)) fail(K, `ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (!(smoothing >= 0 && smoothing <= 1)) fail(K, `smoothing must be in [0, 1], got ${smoothing}`);
  checkLen(K, `logits [${rows}, ${V}]`, logits, rows * V);
  checkLen(K, `targets [${rows}]`, targets, rows);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t !== ignoreIndex && (t < 0 || t >= V)) fail(K, `targets[${r}] = ${t} outside [0, ${V}) and not ignoreIndex ${ignoreIndex}`);
  }
}

/**
 * lse = log sum_v exp(z_v); nll = lse - z_t; mean_v(-logp_v) = lse - mean_v(z_v);
 * loss = (1-s)*nll + s*(lse - mean(z)); 0 on ignored rows (lse is still written).
 */
export function crossEntropy(logits: Float32Array, targets: Int32Array, loss: Float32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void {
  const K = 'crossEntropy';
  checkCE(K, logits, targets, rows, V, ignoreIndex, smoothing);
  checkLen(K, `loss [${rows}]`, loss, rows);
  checkLen(K, `lse [${rows}]`, lse, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[o + v]);
    let s = 0;
    let sum = 0;
    for (let v = 0; v < V; v++) {
      s += Math.exp(logits[o + v] - mx);
      sum += logits[o + v];
    }
    const L = mx + Math.log(s);
    lse[r] = L;
    const t = targets[r];
    if (t === ignoreIndex) {
      loss[r] = 0;
      continue;
    }
    const nll = L - logits[o + t];
    loss[r] = smoothing === 0 ? nll : (1 - smoothing) * nll + smoothing * (L - sum / V);
  }
}

/** glogits_v = gLoss * (p_v - (1-s)[v == t] - s/V) with p_v = exp(z_v - lse); zero rows when ignored. */
export function crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, gLoss: Float32Array, glogits: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void {
  const K = 'crossEntropyBackward';
  checkCE(K, logits, targets, rows, V, ignoreIndex, smoothing);
  checkLen(K, `lse [${rows}]`, lse, rows);
  checkLen(K, `gLoss [${rows}]`, gLoss, rows);
  checkLen(K, `glogits [${rows}, ${V}]`, glogits, rows * V);
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[r];
    if (t === ignoreIndex) {
      glogits.fill(0, o, o + V);
      continue;
    }
    const g = gLoss[r];
    const L = lse[r];
    for (let v = 0; v < V; v++) {
      const p = Math.exp(logits[o + v] - L);
      glogits[o + v] = g * (p - (v === t ? 1 - smoothing : 0) - smoothing / V);
    }
  }
}
