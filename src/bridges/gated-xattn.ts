// Flamingo gated cross-attention block (SPEC §7.3; OpenFlamingo helpers.py GatedCrossAttentionBlock):
//   x <- x + tanh(attn_gate) * MaskedXAttn(LN(x), media)
//   x <- x + tanh(ff_gate)   * FFN(x)
// with both gates initialised to 0, so a fresh block returns its input exactly. Media masking:
// text_time = cumsum(media_locations); media j (1-based) is visible to a text token when
// text_time == j (only_attend_immediate_media, default) or text_time >= j. As in OpenFlamingo, a
// token with no visible media gets softmax over all -inf-like scores = a uniform average of the
// values, except that in immediate mode tokens with text_time == 0 get exactly 0.
// Param tree = OpenFlamingo's `gated_cross_attn_layer` keys:
//   attn.norm.{weight, bias} [D], attn.to_q.weight [Hh*Dh, D], attn.to_kv.weight [2*Hh*Dh, Dv],
//   attn.to_out.weight [D, Hh*Dh], attn_gate [1], ff.0.{weight, bias}, ff.1.weight, ff.3.weight, ff_gate [1]
//
// Dims: B batch, T text tokens, Ti media items, L tokens per media item, D text width,
// Dv media width, Hh heads, Dh head dim.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { fromData, type Tensor } from '../engine/tensor.ts';
import { constInit } from '../nn/init.ts';
import { initLinear, zeroLinear, type Linear } from '../nn/linear.ts';
import { initLayerNorm, type LayerNorm } from '../nn/norm.ts';
import { mergeHeads, splitHeads } from '../nn/vit.ts';
import { feedForward, initFeedForward, type FeedForwardParams } from './perceiver.ts';

export interface GatedXAttnConfig {
  dim: number; // D
  dimVisual: number; // Dv
  dimHead?: number; // Dh, default 64
  heads?: number; // Hh, default 8
  ffMult?: number; // default 4
  onlyAttendImmediateMedia?: boolean; // default true
}

export interface MaskedCrossAttentionParams {
  norm: LayerNorm; // [D]
  to_q: Linear; // [Hh*Dh, D]
  to_kv: Linear; // [2*Hh*Dh, Dv]: k rows then v rows
  to_out: Linear; // [D, Hh*Dh]
}

export interface GatedXAttnParams {
  attn: MaskedCrossAttentionParams;
  attn_gate: Tensor; // [1]
  ff: FeedForwardParams;
  ff_gate: Tensor; // [1]
}

function resolve(cfg: GatedXAttnConfig): { dim: number; dimVisual: number; dimHead: number; heads: number; ffMult: number } {
  const r = { dim: cfg.dim, dimVisual: cfg.dimVisual, dimHead: cfg.dimHead ?? 64, heads: cfg.heads ?? 8, ffMult: cfg.ffMult ?? 4 };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`gated-xattn: ${k} must be a positive integer, got ${v}`);
  }
  return r;
}

/** PyTorch defaults; gates are 0 whatever rng is. All zeros when rng is null. */
export function initGatedXAttn(cfg: GatedXAttnConfig, rng: Rng | null): GatedXAttnParams {
  const r = resolve(cfg);
  const inner = r.dimHead * r.heads;
  const lin = (i: number, o: number): Linear => (rng === null ? zeroLinear(i, o, false) : initLinear(i, o, rng, false));
  return {
    attn: {
      norm: rng === null ? { weight: constInit([r.dim], 0), bias: constInit([r.dim], 0) } : initLayerNorm(r.dim),
      to_q: lin(r.dim, inner),
      to_kv: lin(r.dimVisual, 2 * inner),
      to_out: lin(inner, r.dim),
    },
    attn_gate: constInit([1], 0),
    ff: initFeedForward(r.dim, r.ffMult, rng),
    ff_gate: constInit([1], 0),
  };
}

export interface MediaMask {
  /** [B, 1, T, Ti*L] bool: true = the text token may attend to that media token. */
  mask: Tensor;
  /** [B, 1, T, 1] bool: rows whose output is the uniform mean of the values (no visible media, OpenFlamingo's softmax over equal scores). */
  uniform: Tensor;
  /** [B*T] cumulative media count per text token. */
  textTime: Int32Array;
}

/**
 * Builds the masks from media_locations [B, T] (bool/u8/i32/f32, nonzero = an <image> token).
 * The tensors are ordinary scope-tracked tensors (F.attention's backward reads the mask, so keep it alive until then).
 */
export function mediaMask(mediaLocations: Tensor, numMedia: number, tokensPerMedia: number, onlyImmediate = true): MediaMask {
  if (mediaLocations.ndim !== 2) throw new Error(`gated-xattn: media_locations must be [B, T], got ${mediaLocations.describe()}`);
  const [B, T] = mediaLocations.shape as [number, number];
  const loc = mediaLocations.dtype === 'f32' ? F.toArray(mediaLocations) : Array.from(F.contiguous(mediaLocations).buffer() as ArrayLike<number>);
  const Tk = numMedia * tokensPerMedia;
  const textTime = new Int32Array(B * T);
  const mask = new Uint8Array(B * T * Tk);
  const uniform = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    let t = 0;
    for (let i = 0; i < T; i++) {
      if (loc[b * T + i] !== 0) t++;
      const r = b * T + i;
      textTime[r] = t;
      let any = false;
      for (let j = 1; j <= numMedia; j++) {
        const vis = onlyImmediate ? t === j : t >= j;
        if (!vis) continue;
        any = true;
        mask.fill(1, r * Tk + (j - 1) * tokensPerMedia, r * Tk + j * tokensPerMedia);
      }
      uniform[r] = !any && !(onlyImmediate && t === 0) ? 1 : 0;
    }
  }
  return { mask: fromData(mask, [B, 1, T, Tk], 'bool'), uniform: fromData(uniform, [B, 1, T, 1], 'bool'), textTime };
}

/**
 * MaskedCrossAttention: x [B, T, D], media [B, Ti, L, Dv] -> [B, T, D] (before gating).
 * mediaLocations null: every text token sees all media tokens.
 */
export function maskedCrossAttention(cfg: GatedXAttnConfig, p: MaskedCrossAttentionParams, x: Tensor, media: Tensor, mediaLocations: Tensor | null): Tensor {
  const r = resolve(cfg);
  if (x.ndim !== 3 || x.shape[2] !== r.dim) throw new Error(`gated-xattn: x must be [B, T, ${r.dim}], got ${x.describe()}`);
  const [B, T] = x.shape as [number, number, number];
  if (media.ndim !== 4 || media.shape[0] !== B || media.shape[3] !== r.dimVisual || media.shape[1]! < 1 || media.shape[2]! < 1) {
    throw new Error(`gated-xattn: media must be [${B}, Ti, L, ${r.dimVisual}] (batch, media items, tokens, dim), got ${media.describe()}`);
  }
  const [, Ti, L] = media.shape as [number, number, number, number];
  if (mediaLocations !== null && (mediaLocations.ndim !== 2 || mediaLocations.shape[0] !== B || mediaLocations.shape[1] !== T)) {
    throw new Error(`gated-xattn: media_locations must be [${B}, ${T}], got ${mediaLocations.describe()}`);
  }
  const xn = F.layerNorm(x, p.norm.weight, p.norm.bias, 1e-5); // [B, T, D]
  const qh = splitHeads(F.linear(xn, p.to_q.weight, null), r.heads); // [B, Hh, T, Dh]
  const m = F.reshape(media, [B, Ti * L, r.dimVisual]); // [B, Ti*L, Dv]
  const [wk, wv] = F.chunk(p.to_kv.weight, 2, 0); // each [Hh*Dh, Dv]
  const kh = splitHeads(F.linear(m, wk!, null), r.heads); // [B, Hh, Ti*L, Dh]
  const vh = splitHeads(F.linear(m, wv!, null), r.heads); // [B, Hh, Ti*L, Dh]
  let ctx: Tensor; // [B, Hh, T, Dh]
  if (mediaLocations === null) {
    ctx = F.attention(qh, kh, vh);
  } else {
    const mm = mediaMask(mediaLocations, Ti, L, cfg.onlyAttendImmediateMedia ?? true);
    ctx = F.attention(qh, kh, vh, { mask: mm.mask }); // rows with no visible key are 0
    if (mm.uniform.u8.some((u) => u !== 0)) ctx = F.where(mm.uniform, F.mean(vh, 2, true), ctx);
  }
  return F.linear(mergeHeads(ctx), p.to_out.weight, null); // [B, T, D]
}

/** The gated block: x [B, T, D], media [B, Ti, L, Dv], mediaLocations [B, T] | null -> [B, T, D]. */
export function gatedXAttn(cfg: GatedXAttnConfig, p: GatedXAttnParams, x: Tensor, media: Tensor, mediaLocations: Tensor | null = null): Tensor {
  const a = maskedCrossAttention(cfg, p.attn, x, media, mediaLocations); // [B, T, D]
  const h = F.add(F.mul(a, F.tanh(p.attn_gate)), x); // [B, T, D]
  return F.add(F.mul(feedForward(p.ff, h), F.tanh(p.ff_gate)), h);
}
