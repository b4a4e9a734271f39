// Rotary position embedding on x [N, T, D] with cos/sin [T, rot/2].

import { checkDim, checkLen, fail } from './util.ts';

/**
 * For each pair (a, b) with angle (c, s): y_a = a*c - b*s, y_b = b*c + a*s (s -> -s when inverse).
 * Pairs are (i, i + rot/2) (HF rotate_half) or (2i, 2i + 1) when interleaved. Channels >= rot pass through.
 */
export function rope(x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array, N: number, T: number, D: number, rot: number, interleaved: boolean, inverse: boolean): void {
  const K = 'rope';
  checkDim(K, 'N', N);
  checkDim(K, 'T', T);
  checkDim(K, 'D', D);
  checkDim(K, 'rot', rot);
  if (rot % 2 !== 0 || rot > D) fail(K, `rot must be even and <= D, got rot ${rot}, D ${D}`);
  const half = rot / 2;
  checkLen(K, `x [${N}, ${T}, ${D}]`, x, N * T * D);
  checkLen(K, `y [${N}, ${T}, ${D}]`, y, N * T * D);
  checkLen(K, `cos [${T}, ${half}]`, cos, T * half);
  checkLen(K, `sin [${T}, ${half}]`, sin, T * half);
  const sg = inverse ? -1 : 1;
  for (let r = 0; r < N * T; r++) {
    const t = r % T;
    const o = r * D;
    for (let i = 0; i < half; i++) {
      const c = cos[t * half + i];
      const s = sg * sin[t * half + i];
      const ia = interleaved ? o + 2 * i : o + i;
      const ib = interleaved ? o + 2 * i + 1 : o + i + half;
      const a = x[ia];
      const b = x[ib];
      y[ia] = a * c - b * s;
      y[ib] = b * c + a * s;
    }
    for (let j = rot; j < D; j++) y[o + j] = x[o + j];
  }
}
