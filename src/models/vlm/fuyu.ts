// Fuyu-8B / OtterHD (SPEC §13): no vision encoder. The image (scaled down to fit 1080×1920 h×w,
// aspect kept) is padded at the bottom and right with 1.0 to whole 30-px patches, normalised
// (x − 0.5) / 0.5, cut into patches flattened in (patch_h, patch_w, channel) order, and one Linear
// (`vision_embed_tokens`, 2700 → D) maps each patch straight into the decoder. The input embedding
// of the |NEWLINE| token ends every patch row: image tokens = rows · (cols + 1). Any resolution is
// accepted (OtterHD); detail is ignored.
// The published decoder is Persimmon-8B; the real preset uses a LLaMA-shaped decoder with its dims.
// Chat template: Fuyu has none of its own in SPEC; vicuna_v1 is used.
//
// Keys: vision_embed_tokens.{weight [D, p·p·3], bias [D]} (HF FuyuForCausalLM).
// Dims: R patch rows, C patch columns, p patch side, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initLinear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { cropRegion, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { fuyuGrid, fuyuViews, type ViewGeom } from '../../vision/views.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { tokenEmbeds } from './llava-uhd.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { llamaConfig, tinyLlama } from './towers.ts';

export interface FuyuConfig {
  patch: number;
  newlineId: number;
}

export interface FuyuParams {
  vision_embed_tokens: Linear; // [D, p·p·3]
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): FuyuConfig {
  const patch = r.int('patch_size', 30);
  const newlineId = r.int('newline_token_id', undefined, 0);
  if (newlineId >= llm.vocabSize) throw new Error(`${r.source}: 'newline_token_id' ${newlineId} is outside the vocabulary (text_config.vocab_size ${llm.vocabSize})`);
  return { patch, newlineId };
}

function info(): SystemInfo {
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    // OtterHD (SPEC §13.2): full fine-tune from Fuyu-8B. 'projector' trains the patch Linear alone.
    stages: { projector: ['vision_embed_tokens'], finetune: ['vision_embed_tokens', 'language_model'] },
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

function init(cfg: FuyuConfig, llm: LlamaConfig, rng: Rng | null): FuyuParams {
  const inF = cfg.patch * cfg.patch * 3;
  return { vision_embed_tokens: rng ? initLinear(inF, llm.hiddenSize, rng) : zeroLinear(inF, llm.hiddenSize) };
}

function plan(cfg: FuyuConfig, W: number, H: number, _detail: Detail): { views: ViewGeom[]; positions: number } {
  const g = fuyuGrid(W, H, cfg.patch);
  return { views: fuyuViews(W, H, cfg.patch), positions: g.rows * (g.cols + 1) };
}

function prepare(cfg: FuyuConfig, image: RgbImage, detail: Detail): PreparedImage {
  const p = cfg.patch, g = fuyuGrid(image.width, image.height, p);
  const scaled = g.w === image.width && g.h === image.height ? image : resizeBicubic(image, g.w, g.h);
  const padded = cropRegion(scaled, { x: 0, y: 0, w: g.cols * p, h: g.rows * p }, [1, 1, 1]); // bottom/right padding with 1.0
  const pl = plan(cfg, image.width, image.height, detail);
  return {
    size: [image.width, image.height], detail, views: pl.views, positions: pl.positions,
    pixels: { image: fromData(normalize(padded, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), [3, g.rows * p, g.cols * p]) },
    meta: { rows: g.rows, cols: g.cols },
  };
}

/** x [3, R·p, C·p] -> patches [R·C, p·p·3] in (patch_h, patch_w, channel) order, rows outer. */
export function fuyuPatches(x: Tensor, p: number): Tensor {
  const [, Hp, Wp] = x.shape as [number, number, number];
  const R = Hp / p, C = Wp / p;
  const t = F.permute(F.reshape(x, [3, R, p, C, p]), [1, 3, 2, 4, 0]); // [R, C, p, p, 3]
  return F.reshape(F.contiguous(t), [R * C, p * p * 3]);
}

function encode(cfg: FuyuConfig, params: FuyuParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize;
  const nl = tokenEmbeds(ctx.lm, ctx.llm, [cfg.newlineId]); // [1, D]
  return images.map((im) => {
    const { rows, cols } = im.meta as { rows: number; cols: number };
    const e = F.linear(fuyuPatches(im.pixels.image!, cfg.patch), params.vision_embed_tokens.weight, params.vision_embed_tokens.bias); // [R·C, D]
    const grid = F.concat([F.reshape(e, [rows, cols, D]), F.expand(F.reshape(nl, [1, 1, D]), [rows, 1, D])], 1); // [R, C+1, D]
    return F.reshape(grid, [rows * (cols + 1), D]);
  });
}

export const system: VlmSystem<FuyuConfig, FuyuParams> = { name: 'fuyu', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    name: 'fuyu', system: 'fuyu',
    // SPEC §13.1: 30-px patches, Linear 2700 → D. Persimmon-8B dims (not in SPEC: D 4096, 36 layers, 64 heads, FFN 16384,
    // vocab 262144) in a LLaMA-shaped decoder; |NEWLINE| = 71019 in Fuyu's tokenizer (not in SPEC).
    real: () => ({
      system: 'fuyu',
      vision_config: { patch_size: 30, newline_token_id: 71019 },
      text_config: llamaConfig({ dim: 4096, layers: 36, heads: 64, ffn: 16384, vocab: 262144, maxPos: 16384, theta: 25000 }),
    }),
    // 16-px patches; '\n' = 15 in the tiny tokenizer stands in for |NEWLINE|.
    tiny: () => ({ system: 'fuyu', vision_config: { patch_size: 16, newline_token_id: 15 }, text_config: tinyLlama() }),
  },
];
