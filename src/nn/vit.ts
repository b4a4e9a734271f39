// Shared Vision-Transformer pieces used by the encoder families: activations by Hugging Face
// name, patch embedding, multi-head attention over separate q/k/v projections, the two-layer MLP,
// resizing of a square position table, channels-first LayerNorm and init helpers.
//
// Dims: B batch, C channels, H/W image or grid size, T tokens, D width, Hh heads, Dh = D / Hh.

import * as F from '../engine/ops/index.ts';
import { fmt } from '../engine/shape.ts';
import type { Rng } from '../engine/rng.ts';
import { empty, fromData, type Tensor } from '../engine/tensor.ts';
import { constInit, leaf } from './init.ts';
import type { Linear } from './linear.ts';

// ---- activations ------------------------------------------------------------------------------

/** Hugging Face ACT2FN names this module implements. */
export const ACT_NAMES = ['gelu', 'quick_gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu', 'silu', 'swish'] as const;
export type ActName = (typeof ACT_NAMES)[number];

/** The activation for an HF `hidden_act` name ('gelu' is the exact erf GELU; the tanh forms share one kernel). */
export function activation(name: ActName): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu': return F.gelu;
    case 'quick_gelu': return F.quickGelu;
    case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_fast': return F.geluTanh;
    case 'relu': return F.relu;
    case 'silu': case 'swish': return F.silu;
  }
}

// ---- shape checks -------------------------------------------------------------------------------

/**
 * Checks pixel_values is f32 [B, C, H, W] with C channels, each side >= `minSide`; returns [B, H, W].
 * `model` names the caller in the error.
 */
export function checkPixels(model: string, x: Tensor, C: number, minSide = 1): [number, number, number] {
  if (x.dtype !== 'f32' || x.ndim !== 4 || x.shape[1] !== C || x.shape[0]! < 1 || x.shape[2]! < minSide || x.shape[3]! < minSide) {
    throw new Error(`${model}: pixel_values must be f32 [B, ${C}, H, W] with H, W >= ${minSide}, got ${x.describe()}`);
  }
  return [x.shape[0]!, x.shape[2]!, x.shape[3]!];
}

// ---- embeddings -------------------------------------------------------------------------------

/**
 * Non-overlapping patchify: conv2d(x [B, C, H, W], w [D, C, p, p], stride p) -> tokens [B, gh*gw, D]
 * in row-major grid order (flatten(2).transpose(1, 2)). Pixels past the last whole patch are dropped.
 */
export function patchEmbed(x: Tensor, weight: Tensor, bias: Tensor | null, patch: number): Tensor {
  const y = F.conv2d(x, weight, bias, { stride: patch }); // [B, D, gh, gw]
  const [B, D, gh, gw] = y.shape as [number, number, number, number];
  return F.transpose(F.reshape(y, [B, D, gh * gw]), 1, 2); // [B, gh*gw, D]
}

/** How a square position grid is resized to another grid (see resizePosGrid). */
export type PosInterp = 'size' | 'scale_factor' | 'antialias';

/**
 * Resizes a square grid table [g*g, D] to [h*w, D] with bicubic interpolation (align_corners=False),
 * as Hugging Face interpolate_pos_encoding does:
 *   'size'         F.interpolate(size=(h, w))                                  (HF CLIP, newer HF Dinov2)
 *   'scale_factor' F.interpolate(scale_factor=((h+0.1)/g, (w+0.1)/g))          (DINO offset: facebookresearch
 *                  dinov2 torch.hub and HF Dinov2 up to the size= refactor; the source/dest ratio is g/(h+0.1))
 *   'antialias'    F.interpolate(size=(h, w), antialias=True)                  (HF Dinov2WithRegisters)
 * Differentiable in the table.
 */
export function resizePosGrid(table: Tensor, h: number, w: number, mode: PosInterp): Tensor {
  if (table.ndim !== 2) throw new Error(`resizePosGrid: table must be [N, D], got ${fmt(table.shape)}`);
  const [N, D] = table.shape as [number, number];
  const g = Math.round(Math.sqrt(N));
  if (g * g !== N) throw new Error(`resizePosGrid: ${N} positions do not form a square grid`);
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new Error(`resizePosGrid: invalid target grid ${h}x${w}`);
  if (mode === 'antialias') {
    const grid = F.reshape(table, [g, g * D]); // [g, g*D]
    const rows = F.reshape(F.matmul(aaBicubicMatrix(g, h), grid), [h, g, D]); // [h, g, D]
    const out = F.matmul(aaBicubicMatrix(g, w), rows); // [w, g] @ [h, g, D] -> [h, w, D]
    return F.reshape(out, [h * w, D]);
  }
  const img = F.permute(F.reshape(table, [1, g, g, D]), [0, 3, 1, 2]); // [1, D, g, g]
  const opts: F.InterpolateOptions = mode === 'size'
    ? { size: [h, w], mode: 'bicubic', alignCorners: false }
    : { scaleFactor: [(h + 0.1) / g, (w + 0.1) / g], mode: 'bicubic', alignCorners: false };
  const r = F.interpolate(img, opts); // [1, D, h, w]
  if (r.shape[2] !== h || r.shape[3] !== w) throw new Error(`resizePosGrid: interpolation gave ${r.shape[2]}x${r.shape[3]}, expected ${h}x${w}`);
  return F.reshape(F.permute(r, [0, 2, 3, 1]), [h * w, D]);
}

/**
 * PyTorch's antialiased bicubic resampling along one axis as a matrix [out, n] (Keys cubic with
 * a = -0.5, support widened by the downscale factor, weights normalised per output; align_corners=False).
 */
function aaBicubicMatrix(n: number, out: number): Tensor {
  const scale = n / out;
  const support = 2 * Math.max(scale, 1);
  const inv = scale >= 1 ? 1 / scale : 1;
  const filter = (x: number): number => {
    const a = -0.5, t = Math.abs(x);
    if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
  };
  const m = new Float32Array(out * n);
  for (let i = 0; i < out; i++) {
    const center = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), n);
    let total = 0;
    const ws: number[] = [];
    for (let j = lo; j < hi; j++) {
      const v = filter((j - center + 0.5) * inv);
      ws.push(v);
      total += v;
    }
    for (let j = lo; j < hi; j++) m[i * n + j] = total !== 0 ? ws[j - lo]! / total : ws[j - lo]!;
  }
  return fromData(m, [out, n]);
}

// ---- attention and MLP ------------------------------------------------------------------------

/** [B, T, Hh*Dh] -> [B, Hh, T, Dh] (a view). */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, D] = x.shape as [number, number, number];
  return F.permute(F.reshape(x, [B, T, heads, D / heads]), [0, 2, 1, 3]);
}

/** [B, Hh, T, Dh] -> [B, T, Hh*Dh]. */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, Dh] = x.shape as [number, number, number, number];
  return F.reshape(F.transpose(x, 1, 2), [B, T, H * Dh]);
}

export interface AttentionOptions {
  /** Bool mask broadcastable to [B, Hh, Tq, Tk]; true = may attend. */
  mask?: Tensor | null;
}

/**
 * Bidirectional multi-head attention with scale 1/sqrt(Dh): queries from xq [B, Tq, Dq], keys and
 * values from xkv [B, Tk, Dkv] -> context [B, Tq, D] (before the output projection).
 */
export function multiHeadAttention(q: Linear, k: Linear, v: Linear, xq: Tensor, xkv: Tensor, heads: number, opts: AttentionOptions = {}): Tensor {
  const qh = splitHeads(F.linear(xq, q.weight, q.bias), heads); // [B, Hh, Tq, Dh]
  const kh = splitHeads(F.linear(xkv, k.weight, k.bias), heads); // [B, Hh, Tk, Dh]
  const vh = splitHeads(F.linear(xkv, v.weight, v.bias), heads); // [B, Hh, Tk, Dh]
  return mergeHeads(F.attention(qh, kh, vh, { mask: opts.mask ?? null })); // [B, Tq, D]
}

export interface Mlp {
  fc1: Linear; // [I, D]
  fc2: Linear; // [D, I]
}

export function mlp(p: Mlp, x: Tensor, act: (t: Tensor) => Tensor): Tensor {
  return F.linear(act(F.linear(x, p.fc1.weight, p.fc1.bias)), p.fc2.weight, p.fc2.bias);
}

// ---- norms --------------------------------------------------------------------------------------

/** LayerNorm over the channel dim of x [B, C, H, W] (ConvNeXt "channels_first"); weight/bias [C]. */
export function layerNormChannelsFirst(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  const y = F.layerNorm(F.permute(x, [0, 2, 3, 1]), weight, bias, eps); // [B, H, W, C]
  return F.permute(y, [0, 3, 1, 2]); // [B, C, H, W]
}

// ---- init ---------------------------------------------------------------------------------------

/** N(0, std) leaf, or zeros when rng is null. */
export function normalOrZero(shape: readonly number[], std: number, rng: Rng | null): Tensor {
  if (rng === null) return constInit(shape, 0);
  const t = empty(shape);
  rng.fillNormal(t.data, 0, std);
  return leaf(t);
}

/** Truncated N(0, std) on [-2, 2] (torch.nn.init.trunc_normal_ defaults) leaf, or zeros when rng is null. */
export function truncNormalOrZero(shape: readonly number[], std: number, rng: Rng | null): Tensor {
  if (rng === null) return constInit(shape, 0);
  const t = empty(shape);
  rng.fillTruncNormal(t.data, 0, std, -2, 2);
  return leaf(t);
}

/** A constant leaf, or zeros when rng is null. */
export function constOrZero(shape: readonly number[], value: number, rng: Rng | null): Tensor {
  return constInit(shape, rng === null ? 0 : value);
}

/** A Linear with weight from `weightInit` and a zero bias (or no bias). */
export function linearWith(inF: number, outF: number, weightInit: (shape: readonly number[]) => Tensor, bias = true): Linear {
  return { weight: weightInit([outF, inF]), bias: bias ? constInit([outF], 0) : null };
}

export interface LayerNormParams {
  weight: Tensor; // [D]
  bias: Tensor; // [D]
}

/** LayerNorm params: ones/zeros, or all zeros when rng is null. */
export function layerNormParams(d: number, rng: Rng | null): LayerNormParams {
  return { weight: constOrZero([d], 1, rng), bias: constInit([d], 0) };
}
