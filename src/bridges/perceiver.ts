// Flamingo Perceiver Resampler (SPEC §7.2; OpenFlamingo helpers.py PerceiverResampler): `num_latents`
// learned latents, per layer latents += Attn(q = LN(latents), kv = [LN(x) ; LN(latents)]) and
// latents += FFN(latents), FFN = LN, Linear(D->mult*D, no bias), GELU, Linear(no bias); a final LN.
// Optional frame embeddings (per frame) and media-time embeddings (per media item). Param tree =
// OpenFlamingo's `perceiver` keys:
//   latents [L, D], frame_embs [maxF, D]?, media_time_embs [maxT, 1, D]?,
//   layers.i.0.{norm_media, norm_latents}.{weight, bias} [D], layers.i.0.to_q.weight [Hh*Dh, D],
//   layers.i.0.to_kv.weight [2*Hh*Dh, D], layers.i.0.to_out.weight [D, Hh*Dh],
//   layers.i.1.0.{weight, bias} [D], layers.i.1.1.weight [mult*D, D], layers.i.1.3.weight [D, mult*D],
//   norm.{weight, bias} [D]
//
// Dims: B batch, T media items, Fr frames, V tokens per frame, D width, L latents, Hh heads, Dh head dim.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { constInit, normalInit } from '../nn/init.ts';
import { initLinear, zeroLinear, type Linear } from '../nn/linear.ts';
import { initLayerNorm, type LayerNorm } from '../nn/norm.ts';
import { mergeHeads, splitHeads } from '../nn/vit.ts';

export interface PerceiverConfig {
  dim: number; // D
  depth?: number; // default 6
  dimHead?: number; // Dh, default 64
  heads?: number; // Hh, default 8
  numLatents?: number; // L, default 64
  maxNumMedia?: number | null; // enables media_time_embs
  maxNumFrames?: number | null; // enables frame_embs
  ffMult?: number; // default 4
}

/** OpenFlamingo FeedForward: nn.Sequential(LayerNorm, Linear(no bias), GELU, Linear(no bias)). */
export interface FeedForwardParams {
  '0': LayerNorm; // [D]
  '1': Linear; // [mult*D, D]
  '3': Linear; // [D, mult*D]
}

export interface PerceiverAttentionParams {
  norm_media: LayerNorm; // [D]
  norm_latents: LayerNorm; // [D]
  to_q: Linear; // [Hh*Dh, D]
  to_kv: Linear; // [2*Hh*Dh, D]: k rows then v rows
  to_out: Linear; // [D, Hh*Dh]
}

export interface PerceiverParams {
  latents: Tensor; // [L, D]
  frame_embs: Tensor | null; // [maxF, D]
  media_time_embs: Tensor | null; // [maxT, 1, D]
  layers: [PerceiverAttentionParams, FeedForwardParams][];
  norm: LayerNorm; // [D]
}

interface Resolved { dim: number; depth: number; dimHead: number; heads: number; numLatents: number; ffMult: number }

function resolve(cfg: PerceiverConfig): Resolved {
  const r = { dim: cfg.dim, depth: cfg.depth ?? 6, dimHead: cfg.dimHead ?? 64, heads: cfg.heads ?? 8, numLatents: cfg.numLatents ?? 64, ffMult: cfg.ffMult ?? 4 };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`perceiver: ${k} must be a positive integer, got ${v}`);
  }
  for (const k of ['maxNumMedia', 'maxNumFrames'] as const) {
    const v = cfg[k];
    if (v !== undefined && v !== null && (!Number.isInteger(v) || v < 1)) throw new Error(`perceiver: ${k} must be a positive integer or null, got ${v}`);
  }
  return r;
}

/** Shared with gated-xattn: LN ones/zeros (or zeros when rng is null) and bias-free Linears. */
export function initFeedForward(dim: number, mult: number, rng: Rng | null): FeedForwardParams {
  const inner = dim * mult;
  return {
    '0': rng === null ? { weight: constInit([dim], 0), bias: constInit([dim], 0) } : initLayerNorm(dim),
    '1': rng === null ? zeroLinear(dim, inner, false) : initLinear(dim, inner, rng, false),
    '3': rng === null ? zeroLinear(inner, dim, false) : initLinear(inner, dim, rng, false),
  };
}

/** LN, Linear, GELU (erf), Linear: x [..., D] -> [..., D]. */
export function feedForward(p: FeedForwardParams, x: Tensor): Tensor {
  const h = F.layerNorm(x, p['0'].weight, p['0'].bias, 1e-5);
  return F.linear(F.gelu(F.linear(h, p['1'].weight, null)), p['3'].weight, null);
}

/** PyTorch defaults (latents/frame/media-time embeddings randn); all zeros when rng is null. */
export function initPerceiver(cfg: PerceiverConfig, rng: Rng | null): PerceiverParams {
  const r = resolve(cfg);
  const D = r.dim, inner = r.dimHead * r.heads;
  const randn = (shape: number[]): Tensor => (rng === null ? constInit(shape, 0) : normalInit(shape, 1, rng));
  const ln = (): LayerNorm => (rng === null ? { weight: constInit([D], 0), bias: constInit([D], 0) } : initLayerNorm(D));
  const lin = (i: number, o: number): Linear => (rng === null ? zeroLinear(i, o, false) : initLinear(i, o, rng, false));
  const layers: [PerceiverAttentionParams, FeedForwardParams][] = [];
  const latents = randn([r.numLatents, D]);
  const frame_embs = cfg.maxNumFrames ? randn([cfg.maxNumFrames, D]) : null;
  const media_time_embs = cfg.maxNumMedia ? randn([cfg.maxNumMedia, 1, D]) : null;
  for (let i = 0; i < r.depth; i++) {
    layers.push([
      { norm_media: ln(), norm_latents: ln(), to_q: lin(D, inner), to_kv: lin(D, 2 * inner), to_out: lin(inner, D) },
      initFeedForward(D, r.ffMult, rng),
    ]);
  }
  return { latents, frame_embs, media_time_embs, layers, norm: ln() };
}

/** One PerceiverAttention: x [N, M, D] media, lat [N, L, D] -> [N, L, D] (N = B*T). */
function perceiverAttention(p: PerceiverAttentionParams, heads: number, x: Tensor, lat: Tensor): Tensor {
  const xn = F.layerNorm(x, p.norm_media.weight, p.norm_media.bias, 1e-5); // [N, M, D]
  const ln = F.layerNorm(lat, p.norm_latents.weight, p.norm_latents.bias, 1e-5); // [N, L, D]
  const qh = splitHeads(F.linear(ln, p.to_q.weight, null), heads); // [N, Hh, L, Dh]
  const kvIn = F.concat([xn, ln], 1); // [N, M+L, D]
  const [wk, wv] = F.chunk(p.to_kv.weight, 2, 0); // each [Hh*Dh, D]
  const kh = splitHeads(F.linear(kvIn, wk!, null), heads); // [N, Hh, M+L, Dh]
  const vh = splitHeads(F.linear(kvIn, wv!, null), heads); // [N, Hh, M+L, Dh]
  const ctx = mergeHeads(F.attention(qh, kh, vh)); // [N, L, Hh*Dh], scale Dh^-1/2
  return F.linear(ctx, p.to_out.weight, null); // [N, L, D]
}

/** x [B, T, Fr, V, D] -> [B, T, L, D]. */
export function perceiver(cfg: PerceiverConfig, p: PerceiverParams, x: Tensor): Tensor {
  const r = resolve(cfg);
  const D = r.dim, L = r.numLatents;
  if (x.ndim !== 5 || x.shape[4] !== D || x.shape.slice(0, 4).some((d) => d < 1)) {
    throw new Error(`perceiver: input must be [B, T, F, V, ${D}] (batch, media, frames, tokens, dim), got ${x.describe()}`);
  }
  const [B, T, Fr, V] = x.shape as [number, number, number, number, number];
  if (p.latents.shape[0] !== L || p.latents.shape[1] !== D) throw new Error(`perceiver: latents are ${p.latents.describe()}, config wants [${L}, ${D}]`);
  let h = x; // [B, T, Fr, V, D]
  if (p.frame_embs !== null) {
    if (Fr > p.frame_embs.shape[0]!) throw new Error(`perceiver: ${Fr} frames exceed max_num_frames ${p.frame_embs.shape[0]}`);
    h = F.add(h, F.reshape(F.slice(p.frame_embs, 0, 0, Fr), [1, 1, Fr, 1, D]));
  }
  h = F.reshape(h, [B, T, Fr * V, D]); // [B, T, M, D], M = Fr*V
  if (p.media_time_embs !== null) {
    if (T > p.media_time_embs.shape[0]!) throw new Error(`perceiver: ${T} media items exceed max_num_media ${p.media_time_embs.shape[0]}`);
    h = F.add(h, F.slice(p.media_time_embs, 0, 0, T)); // + [T, 1, D]
  }
  const xm = F.reshape(h, [B * T, Fr * V, D]); // [N, M, D]
  let lat = F.expand(F.unsqueeze(p.latents, 0), [B * T, L, D]); // [N, L, D]
  for (const [attn, ff] of p.layers) {
    lat = F.add(perceiverAttention(attn, r.heads, xm, lat), lat);
    lat = F.add(feedForward(ff, lat), lat);
  }
  const out = F.layerNorm(lat, p.norm.weight, p.norm.bias, 1e-5); // [N, L, D]
  return F.reshape(out, [B, T, L, D]);
}
