// 2-D max / avg pooling over x [NC, H, W] in PyTorch floor mode, and backward.

import type { Pool2dGeom } from '../../engine/backend.ts';
import { checkDim, checkLen, checkPos, fail } from './util.ts';

function checkPoolGeom(K: string, g: Pool2dGeom): void {
  checkDim(K, 'NC', g.NC);
  checkDim(K, 'H', g.H);
  checkDim(K, 'W', g.W);
  checkPos(K, 'kh', g.kh);
  checkPos(K, 'kw', g.kw);
  checkPos(K, 'sh', g.sh);
  checkPos(K, 'sw', g.sw);
  checkDim(K, 'ph', g.ph);
  checkDim(K, 'pw', g.pw);
  if (2 * g.ph > g.kh || 2 * g.pw > g.kw) fail(K, `padding ${g.ph}x${g.pw} exceeds half the kernel ${g.kh}x${g.kw}`);
  const ho = Math.floor((g.H + 2 * g.ph - g.kh) / g.sh) + 1;
  const wo = Math.floor((g.W + 2 * g.pw - g.kw) / g.sw) + 1;
  if (ho < 1 || wo < 1) fail(K, `kernel ${g.kh}x${g.kw} (padding ${g.ph}x${g.pw}) does not fit input ${g.H}x${g.W}`);
  if (g.Ho !== ho || g.Wo !== wo) fail(K, `output ${g.Ho}x${g.Wo} does not match the geometry, expected ${ho}x${wo}`);
}

interface Window { h0: number; h1: number; w0: number; w1: number; divisor: number }

/** Window of output (oh, ow) clipped to the image, and the avg divisor as PyTorch computes it. */
function window(g: Pool2dGeom, oh: number, ow: number): Window {
  let h0 = oh * g.sh - g.ph;
  let w0 = ow * g.sw - g.pw;
  let h1 = Math.min(h0 + g.kh, g.H + g.ph);
  let w1 = Math.min(w0 + g.kw, g.W + g.pw);
  const padded = (h1 - h0) * (w1 - w0);
  h0 = Math.max(h0, 0);
  w0 = Math.max(w0, 0);
  h1 = Math.min(h1, g.H);
  w1 = Math.min(w1, g.W);
  return { h0, h1, w0, w1, divisor: g.countIncludePad ? padded : (h1 - h0) * (w1 - w0) };
}

/** max: y = max over the window (a NaN wins), argmax = its h*W + w; avg: y = window sum / divisor. */
export function pool2d(kind: 'max' | 'avg', x: Float32Array, y: Float32Array, argmax: Int32Array | null, g: Pool2dGeom): void {
  const K = 'pool2d';
  if (kind !== 'max' && kind !== 'avg') fail(K, `unknown kind '${kind as string}'`);
  checkPoolGeom(K, g);
  const HW = g.H * g.W;
  const P = g.Ho * g.Wo;
  checkLen(K, `x [${g.NC}, ${g.H}, ${g.W}]`, x, g.NC * HW);
  checkLen(K, `y [${g.NC}, ${g.Ho}, ${g.Wo}]`, y, g.NC * P);
  if (argmax) checkLen(K, `argmax [${g.NC}, ${g.Ho}, ${g.Wo}]`, argmax, g.NC * P);
  for (let nc = 0; nc < g.NC; nc++) {
    for (let oh = 0; oh < g.Ho; oh++) {
      for (let ow = 0; ow < g.Wo; ow++) {
        const win = window(g, oh, ow);
        const yi = nc * P + oh * g.Wo + ow;
        if (kind === 'max') {
          let best = win.h0 * g.W + win.w0;
          let bv = -Infinity;
          for (let ih = win.h0; ih < win.h1; ih++) {
            for (let iw = win.w0; iw < win.w1; iw++) {
              const v = x[nc * HW + ih * g.W + iw];
              if (v > bv || Number.isNaN(v)) {
                bv = v;
                best = ih * g.W + iw;
              }
            }
          }
          y[yi] = bv;
          if (argmax) argmax[yi] = best;
        } else {
          let s = 0;
          for (let ih = win.h0; ih < win.h1; ih++) {
            for (let iw = win.w0; iw < win.w1; iw++) s += x[nc * HW + ih * g.W + iw];
          }
          y[yi] = s / win.divisor;
        }
      }
    }
  }
}

/** max: gx[argmax] += gy; avg: gy / divisor added to every pixel of the clipped window. */
export function pool2dBackward(kind: 'max' | 'avg', gy: Float32Array, argmax: Int32Array | null, gx: Float32Array, g: Pool2dGeom): void {
  const K = 'pool2dBackward';
  if (kind !== 'max' && kind !== 'avg') fail(K, `unknown kind '${kind as string}'`);
  checkPoolGeom(K, g);
  const HW = g.H * g.W;
  const P = g.Ho * g.Wo;
  checkLen(K, `gy [${g.NC}, ${g.Ho}, ${g.Wo}]`, gy, g.NC * P);
  checkLen(K, `gx [${g.NC}, ${g.H}, ${g.W}]`, gx, g.NC * HW);
  const acc = Float64Array.from(gx);
  if (kind === 'max') {
    if (!argmax) fail(K, 'max pooling backward needs argmax');
    checkLen(K, `argmax [${g.NC}, ${g.Ho}, ${g.Wo}]`, argmax, g.NC * P);
    for (let i = 0; i < argmax.length; i++) {
      if (argmax[i] < 0 || argmax[i] >= HW) fail(K, `argmax[${i}] = ${argmax[i]} outside [0, ${HW})`);
    }
    for (let nc = 0; nc < g.NC; nc++) {
      for (let p = 0; p < P; p++) acc[nc * HW + argmax[nc * P + p]] += gy[nc * P + p];
    }
  } else {
    for (let nc = 0; nc < g.NC; nc++) {
      for (let oh = 0; oh < g.Ho; oh++) {
        for (let ow = 0; ow < g.Wo; ow++) {
          const win = window(g, oh, ow);
          const share = gy[nc * P + oh * g.Wo + ow] / win.divisor;
          for (let ih = win.h0; ih < win.h1; ih++) {
            for (let iw = win.w0; iw < win.w1; iw++) acc[nc * HW + ih * g.W + iw] += share;
          }
        }
      }
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = acc[i];
}
