// Resampler-1L (SPEC §17.1; Qwen-VL `attn_pool`, shared by Monkey/SliME/UHD): Q = G*G learned
// queries cross-attend once to the image tokens. kv_proj (no bias, absent when Dkv == D), LayerNorm
// on queries (ln_q) and keys/values (ln_kv), a fixed 2D sin-cos table added to the queries and,
// bicubically resized to the key grid, to the keys (never to the values); one nn.MultiheadAttention;
// then ln_post and an optional `x @ proj`. Param tree = Qwen-VL's visual-module keys:
//   attn_pool.{query [Q, D], pos_embed [Q, D] (fixed, not trainable), kv_proj.weight [D, Dkv],
//   attn.in_proj_weight [3D, D], attn.in_proj_bias [3D], attn.out_proj.{weight [D, D], bias [D]},
//   ln_q.{weight, bias}, ln_kv.{weight, bias}}, ln_post.{weight, bias}, proj [D, D]
//
// Dims: B batch, N image tokens (h*w grid), Dkv image width, G query grid side, Q = G*G queries,
// D embed width, Hh heads (D / 128 in Qwen-VL), Dh = D / Hh.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { fromData, keep, type Tensor } from '../engine/tensor.ts';
import { initLayerNorm, type LayerNorm } from '../nn/norm.ts';
import { constInit } from '../nn/init.ts';
import type { Linear } from '../nn/linear.ts';
import { mergeHeads, normalOrZero, resizePosGrid, splitHeads, truncNormalOrZero } from '../nn/vit.ts';

// ---- 2D sin-cos table (SPEC §9.4) --------------------------------------------------------------

/**
 * The fixed 2D sin-cos table [gh*gw, D] (MAE / Qwen-VL get_2d_sincos_pos_embed), rows row-major over
 * the grid. With w_i = 10000^(-i/(D/4)), i < D/4: channels [0, D/2) are [sin(col*w) | cos(col*w)],
 * channels [D/2, D) are [sin(row*w) | cos(row*w)]. D must be a multiple of 4. Not a parameter.
 */
export function sincos2d(D: number, gh: number, gw: number = gh): Tensor {
  if (!Number.isInteger(D) || D < 4 || D % 4 !== 0) throw new Error(`sincos2d: width must be a positive multiple of 4, got ${D}`);
  if (!Number.isInteger(gh) || !Number.isInteger(gw) || gh < 1 || gw < 1) throw new Error(`sincos2d: invalid grid ${gh}x${gw}`);
  const q = D / 4;
  const out = new Float32Array(gh * gw * D);
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const o = (r * gw + c) * D;
      for (let i = 0; i < q; i++) {
        const w = 1 / Math.pow(10000, i / q);
        out[o + i] = Math.sin(c * w);
        out[o + q + i] = Math.cos(c * w);
        out[o + 2 * q + i] = Math.sin(r * w);
        out[o + 3 * q + i] = Math.cos(r * w);
      }
    }
  }
  return fromData(out, [gh * gw, D]);
}

/**
 * Qwen-VL get_abs_pos: a square table [G*G, D] resized to [h*w, D] with
 * F.interpolate(mode='bicubic', align_corners=False) (a = -0.75); returned unchanged when the grid matches.
 */
export function resizePosTable(table: Tensor, h: number, w: number = h): Tensor {
  const g = Math.round(Math.sqrt(table.shape[0] ?? 0));
  if (table.ndim === 2 && g === h && g === w && g * g === table.shape[0]) return table;
  return resizePosGrid(table, h, w, 'size');
}

// ---- Resampler ---------------------------------------------------------------------------------

export interface ResamplerConfig {
  gridSize: number; // G (Q = G*G queries)
  embedDim: number; // D
  kvDim: number; // Dkv (kv_proj is an identity when equal to D)
  heads: number; // Hh (Qwen-VL: D / 128)
  /** Add the 2D sin-cos positions to queries and keys (default true). */
  positions?: boolean;
  /** ln_post then `@ proj` after the pool (default true: Qwen-VL's visual tail). */
  postProj?: boolean;
  /** LayerNorm eps (Qwen-VL: 1e-6). */
  eps?: number;
}

export interface MultiheadAttentionParams {
  in_proj_weight: Tensor; // [3D, D] rows: q, k, v
  in_proj_bias: Tensor; // [3D]
  out_proj: Linear; // [D, D]
}

export interface AttnPoolParams {
  query: Tensor; // [Q, D]
  pos_embed: Tensor; // [Q, D] fixed sin-cos (requiresGrad false)
  kv_proj: Linear | null; // weight [D, Dkv], no bias; null when Dkv == D
  attn: MultiheadAttentionParams;
  ln_q: LayerNorm; // [D]
  ln_kv: LayerNorm; // [D]
}

export interface ResamplerParams {
  attn_pool: AttnPoolParams;
  ln_post: LayerNorm | null; // [D]
  proj: Tensor | null; // [D, D], applied as x @ proj
}

function checkCfg(cfg: ResamplerConfig): void {
  for (const k of ['gridSize', 'embedDim', 'kvDim', 'heads'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new Error(`resampler: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.embedDim % cfg.heads !== 0) throw new Error(`resampler: embedDim ${cfg.embedDim} is not divisible by heads ${cfg.heads}`);
  if ((cfg.positions ?? true) && cfg.embedDim % 4 !== 0) throw new Error(`resampler: embedDim ${cfg.embedDim} must be a multiple of 4 for 2D sin-cos positions`);
}

/**
 * Qwen-VL init: query trunc-normal(0.02), Linear weights trunc-normal(0.02) with zero biases,
 * LayerNorms ones/zeros, proj = D^-1/2 * randn. With rng null every trainable leaf is zero (to be
 * loaded); pos_embed is always the sin-cos table.
 */
export function initResampler(cfg: ResamplerConfig, rng: Rng | null): ResamplerParams {
  checkCfg(cfg);
  const D = cfg.embedDim, Q = cfg.gridSize * cfg.gridSize;
  const tn = (shape: number[]): Tensor => truncNormalOrZero(shape, 0.02, rng);
  const ln = (): LayerNorm => (rng === null ? { weight: constInit([D], 0), bias: constInit([D], 0) } : initLayerNorm(D));
  const pos = (cfg.positions ?? true) ? sincos2d(D, cfg.gridSize) : fromData(new Float32Array(Q * D), [Q, D]);
  const post = cfg.postProj ?? true;
  return {
    attn_pool: {
      query: tn([Q, D]),
      pos_embed: keep(pos),
      kv_proj: cfg.kvDim !== D ? { weight: tn([D, cfg.kvDim]), bias: null } : null,
      attn: { in_proj_weight: tn([3 * D, D]), in_proj_bias: constInit([3 * D], 0), out_proj: { weight: tn([D, D]), bias: constInit([D], 0) } },
      ln_q: ln(),
      ln_kv: ln(),
    },
    ln_post: post ? ln() : null,
    proj: post ? normalOrZero([D, D], 1 / Math.sqrt(D), rng) : null,
  };
}

export interface ResamplerOptions {
  /** Key grid [h, w] with h*w = N (default: square, N must be a perfect square). */
  grid?: readonly [number, number];
}

/** x [B, N, Dkv] -> [B, Q, D]. */
export function resampler(cfg: ResamplerConfig, p: ResamplerParams, x: Tensor, opts: ResamplerOptions = {}): Tensor {
  const D = cfg.embedDim, H = cfg.heads, Q = cfg.gridSize * cfg.gridSize;
  if (x.ndim !== 3 || x.shape[2] !== cfg.kvDim || x.shape[1]! < 1) throw new Error(`resampler: input must be [B, N, ${cfg.kvDim}] with N >= 1, got ${x.describe()}`);
  const [B, N] = x.shape as [number, number, number];
  const ap = p.attn_pool;
  if (ap.query.shape[0] !== Q || ap.query.shape[1] !== D) throw new Error(`resampler: query is ${ap.query.describe()}, config wants [${Q}, ${D}]`);
  const usePos = cfg.positions ?? true;
  const eps = cfg.eps ?? 1e-6;

  let h = 0, w = 0; // key grid
  if (usePos) {
    if (opts.grid !== undefined) {
      [h, w] = opts.grid;
      if (h * w !== N) throw new Error(`resampler: grid ${h}x${w} does not match ${N} image tokens`);
    } else {
      h = w = Math.round(Math.sqrt(N));
      if (h * w !== N) throw new Error(`resampler: ${N} image tokens do not form a square grid; pass opts.grid`);
    }
  }
  let kv = ap.kv_proj !== null ? F.linear(x, ap.kv_proj.weight, null) : x; // [B, N, D]
  if (kv.shape[2] !== D) throw new Error(`resampler: kv width ${kv.shape[2]} != embedDim ${D} (kv_proj missing?)`);
  kv = F.layerNorm(kv, ap.ln_kv.weight, ap.ln_kv.bias, eps); // [B, N, D]
  let q = F.layerNorm(ap.query, ap.ln_q.weight, ap.ln_q.bias, eps); // [Q, D]
  let k = kv; // [B, N, D]
  if (usePos) {
    q = F.add(q, ap.pos_embed); // [Q, D]
    k = F.add(kv, resizePosTable(ap.pos_embed, h, w)); // [B, N, D] + [N, D]
  }
  const [wq, wk, wv] = F.chunk(ap.attn.in_proj_weight, 3, 0); // each [D, D]
  const [bq, bk, bv] = F.chunk(ap.attn.in_proj_bias, 3, 0); // each [D]
  const qb = F.expand(F.unsqueeze(q, 0), [B, Q, D]); // [B, Q, D]
  const qh = splitHeads(F.linear(qb, wq!, bq!), H); // [B, Hh, Q, Dh]
  const kh = splitHeads(F.linear(k, wk!, bk!), H); // [B, Hh, N, Dh]
  const vh = splitHeads(F.linear(kv, wv!, bv!), H); // [B, Hh, N, Dh]
  const ctx = mergeHeads(F.attention(qh, kh, vh)); // [B, Q, D]
  let out = F.linear(ctx, ap.attn.out_proj.weight, ap.attn.out_proj.bias); // [B, Q, D]
  if (p.ln_post !== null) out = F.layerNorm(out, p.ln_post.weight, p.ln_post.bias, eps);
  if (p.proj !== null) out = F.matmul(out, p.proj); // [B, Q, D]
  return out;
}
