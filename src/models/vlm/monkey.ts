// Monkey (SPEC §6): Qwen-VL's visual module raised to 896 px with a sliding window. The image is
// resized to 2·win (aspect not kept); the four win×win windows (TL, TR, BL, BR) each run the
// shared ViT with their own LoRA set, and a global view (bicubic interpolation of the 2·win tensor
// down to win) runs it with no LoRA. Every view is pooled by the shared Qwen-VL resampler
// (256 queries at real size, 2D sin-cos on queries and resized on keys, ln_post, @proj).
// Image tokens: [win0 ; win1 ; win2 ; win3 ; global] (1280 at real size); detail 'low' is the
// global view alone. The `<img>…</img>` wrapper is prompt text, not counted here.
//
// ViT (Qwen-VL VisionTransformer, no class token): conv1 (no bias), positional_embedding
// [G0², W] bicubically resized to the patch grid, ln_pre, resblocks {ln_1, attn.{in_proj,
// out_proj}, ln_2, mlp.{c_fc, c_proj}} with per-head interleaved q|k|v in in_proj, GELU, LN eps 1e-6.
// LoRA per block and window i (SPEC §6.2): in-projection += LoRA_in[i](x) (r 16, out 3W);
// out-projection += LoRA_out[i](ctx) (r 16); x2 = x1 + MLP(LN(x1)) + LoRA_mlp[i](x1) (r 32).
// LoRA key names (lora_in / lora_out / lora_mlp, indexed by window) are Chimera's; Monkey's are not in SPEC.
// The published LLM is Qwen-7B; the real preset uses a LLaMA-shaped decoder with its dims.
//
// Keys: visual.{conv1, positional_embedding, ln_pre, transformer.resblocks.N.*, attn_pool.*, ln_post, proj}.
// Dims: B views in a batch, T = g² patches, W ViT width, Hh heads, Dh = W / Hh, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../../engine/tensor.ts';
import { initLora, withLora, type LoraParams } from '../../bridges/lora.ts';
import { initResampler, resampler, resizePosTable, type ResamplerConfig, type ResamplerParams } from '../../bridges/resampler.ts';
import { initLinear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { layerNormParams, normalOrZero, patchEmbed, type LayerNormParams } from '../../nn/vit.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { monkeyViews, type ViewGeom } from '../../vision/views.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { resamplerGlobs } from './llava-uhd.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { llamaConfig, tinyLlama } from './towers.ts';

export const MONKEY_WINDOWS = 4;

export interface MonkeyConfig {
  /** Window side (448); the image is resized to 2·window. */
  window: number;
  patch: number;
  width: number; // W
  layers: number;
  heads: number;
  ffn: number;
  /** Side of the learned position table (16 → 256 entries). */
  posGrid: number;
  loraRank: number;
  loraMlpRank: number;
  resampler: ResamplerConfig;
}

export interface MonkeyBlock {
  ln_1: LayerNormParams;
  attn: { in_proj: Linear; out_proj: Linear }; // in_proj [3W, W], out_proj [W, W]
  ln_2: LayerNormParams;
  mlp: { c_fc: Linear; c_proj: Linear }; // [ffn, W], [W, ffn]
  lora_in: LoraParams[]; // per window: [r, W] -> [3W, r]
  lora_out: LoraParams[]; // per window: [r, W] -> [W, r]
  lora_mlp: LoraParams[]; // per window: [r2, W] -> [W, r2]
}

export interface MonkeyVisual extends ResamplerParams {
  conv1: { weight: Tensor }; // [W, 3, p, p]
  positional_embedding: Tensor; // [G0², W]
  ln_pre: LayerNormParams;
  transformer: { resblocks: MonkeyBlock[] };
}

export interface MonkeyParams {
  visual: MonkeyVisual;
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): MonkeyConfig {
  const window = r.int('window_size', 448), patch = r.int('patch_size', 14);
  if (window % patch !== 0) throw new Error(`${r.source}: window_size ${window} is not a multiple of patch_size ${patch}`);
  const width = r.int('width'), heads = r.int('heads');
  if (width % heads !== 0) throw new Error(`${r.source}: width ${width} is not divisible by heads ${heads}`);
  const rg = r.int('n_queries', 256);
  const g = Math.round(Math.sqrt(rg));
  if (g * g !== rg) throw new Error(`${r.source}: n_queries ${rg} is not a square`);
  const res: ResamplerConfig = { gridSize: g, embedDim: llm.hiddenSize, kvDim: width, heads: r.int('resampler_heads', Math.max(1, llm.hiddenSize / 128)), postProj: true };
  if (res.embedDim % res.heads !== 0) throw new Error(`${r.source}: resampler_heads ${res.heads} does not divide the LLM width ${res.embedDim}`);
  return {
    window, patch, width, heads, layers: r.int('layers'), ffn: r.int('intermediate_size'), posGrid: r.int('pos_grid', 16),
    loraRank: r.int('lora_rank', 16), loraMlpRank: r.int('lora_mlp_rank', 32), resampler: res,
  };
}

function info(): SystemInfo {
  const lora = ['visual.transformer.resblocks.*.lora_in', 'visual.transformer.resblocks.*.lora_out', 'visual.transformer.resblocks.*.lora_mlp'];
  const rs = resamplerGlobs('visual');
  return {
    template: 'chatml',
    layout: 'placeholder',
    keepPlaceholder: false,
    // SPEC §6.3 leaves Monkey's stages unverified; the paper trains LoRA, resampler and LLM with the ViT frozen.
    stages: { adapter: [...lora, ...rs], finetune: [...lora, ...rs, 'language_model'] },
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.8 },
  };
}

function init(cfg: MonkeyConfig, _llm: LlamaConfig, rng: Rng | null): MonkeyParams {
  const W = cfg.width;
  const lin = (i: number, o: number): Linear => (rng ? initLinear(i, o, rng) : zeroLinear(i, o));
  const loras = (out: number, r: number): LoraParams[] => Array.from({ length: MONKEY_WINDOWS }, () => initLora(W, out, r, rng));
  return {
    visual: {
      conv1: { weight: normalOrZero([W, 3, cfg.patch, cfg.patch], 0.02, rng) },
      positional_embedding: normalOrZero([cfg.posGrid * cfg.posGrid, W], W ** -0.5, rng),
      ln_pre: layerNormParams(W, rng),
      transformer: {
        resblocks: Array.from({ length: cfg.layers }, (): MonkeyBlock => ({
          ln_1: layerNormParams(W, rng),
          attn: { in_proj: lin(W, 3 * W), out_proj: lin(W, W) },
          ln_2: layerNormParams(W, rng),
          mlp: { c_fc: lin(W, cfg.ffn), c_proj: lin(cfg.ffn, W) },
          lora_in: loras(3 * W, cfg.loraRank),
          lora_out: loras(W, cfg.loraRank),
          lora_mlp: loras(W, cfg.loraMlpRank),
        })),
      },
      ...initResampler(cfg.resampler, rng),
    },
  };
}

function plan(cfg: MonkeyConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; positions: number } {
  const all = monkeyViews(W, H, cfg.window);
  const views = detail === 'low' ? [all[all.length - 1]!] : all;
  return { views, positions: views.length * cfg.resampler.gridSize ** 2 };
}

function prepare(cfg: MonkeyConfig, image: RgbImage, detail: Detail): PreparedImage {
  const p = plan(cfg, image.width, image.height, detail), S = 2 * cfg.window, w = cfg.window;
  const big = fromData(normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD), [1, 3, S, S]);
  const global = F.interpolate(big, { size: [w, w], mode: 'bicubic', alignCorners: false }); // [1, 3, w, w]
  const pixels: Record<string, Tensor> = { global };
  if (detail === 'high') {
    for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) {
      pixels[`window${r * 2 + c}`] = F.contiguous(F.slice(F.slice(big, 2, r * w, (r + 1) * w), 3, c * w, (c + 1) * w)); // [1, 3, w, w]
    }
  }
  big.dispose();
  return { size: [image.width, image.height], detail, views: p.views, positions: p.positions, pixels };
}

/** One resblock; `lw` selects the window's LoRA set (null: none). x [B, T, W]. */
function block(cfg: MonkeyConfig, b: MonkeyBlock, x: Tensor, lw: number | null): Tensor {
  const [B, T, W] = x.shape as [number, number, number];
  const H = cfg.heads, Dh = W / H, eps = 1e-6;
  const pick = (ls: LoraParams[]): LoraParams | null => (lw === null ? null : ls[lw]!);
  const a = F.layerNorm(x, b.ln_1.weight, b.ln_1.bias, eps);
  const mixed = withLora(F.linear(a, b.attn.in_proj.weight, b.attn.in_proj.bias), pick(b.lora_in), a); // [B, T, 3W]
  const qkv = F.permute(F.reshape(mixed, [B, T, H, 3 * Dh]), [0, 2, 1, 3]); // [B, Hh, T, 3Dh] (per-head q|k|v)
  const [q, k, v] = F.split(qkv, Dh, 3) as [Tensor, Tensor, Tensor]; // each [B, Hh, T, Dh]
  const ctx = F.reshape(F.transpose(F.attention(q, k, v), 1, 2), [B, T, W]); // [B, T, W]
  const x1 = F.add(x, withLora(F.linear(ctx, b.attn.out_proj.weight, b.attn.out_proj.bias), pick(b.lora_out), ctx));
  const m = F.linear(F.gelu(F.linear(F.layerNorm(x1, b.ln_2.weight, b.ln_2.bias, eps), b.mlp.c_fc.weight, b.mlp.c_fc.bias)), b.mlp.c_proj.weight, b.mlp.c_proj.bias);
  return F.add(x1, withLora(m, pick(b.lora_mlp), x1)); // [B, T, W]
}

/** ViT patch features [B, g², W] of px [B, 3, s, s] with window `lw`'s LoRA (null: none). */
export function monkeyVit(cfg: MonkeyConfig, p: MonkeyVisual, px: Tensor, lw: number | null): Tensor {
  const g = px.shape[2]! / cfg.patch;
  let x = patchEmbed(px, p.conv1.weight, null, cfg.patch); // [B, g², W]
  x = F.add(x, resizePosTable(p.positional_embedding, g, g));
  x = F.layerNorm(x, p.ln_pre.weight, p.ln_pre.bias, 1e-6);
  for (const b of p.transformer.resblocks) {
    const prev = x;
    x = tidy(() => block(cfg, b, prev, lw));
  }
  return x;
}

function encode(cfg: MonkeyConfig, params: MonkeyParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize, Q = cfg.resampler.gridSize ** 2, vis = params.visual;
  const cat = (key: string, ims: readonly PreparedImage[]): Tensor => (ims.length === 1 ? ims[0]!.pixels[key]! : F.concat(ims.map((i) => i.pixels[key]!), 0));
  const base = { conv1: vis.conv1, positional_embedding: vis.positional_embedding, ln_pre: vis.ln_pre, blocks: vis.transformer.resblocks.map((b) => [b.ln_1, b.attn, b.ln_2, b.mlp]) };
  const pool = (f: Tensor): Tensor => resampler(cfg.resampler, vis, f); // [B, Q, D]
  const high = images.filter((im) => im.detail === 'high');
  const perWindow: Tensor[] = [];
  for (let i = 0; high.length > 0 && i < MONKEY_WINDOWS; i++) {
    const loras = vis.transformer.resblocks.map((b) => [b.lora_in[i], b.lora_out[i], b.lora_mlp[i]]);
    perWindow.push(pool(runFrozen([base, loras], () => monkeyVit(cfg, vis, cat(`window${i}`, high), i)))); // [nHigh, Q, D]
  }
  const global = pool(runFrozen(base, () => monkeyVit(cfg, vis, cat('global', images), null))); // [nImages, Q, D]
  let h = 0;
  return images.map((im, n) => {
    const row = (t: Tensor, j: number): Tensor => F.squeeze(F.slice(t, 0, j, j + 1), 0); // [Q, D]
    const parts = im.detail === 'high' ? [...perWindow.map((t) => row(t, h)), row(global, n)] : [row(global, n)];
    if (im.detail === 'high') h++;
    const e = parts.length === 1 ? parts[0]! : F.concat(parts, 0);
    if (e.shape[0] !== im.positions || e.shape[1] !== D) throw new Error(`monkey: encoded ${e.describe()}, planned [${im.positions}, ${D}] (${Q} per view)`);
    return e;
  });
}

export const system: VlmSystem<MonkeyConfig, MonkeyParams> = { name: 'monkey', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    name: 'monkey', system: 'monkey',
    // SPEC §6.2: ViT-bigG/14 (1664 wide, 48 layers, 16 heads, MLP 4.9231 → 8192), 16×16 position table, 448 windows,
    // LoRA r 16 (attention) / 32 (MLP), resampler 256 queries, embed 4096, 32 heads. LLM: Qwen-7B dims in a LLaMA-shaped decoder.
    real: () => ({
      system: 'monkey',
      vision_config: { window_size: 448, patch_size: 14, width: 1664, layers: 48, heads: 16, intermediate_size: 8192, pos_grid: 16,
        lora_rank: 16, lora_mlp_rank: 32, n_queries: 256, resampler_heads: 32 },
      text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 151936, maxPos: 8192 }),
    }),
    // 32-px windows of 8-px patches (4×4 grid), a 2×2 position table, 4 queries per view.
    tiny: () => ({
      system: 'monkey',
      vision_config: { window_size: 32, patch_size: 8, width: 32, layers: 2, heads: 2, intermediate_size: 64, pos_grid: 2,
        lora_rank: 2, lora_mlp_rank: 4, n_queries: 4, resampler_heads: 2 },
      text_config: tinyLlama(),
    }),
  },
];
