// im2col / col2im for one image and depthwise conv2d (+ backward). Geometry as Conv2dGeom.

import type { Conv2dGeom } from '../../engine/backend.ts';
import { checkDim, checkLen, checkPos, fail } from './util.ts';

export function checkConvGeom(K: string, g: Conv2dGeom): void {
  checkDim(K, 'C', g.C);
  checkDim(K, 'H', g.H);
  checkDim(K, 'W', g.W);
  checkPos(K, 'kh', g.kh);
  checkPos(K, 'kw', g.kw);
  checkPos(K, 'sh', g.sh);
  checkPos(K, 'sw', g.sw);
  checkDim(K, 'ph', g.ph);
  checkDim(K, 'pw', g.pw);
  checkPos(K, 'dh', g.dh);
  checkPos(K, 'dw', g.dw);
  const ho = Math.floor((g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh) + 1;
  const wo = Math.floor((g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw) + 1;
  if (ho < 1 || wo < 1) fail(K, `kernel ${g.kh}x${g.kw} (dilation ${g.dh}x${g.dw}, padding ${g.ph}x${g.pw}) does not fit input ${g.H}x${g.W}`);
  if (g.Ho !== ho || g.Wo !== wo) fail(K, `output ${g.Ho}x${g.Wo} does not match the geometry, expected ${ho}x${wo}`);
}

/** Input offset h*W + w read by (output oh/ow, tap ki/kj), or -1 when it falls in the padding. */
function tapIndex(g: Conv2dGeom, oh: number, ow: number, ki: number, kj: number): number {
  const ih = oh * g.sh - g.ph + ki * g.dh;
  const iw = ow * g.sw - g.pw + kj * g.dw;
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return -1;
  return ih * g.W + iw;
}

function checkImage(K: string, name: string, buf: Float32Array, off: number, g: Conv2dGeom): void {
  checkDim(K, `${name}Off`, off);
  const need = g.C * g.H * g.W;
  if (off + need > buf.length) fail(K, `${name} [${g.C}, ${g.H}, ${g.W}] at offset ${off} needs ${off + need} elements but has ${buf.length}`);
}

/** cols[(c*kh + ki)*kw + kj, oh*Wo + ow] = x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw] (0 in the padding). */
export function im2col(x: Float32Array, xOff: number, g: Conv2dGeom, cols: Float32Array): void {
  const K = 'im2col';
  checkConvGeom(K, g);
  checkImage(K, 'x', x, xOff, g);
  const P = g.Ho * g.Wo;
  checkLen(K, `cols [${g.C * g.kh * g.kw}, ${P}]`, cols, g.C * g.kh * g.kw * P);
  for (let c = 0; c < g.C; c++) {
    for (let ki = 0; ki < g.kh; ki++) {
      for (let kj = 0; kj < g.kw; kj++) {
        const r = (c * g.kh + ki) * g.kw + kj;
        for (let oh = 0; oh < g.Ho; oh++) {
          for (let ow = 0; ow < g.Wo; ow++) {
            const t = tapIndex(g, oh, ow, ki, kj);
            cols[r * P + oh * g.Wo + ow] = t < 0 ? 0 : x[xOff + c * g.H * g.W + t];
          }
        }
      }
    }
  }
}

/** gx[c, ...] += cols scattered back along the taps im2col read. */
export function col2im(cols: Float32Array, g: Conv2dGeom, gx: Float32Array, gxOff: number): void {
  const K = 'col2im';
  checkConvGeom(K, g);
  checkImage(K, 'gx', gx, gxOff, g);
  const P = g.Ho * g.Wo;
  checkLen(K, `cols [${g.C * g.kh * g.kw}, ${P}]`, cols, g.C * g.kh * g.kw * P);
  const HW = g.H * g.W;
  const acc = new Float64Array(g.C * HW);
  for (let i = 0; i < acc.length; i++) acc[i] = gx[gxOff + i];
  for (let c = 0; c < g.C; c++) {
    for (let ki = 0; ki < g.kh; ki++) {
      for (let kj = 0; kj < g.kw; kj++) {
        const r = (c * g.kh + ki) * g.kw + kj;
        for (let oh = 0; oh < g.Ho; oh++) {
          for (let ow = 0; ow < g.Wo; ow++) {
            const t = tapIndex(g, oh, ow, ki, kj);
            if (t >= 0) acc[c * HW + t] += cols[r * P + oh * g.Wo + ow];
          }
        }
      }
    }
  }
  for (let i = 0; i < acc.length; i++) gx[gxOff + i] = acc[i];
}

function checkDepthwise(K: string, x: Float32Array, w: Float32Array, N: number, g: Conv2dGeom): void {
  checkDim(K, 'N', N);
  checkConvGeom(K, g);
  checkLen(K, `x [${N}, ${g.C}, ${g.H}, ${g.W}]`, x, N * g.C * g.H * g.W);
  checkLen(K, `w [${g.C}, 1, ${g.kh}, ${g.kw}]`, w, g.C * g.kh * g.kw);
}

/** y[n, c, oh, ow] = bias[c] + sum_{ki,kj} w[c, ki, kj] * x[n, c, tap]. */
export function depthwiseConv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, N: number, g: Conv2dGeom): void {
  const K = 'depthwiseConv2d';
  checkDepthwise(K, x, w, N, g);
  if (bias) checkLen(K, `bias [${g.C}]`, bias, g.C);
  checkLen(K, `y [${N}, ${g.C}, ${g.Ho}, ${g.Wo}]`, y, N * g.C * g.Ho * g.Wo);
  const HW = g.H * g.W;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < g.C; c++) {
      const xo = (n * g.C + c) * HW;
      const yo = (n * g.C + c) * g.Ho * g.Wo;
      for (let oh = 0; oh < g.Ho; oh++) {
        for (let ow = 0; ow < g.Wo; ow++) {
          let s = bias ? bias[c] : 0;
          for (let ki = 0; ki < g.kh; ki++) {
            for (let kj = 0; kj < g.kw; kj++) {
              const t = tapIndex(g, oh, ow, ki, kj);
              if (t >= 0) s += w[(c * g.kh + ki) * g.kw + kj] * x[xo + t];
            }
          }
          y[yo + oh * g.Wo + ow] = s;
        }
      }
    }
  }
}

/** gx[n, c, tap] = sum gy * w (written); gw[c, ki, kj] += sum_{n, oh, ow} gy * x[n, c, tap]. */
export function depthwiseConv2dBackward(x: Float32Array, w: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array, N: number, g: Conv2dGeom): void {
  const K = 'depthwiseConv2dBackward';
  checkDepthwise(K, x, w, N, g);
  checkLen(K, `gy [${N}, ${g.C}, ${g.Ho}, ${g.Wo}]`, gy, N * g.C * g.Ho * g.Wo);
  checkLen(K, `gx [${N}, ${g.C}, ${g.H}, ${g.W}]`, gx, N * g.C * g.H * g.W);
  checkLen(K, `gw [${g.C}, 1, ${g.kh}, ${g.kw}]`, gw, g.C * g.kh * g.kw);
  const HW = g.H * g.W;
  const gxAcc = new Float64Array(gx.length);
  const gwAcc = new Float64Array(gw.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < g.C; c++) {
      const xo = (n * g.C + c) * HW;
      const yo = (n * g.C + c) * g.Ho * g.Wo;
      for (let oh = 0; oh < g.Ho; oh++) {
        for (let ow = 0; ow < g.Wo; ow++) {
          const gyv = gy[yo + oh * g.Wo + ow];
          for (let ki = 0; ki < g.kh; ki++) {
            for (let kj = 0; kj < g.kw; kj++) {
              const t = tapIndex(g, oh, ow, ki, kj);
              if (t < 0) continue;
              const wi = (c * g.kh + ki) * g.kw + kj;
              gxAcc[xo + t] += gyv * w[wi];
              gwAcc[wi] += gyv * x[xo + t];
            }
          }
        }
      }
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = gxAcc[i];
  for (let i = 0; i < gw.length; i++) gw[i] += gwAcc[i];
}
