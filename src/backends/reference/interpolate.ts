// Nearest / bilinear / bicubic resize of x [NC, H, W] -> y [NC, Ho, Wo] with PyTorch's
// coordinate mapping, and its adjoint. Each axis is resolved into taps (index, weight)
// per output coordinate; the 2-D kernel is their outer product.

import type { InterpGeom, InterpMode } from '../../engine/backend.ts';
import { checkDim, checkLen, checkPos, fail } from './util.ts';

const CUBIC_A = -0.75;

interface Taps { idx: Int32Array[]; w: Float64Array[] }

/** Keys cubic convolution weight for |t| <= 1. */
function cubic1(t: number): number {
  return ((CUBIC_A + 2) * t - (CUBIC_A + 3)) * t * t + 1;
}

/** Keys cubic convolution weight for 1 < |t| < 2. */
function cubic2(t: number): number {
  return ((CUBIC_A * t - 5 * CUBIC_A) * t + 8 * CUBIC_A) * t - 4 * CUBIC_A;
}

/**
 * Source/dest ratio as PyTorch's area_pixel_compute_scale: align_corners uses (in-1)/(out-1)
 * (0 when out == 1) and ignores the override; otherwise the override if nonzero, else in/out.
 */
function ratio(inSize: number, outSize: number, alignCorners: boolean, override: number): number {
  if (alignCorners) return outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  return override > 0 ? override : inSize / outSize;
}

function axisTaps(mode: InterpMode, inSize: number, outSize: number, alignCorners: boolean, override: number): Taps {
  const idx: Int32Array[] = [];
  const w: Float64Array[] = [];
  const clampIdx = (i: number): number => Math.min(Math.max(i, 0), inSize - 1);
  if (mode === 'nearest') {
    // PyTorch computes floor(dst * scale) in f32 with scale = f32(in/out) or f32(1/scale_factor).
    const scale = Math.fround(override > 0 ? override : inSize / outSize);
    for (let d = 0; d < outSize; d++) {
      idx.push(Int32Array.of(Math.min(Math.floor(Math.fround(d * scale)), inSize - 1)));
      w.push(Float64Array.of(1));
    }
    return { idx, w };
  }
  const r = ratio(inSize, outSize, alignCorners, override);
  for (let d = 0; d < outSize; d++) {
    let src = alignCorners ? r * d : r * (d + 0.5) - 0.5;
    if (mode === 'bilinear') {
      if (src < 0) src = 0;
      const i0 = Math.min(Math.floor(src), inSize - 1);
      const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
      const l1 = Math.min(Math.max(src - i0, 0), 1);
      idx.push(Int32Array.of(i0, i1));
      w.push(Float64Array.of(1 - l1, l1));
    } else {
      const i0 = Math.floor(src);
      const t = src - i0;
      idx.push(Int32Array.of(clampIdx(i0 - 1), clampIdx(i0), clampIdx(i0 + 1), clampIdx(i0 + 2)));
      w.push(Float64Array.of(cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)));
    }
  }
  return { idx, w };
}

function checkInterpGeom(K: string, g: InterpGeom): void {
  checkDim(K, 'NC', g.NC);
  checkPos(K, 'H', g.H);
  checkPos(K, 'W', g.W);
  checkPos(K, 'Ho', g.Ho);
  checkPos(K, 'Wo', g.Wo);
  if (g.mode !== 'nearest' && g.mode !== 'bilinear' && g.mode !== 'bicubic') fail(K, `unknown mode '${g.mode as string}'`);
  if (g.mode === 'nearest' && g.alignCorners) fail(K, 'alignCorners is not defined for nearest');
  if (!(Number.isFinite(g.scaleH) && g.scaleH >= 0) || !(Number.isFinite(g.scaleW) && g.scaleW >= 0)) {
    fail(K, `scaleH/scaleW must be finite and >= 0, got ${g.scaleH}, ${g.scaleW}`);
  }
}

export function interpolate(x: Float32Array, y: Float32Array, g: InterpGeom): void {
  const K = 'interpolate';
  checkInterpGeom(K, g);
  checkLen(K, `x [${g.NC}, ${g.H}, ${g.W}]`, x, g.NC * g.H * g.W);
  checkLen(K, `y [${g.NC}, ${g.Ho}, ${g.Wo}]`, y, g.NC * g.Ho * g.Wo);
  const th = axisTaps(g.mode, g.H, g.Ho, g.alignCorners, g.scaleH);
  const tw = axisTaps(g.mode, g.W, g.Wo, g.alignCorners, g.scaleW);
  for (let nc = 0; nc < g.NC; nc++) {
    const xo = nc * g.H * g.W;
    for (let oh = 0; oh < g.Ho; oh++) {
      const hi = th.idx[oh];
      const hw = th.w[oh];
      for (let ow = 0; ow < g.Wo; ow++) {
        const wi = tw.idx[ow];
        const ww = tw.w[ow];
        let s = 0;
        for (let a = 0; a < hi.length; a++) {
          let row = 0;
          for (let b = 0; b < wi.length; b++) row += ww[b] * x[xo + hi[a] * g.W + wi[b]];
          s += hw[a] * row;
        }
        y[(nc * g.Ho + oh) * g.Wo + ow] = s;
      }
    }
  }
}

/** Adjoint of interpolate: every tap's weight times gy is added to gx. */
export function interpolateBackward(gy: Float32Array, gx: Float32Array, g: InterpGeom): void {
  const K = 'interpolateBackward';
  checkInterpGeom(K, g);
  checkLen(K, `gy [${g.NC}, ${g.Ho}, ${g.Wo}]`, gy, g.NC * g.Ho * g.Wo);
  checkLen(K, `gx [${g.NC}, ${g.H}, ${g.W}]`, gx, g.NC * g.H * g.W);
  const th = axisTaps(g.mode, g.H, g.Ho, g.alignCorners, g.scaleH);
  const tw = axisTaps(g.mode, g.W, g.Wo, g.alignCorners, g.scaleW);
  const acc = Float64Array.from(gx);
  for (let nc = 0; nc < g.NC; nc++) {
    const xo = nc * g.H * g.W;
    for (let oh = 0; oh < g.Ho; oh++) {
      const hi = th.idx[oh];
      const hw = th.w[oh];
      for (let ow = 0; ow < g.Wo; ow++) {
        const wi = tw.idx[ow];
        const ww = tw.w[ow];
        const gv = gy[(nc * g.Ho + oh) * g.Wo + ow];
        for (let a = 0; a < hi.length; a++) {
          for (let b = 0; b < wi.length; b++) acc[xo + hi[a] * g.W + wi[b]] += hw[a] * ww[b] * gv;
        }
      }
    }
  }
  for (let i = 0; i < gx.length; i++) gx[i] = acc[i];
}
