// LLaVA-NeXT "AnyRes" (LLaVA-1.6, SPEC §4): LLaVA-1.5's tower and MLP, applied to a plain 336
// resize of the whole image (the base view) plus the 336 tiles of the best-fitting grid pinpoint
// (resize-and-pad on black). Tile features are merged into one (rows·G)×(cols·G) grid, the
// letterbox rows or columns are cut off (spatial unpad), and the learned `image_newline` vector
// ends every row: image tokens = [base G² ; unpadded grid with newlines]. detail 'low' (one view)
// is the base view followed by a single image_newline, as the reference code does for one view.
//
// Keys: vision_tower.* (HF CLIPVisionModel), mm_projector.{0,2}, image_newline [D].
// Dims: V views, G patches per tile side (24), Dv tower width, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initMlpProjector, mlpProjector, type MlpProjectorParams } from '../../bridges/mlp-projector.ts';
import { normalOrZero } from '../../nn/vit.ts';
import { cropRegion, normalize, resizeAndPad, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { anyResViews, LLAVA_NEXT_PINPOINTS, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { system as llava, llavaFeatures, type LlavaConfig } from './llava.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { clipConfig, llamaConfig, tinyLlama } from './towers.ts';

export interface LlavaNextConfig {
  base: LlavaConfig;
  /** Candidate canvases (width, height), multiples of the tile size. */
  pinpoints: Array<[number, number]>;
  tile: number;
  /** Patches per tile side. */
  side: number;
}

export interface LlavaNextParams {
  vision_tower: clip.ClipVisionParams;
  mm_projector: MlpProjectorParams;
  image_newline: Tensor; // [D]
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): LlavaNextConfig {
  const base = llava.parseConfig(r, llm);
  if (base.selectFeature !== 'patch') throw new Error(`${r.source}: LLaVA-NeXT needs mm_vision_select_feature 'patch'`);
  const tile = base.vision.cfg.imageSize;
  const side = tile / base.vision.cfg.patchSize;
  let pinpoints: Array<[number, number]> = LLAVA_NEXT_PINPOINTS.map(([w, h]) => [w, h]);
  if (r.has('image_grid_pinpoints')) {
    const raw = r.raw('image_grid_pinpoints');
    if (!Array.isArray(raw) || raw.length === 0 || !raw.every((p) => Array.isArray(p) && p.length === 2 && p.every((v) => Number.isInteger(v) && v > 0))) {
      throw new Error(`${r.source}: 'image_grid_pinpoints' must be a non-empty list of [width, height] positive integer pairs`);
    }
    pinpoints = raw.map((p) => [p[0], p[1]] as [number, number]);
  }
  for (const [w, h] of pinpoints) {
    if (w % tile !== 0 || h % tile !== 0) throw new Error(`${r.source}: image_grid_pinpoints entry [${w}, ${h}] is not a multiple of the tile size ${tile} (vision_tower.image_size)`);
  }
  return { base, pinpoints, tile, side };
}

/** Globs of the tower parameters that reach hidden state `featureLayer` (HF numbering): the layers after it and post_layernorm get no gradient. */
export function clipUsedGlobs(prefix: string, cfg: clip.ClipVisionConfig, featureLayer: number): string[] {
  const L = cfg.numHiddenLayers, stop = featureLayer < 0 ? featureLayer + L + 1 : featureLayer;
  const out = [`${prefix}.vision_model.embeddings`, `${prefix}.vision_model.pre_layrnorm`];
  for (let i = 0; i < stop; i++) out.push(`${prefix}.vision_model.encoder.layers.${i}`);
  return out;
}

function info(cfg: LlavaNextConfig): SystemInfo {
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: {
      // SPEC §4.1: like LLaVA-1.5 (S1 projector only), and the vision tower also trains in SFT (mm_vision_tower_lr 2e-6).
      pretrain: ['mm_projector'],
      finetune: ['mm_projector', 'image_newline', 'language_model', ...clipUsedGlobs('vision_tower', cfg.base.vision.cfg, cfg.base.featureLayer)],
    },
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

function init(cfg: LlavaNextConfig, llm: LlamaConfig, rng: Rng | null): LlavaNextParams {
  const D = llm.hiddenSize;
  return {
    vision_tower: clip.init(cfg.base.vision.cfg, rng),
    mm_projector: initMlpProjector({ type: cfg.base.projectorType, inDim: cfg.base.vision.cfg.hiddenSize, outDim: D }, rng),
    image_newline: normalOrZero([D], 1 / Math.sqrt(D), rng), // randn · D^-1/2 (SPEC §4.2 step 6)
  };
}

interface Layout {
  views: ViewGeom[];
  positions: number;
  grid: [number, number];
  keepRows: [number, number];
  keepCols: [number, number];
  canvas: [number, number];
}

function layout(cfg: LlavaNextConfig, W: number, H: number, detail: Detail): Layout {
  const a = anyResViews(W, H, cfg.tile, cfg.side, cfg.pinpoints);
  const G2 = cfg.side * cfg.side;
  if (detail === 'low') return { views: [a.views[0]!], positions: G2 + 1, grid: a.grid, keepRows: a.keepRows, keepCols: a.keepCols, canvas: a.canvas };
  const rows = a.keepRows[1] - a.keepRows[0], cols = a.keepCols[1] - a.keepCols[0];
  return { views: a.views, positions: G2 + rows * (cols + 1), grid: a.grid, keepRows: a.keepRows, keepCols: a.keepCols, canvas: a.canvas };
}

function plan(cfg: LlavaNextConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; positions: number } {
  const l = layout(cfg, W, H, detail);
  return { views: l.views, positions: l.positions };
}

function prepare(cfg: LlavaNextConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.tile;
  const l = layout(cfg, image.width, image.height, detail);
  const chws: Float32Array[] = [normalize(resizeBicubic(image, S, S))]; // base view: plain (distorting) resize
  if (detail === 'high') {
    const canvas = resizeAndPad(image, l.canvas[0], l.canvas[1]); // black letterbox
    for (let r = 0; r < l.grid[1]; r++) for (let c = 0; c < l.grid[0]; c++) chws.push(normalize(cropRegion(canvas, { x: c * S, y: r * S, w: S, h: S })));
  }
  const px = new Float32Array(chws.length * 3 * S * S);
  chws.forEach((d, i) => px.set(d, i * d.length));
  return {
    size: [image.width, image.height], detail, views: l.views, positions: l.positions,
    pixels: { clip: fromData(px, [chws.length, 3, S, S]) },
    meta: { grid: l.grid, keepRows: l.keepRows, keepCols: l.keepCols },
  };
}

/** Tile features [n, G², D] -> the unpadded grid with a newline column, [rows'·(cols'+1), D]. */
export function spatialUnpad(tiles: Tensor, grid: [number, number], side: number, keepRows: [number, number], keepCols: [number, number], newline: Tensor): Tensor {
  const [cols, rows] = grid, D = tiles.shape[2]!;
  let g = F.reshape(tiles, [rows, cols, side, side, D]);
  g = F.reshape(F.permute(g, [0, 2, 1, 3, 4]), [rows * side, cols * side, D]); // [rows·G, cols·G, D]
  g = F.slice(F.slice(g, 0, keepRows[0], keepRows[1]), 1, keepCols[0], keepCols[1]); // [h', w', D]
  const h = keepRows[1] - keepRows[0];
  const nl = F.expand(F.reshape(newline, [1, 1, D]), [h, 1, D]);
  const out = F.concat([g, nl], 1); // [h', w'+1, D]
  return F.reshape(out, [h * (keepCols[1] - keepCols[0] + 1), D]);
}

function encode(cfg: LlavaNextConfig, params: LlavaNextParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize;
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, S, S]
  const feats = runFrozen(params.vision_tower, () => llavaFeatures(cfg.base, params.vision_tower, px)); // [V, G², Dv]
  const out = mlpProjector({ type: cfg.base.projectorType, inDim: cfg.base.vision.cfg.hiddenSize, outDim: D }, params.mm_projector, feats); // [V, G², D]
  const res: Tensor[] = [];
  let v = 0;
  for (const im of images) {
    const n = im.views.length;
    const base = F.squeeze(F.slice(out, 0, v, v + 1), 0); // [G², D]
    if (n === 1) res.push(F.concat([base, F.reshape(params.image_newline, [1, D])], 0)); // [G²+1, D]
    else {
      const m = im.meta as { grid: [number, number]; keepRows: [number, number]; keepCols: [number, number] };
      res.push(F.concat([base, spatialUnpad(F.slice(out, 0, v + 1, v + n), m.grid, cfg.side, m.keepRows, m.keepCols, params.image_newline)], 0));
    }
    if (res[res.length - 1]!.shape[0] !== im.positions) throw new Error(`llava-next: encoded ${res[res.length - 1]!.shape[0]} positions, planned ${im.positions}`);
    v += n;
  }
  return res;
}

export const system: VlmSystem<LlavaNextConfig, LlavaNextParams> = { name: 'llava-next', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    name: 'llava-next', system: 'llava-next',
    // SPEC §4.1: liuhaotian/llava-v1.6-vicuna-7b — CLIP ViT-L/14-336, layer −2, mlp2x_gelu, anyres pinpoints, Vicuna-7B.
    real: () => ({
      system: 'llava-next',
      vision_config: {
        vision_tower: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 336, patch: 14 }),
        mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, mm_vision_select_feature: 'patch',
        image_grid_pinpoints: LLAVA_NEXT_PINPOINTS.map(([w, h]) => [w, h]),
      },
      text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 4096 }),
    }),
    // 56-px tiles (4×4 patches of 14) and the same pinpoints scaled by 56/336.
    tiny: () => ({
      system: 'llava-next',
      vision_config: {
        vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14 }),
        mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, mm_vision_select_feature: 'patch',
        image_grid_pinpoints: LLAVA_NEXT_PINPOINTS.map(([w, h]) => [w / 6, h / 6]),
      },
      text_config: tinyLlama(),
    }),
  },
];
