// LLaVA-UHD (SPEC §5, paper rules): the image is cut into N ≤ 6 variable-size slices on the grid
// whose slice aspect is closest to 1:1 (§5.2); each slice, and an overview of the whole image, is
// resized keeping its aspect so its 14-px patch grid holds ≤ 576 patches, encoded by CLIP with the
// position table bicubically resized to that grid, and compressed by one shared resampler
// (64 queries, 2D sin-cos on queries and keys, §5.3). Layout (§5.4): each slice's tokens followed by
// the input embedding of ',' (not last in its row) or '\n' (last in its row), the overview last.
// detail 'low' is the overview alone.
// The reference pads each slice's patches to 576 slots and masks the padding in attention; running
// the tower on exactly hp·wp patches computes the same thing.
//
// Keys: vision_tower.* (HF CLIPVisionModel), resampler.{attn_pool.*, ln_post, proj} (Qwen-VL layout,
// src/bridges/resampler.ts). Dims: Q queries, Dv tower width, D LLM width (= resampler embed).

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initResampler, resampler, type ResamplerConfig, type ResamplerParams } from '../../bridges/resampler.ts';
import { cropRegion, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { uhdViews, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig, LlamaParams } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, type ClipTower } from './towers.ts';

export interface UhdConfig {
  vision: ClipTower;
  featureLayer: number;
  /** Slice area unit (the tower's pre-training size, 336). */
  tile: number;
  patch: number;
  resampler: ResamplerConfig;
  commaId: number;
  newlineId: number;
}

export interface UhdParams {
  vision_tower: clip.ClipVisionParams;
  resampler: ResamplerParams;
}

/** Trainable globs of a resampler subtree: everything but the fixed sin-cos table. */
export function resamplerGlobs(prefix: string): string[] {
  return ['query', 'kv_proj', 'attn', 'ln_q', 'ln_kv'].map((k) => `${prefix}.attn_pool.${k}`).concat([`${prefix}.ln_post`, `${prefix}.proj`]);
}

/** The LLM's input embedding rows of `ids`: [n, D]. */
export function tokenEmbeds(lm: LlamaParams, llm: LlamaConfig, ids: readonly number[]): Tensor {
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= llm.vocabSize) throw new Error(`token id ${id} is outside the vocabulary [0, ${llm.vocabSize})`);
  return F.embedding(lm.model.embed_tokens.weight, fromData(Int32Array.from(ids), [ids.length], 'i32'));
}

/** CLIP patch features (CLS dropped) at `layer` for any input size (position grid bicubically resized): [B, h·w, Dv]. */
export function clipPatches(t: ClipTower, p: clip.ClipVisionParams, px: Tensor, layer: number): Tensor {
  return F.slice(clip.clipHiddenState(p, t.cfg, px, layer, true), 1, 1);
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): UhdConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const L = vision.cfg.numHiddenLayers;
  const featureLayer = r.int('mm_vision_select_layer', -2, -(L + 1), L);
  const rs = r.sub('resampler');
  const embed = llm.hiddenSize;
  const res: ResamplerConfig = { gridSize: rs.int('grid_size', 8), embedDim: embed, kvDim: vision.cfg.hiddenSize, heads: rs.int('num_heads', 8), postProj: true };
  if (embed % res.heads !== 0) throw new Error(`${rs.source}: num_heads ${res.heads} does not divide the LLM width ${embed}`);
  const commaId = r.int('comma_token_id', undefined, 0), newlineId = r.int('newline_token_id', undefined, 0);
  for (const [k, v] of [['comma_token_id', commaId], ['newline_token_id', newlineId]] as const) {
    if (v >= llm.vocabSize) throw new Error(`${r.source}: '${k}' ${v} is outside the vocabulary (text_config.vocab_size ${llm.vocabSize})`);
  }
  return { vision, featureLayer, tile: r.int('slice_size', vision.cfg.imageSize), patch: vision.cfg.patchSize, resampler: res, commaId, newlineId };
}

function info(): SystemInfo {
  const rs = resamplerGlobs('resampler');
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: { pretrain: rs, finetune: [...rs, 'language_model'] }, // SPEC §5.5
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

function init(cfg: UhdConfig, _llm: LlamaConfig, rng: Rng | null): UhdParams {
  return { vision_tower: clip.init(cfg.vision.cfg, rng), resampler: initResampler(cfg.resampler, rng) };
}

function layout(cfg: UhdConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; grid: [number, number]; positions: number } {
  const u = uhdViews(W, H, cfg.tile, cfg.patch);
  const Q = cfg.resampler.gridSize ** 2;
  if (detail === 'low') return { views: [u.views[u.views.length - 1]!], grid: u.grid, positions: Q };
  return { views: u.views, grid: u.grid, positions: (u.views.length - 1) * (Q + 1) + Q };
}

function plan(cfg: UhdConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; positions: number } {
  const l = layout(cfg, W, H, detail);
  return { views: l.views, positions: l.positions };
}

function prepare(cfg: UhdConfig, image: RgbImage, detail: Detail): PreparedImage {
  const l = layout(cfg, image.width, image.height, detail);
  const pixels: Record<string, Tensor> = {};
  l.views.forEach((v, i) => {
    const src = v.cell === undefined ? image : cropRegion(image, v.region);
    pixels[`view${i}`] = fromData(normalize(resizeBicubic(src, v.size[0], v.size[1])), [1, 3, v.size[1], v.size[0]]);
  });
  return { size: [image.width, image.height], detail, views: l.views, positions: l.positions, pixels, meta: { grid: l.grid } };
}

function encode(cfg: UhdConfig, params: UhdParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize, Q = cfg.resampler.gridSize ** 2;
  // Views of equal size across all images run as one batch.
  const groups = new Map<string, { px: Tensor[]; at: [number, number][] }>();
  images.forEach((im, i) => im.views.forEach((v, j) => {
    const k = `${v.size[0]}x${v.size[1]}`;
    const g = groups.get(k) ?? { px: [], at: [] };
    g.px.push(im.pixels[`view${j}`]!);
    g.at.push([i, j]);
    groups.set(k, g);
  }));
  const tokens: Tensor[][] = images.map((im) => new Array<Tensor>(im.views.length));
  for (const [k, g] of groups) {
    const [w, h] = k.split('x').map(Number) as [number, number];
    const px = g.px.length === 1 ? g.px[0]! : F.concat(g.px, 0); // [n, 3, h, w]
    const feats = runFrozen(params.vision_tower, () => clipPatches(cfg.vision, params.vision_tower, px, cfg.featureLayer)); // [n, hp·wp, Dv]
    const out = resampler(cfg.resampler, params.resampler, feats, { grid: [h / cfg.patch, w / cfg.patch] }); // [n, Q, D]
    g.at.forEach(([i, j], n) => { tokens[i]![j] = F.squeeze(F.slice(out, 0, n, n + 1), 0); });
  }
  const sep = tokenEmbeds(ctx.lm, ctx.llm, [cfg.commaId, cfg.newlineId]); // [2, D]
  const comma = F.slice(sep, 0, 0, 1), newline = F.slice(sep, 0, 1, 2);
  return images.map((im, i) => {
    const parts: Tensor[] = [];
    const cols = (im.meta as { grid: [number, number] }).grid[0];
    im.views.forEach((v, j) => {
      parts.push(tokens[i]![j]!); // [Q, D]
      if (v.cell !== undefined) parts.push(v.cell[1] === cols - 1 ? newline : comma);
    });
    const e = parts.length === 1 ? parts[0]! : F.concat(parts, 0);
    if (e.shape[0] !== im.positions || e.shape[1] !== D) throw new Error(`llava-uhd: encoded ${e.describe()}, planned [${im.positions}, ${D}] (${Q} per view)`);
    return e;
  });
}

export const system: VlmSystem<UhdConfig, UhdParams> = { name: 'llava-uhd', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    name: 'llava-uhd', system: 'llava-uhd',
    // SPEC §5.3 paper-era code: CLIP ViT-L/14-336 (layer −2), shared resampler 64 queries, embed 5120 (Vicuna-13B), 8 heads, kv 1024;
    // ',' = 29892 and '\n' = 13 (LLaMA ids, §5.4). Vicuna-13B dims other than D are LLaMA-13B's (not in SPEC).
    real: () => ({
      system: 'llava-uhd',
      vision_config: {
        vision_tower: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 336, patch: 14 }),
        mm_vision_select_layer: -2, slice_size: 336, resampler: { grid_size: 8, num_heads: 8 },
        comma_token_id: 29892, newline_token_id: 13,
      },
      text_config: llamaConfig({ dim: 5120, layers: 40, heads: 40, ffn: 13824, vocab: 32000, maxPos: 4096 }),
    }),
    // 56-px slices of 14-px patches (≤ 16 patches), 4 queries; ',' = 49 and '\n' = 15 in the built-in tiny tokenizer.
    tiny: () => ({
      system: 'llava-uhd',
      vision_config: {
        vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14 }),
        mm_vision_select_layer: -2, slice_size: 56, resampler: { grid_size: 2, num_heads: 2 },
        comma_token_id: 49, newline_token_id: 15,
      },
      text_config: tinyLlama(),
    }),
  },
];
