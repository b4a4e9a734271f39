// Qwen-VL (SPEC §9): ViT-bigG/14 at 448 (Chimera's CLIP-layout ViT stands in; its CLS token is
// dropped, Qwen's ViT has none) -> the one-layer resampler with 256 learned queries and fixed 2D
// sin-cos positions on queries and keys (src/bridges/resampler.ts) -> ln_post, @proj -> 256 tokens of
// width D, whatever the input size (the key table is resized to the patch grid). In the prompt an
// image is `Picture k: <img>` + its 256 positions + `</img>\n`; boxes are
// `<ref>phrase</ref><box>(x1,y1),(x2,y2)</box>` with coordinates in [0, 1000).
// Keys follow Qwen-VL's transformer.visual.*: visual.vision_model.* (the ViT stand-in),
// visual.attn_pool.*, visual.ln_post, visual.proj.
//
// Dims: V images, G² patch tokens, Dv ViT width, Q = g² queries, D LLM width (= resampler width).

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { initResampler, resampler, type ResamplerConfig, type ResamplerParams } from '../../bridges/resampler.ts';
import type { RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { prepareSquare, splitRows, stackPixels } from './blip2.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, templateFor, type Turn } from './templates.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, vitGrid, type ClipTower } from './towers.ts';

export interface QwenVlConfig {
  vision: ClipTower;
  grid: number; // ViT patch grid side at the input size
  resampler: ResamplerConfig;
}

export interface QwenVlParams {
  visual: ResamplerParams & { vision_model: clip.ClipVisionParams['vision_model'] };
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): QwenVlConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const grid = vitGrid(vision.cfg.patchSize, vision.cfg.imageSize, `${r.source}:vision_tower`);
  const D = llm.hiddenSize;
  const n = r.int('n_queries', 256);
  const g = Math.round(Math.sqrt(n));
  if (g * g !== n) throw new Error(`${r.source}: n_queries ${n} is not a square (the queries form a 2D grid)`);
  const heads = r.int('resampler_heads', Math.max(1, Math.floor(D / 128)));
  if (D % heads !== 0) throw new Error(`${r.source}: resampler_heads ${heads} does not divide the LLM width ${D}`);
  return { vision, grid, resampler: { gridSize: g, embedDim: D, kvDim: vision.cfg.hiddenSize, heads, positions: true, postProj: true, eps: 1e-6 } };
}

const POOL = ['query', 'kv_proj', 'attn', 'ln_q', 'ln_kv'].map((k) => `visual.attn_pool.${k}`); // pos_embed is fixed
// The stand-in's post_layernorm is unused (Qwen's ViT has none before attn_pool) and never trains.
const VIT = ['embeddings', 'pre_layrnorm', 'encoder'].map((k) => `visual.vision_model.${k}`);
const VISUAL = [...VIT, ...POOL, 'visual.ln_post', 'visual.proj'];

function info(): SystemInfo {
  return {
    template: 'qwen_vl',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: {
      pretrain: VISUAL, // S1 (paper, unverified): ViT + adapter, LLM frozen
      multitask: [...VISUAL, 'language_model'], // S2 (paper, unverified): everything
      sft: [...POOL, 'language_model'], // S3 / finetune.py fix_vit: the visual module frozen except attn_pool
    },
    maxImages: 8,
    stopStrings: ['<|im_end|>'],
    sampling: { temperature: 1, topP: 0.8 },
  };
}

function init(cfg: QwenVlConfig, llm: LlamaConfig, rng: Rng | null): QwenVlParams {
  void llm;
  return { visual: { vision_model: clip.init(cfg.vision.cfg, rng).vision_model, ...initResampler(cfg.resampler, rng) } };
}

function plan(cfg: QwenVlConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: cfg.resampler.gridSize ** 2 };
}

function prepare(cfg: QwenVlConfig, image: RgbImage, detail: Detail): PreparedImage {
  return prepareSquare(image, cfg.vision.cfg.imageSize, detail, cfg.resampler.gridSize ** 2);
}

function encode(cfg: QwenVlConfig, params: QwenVlParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  void ctx;
  const vm = { vision_model: params.visual.vision_model };
  const patches = runFrozen(vm, () => F.slice(clip.forwardClipVision(vm, cfg.vision.cfg, stackPixels(images)).lastHiddenState, 1, 1)); // [V, G², Dv]
  const out = resampler(cfg.resampler, params.visual, patches, { grid: [cfg.grid, cfg.grid] }); // [V, Q, D]
  return splitRows(out, images.length);
}

export const system: VlmSystem<QwenVlConfig, QwenVlParams> = { name: 'qwen-vl', parseConfig, info, init, plan, prepare, encode };

// ---- text interface (SPEC §9.2) ------------------------------------------------------------------

/** ChatML with each image written `Picture k: <img>` [image] `</img>\n` (k counts images from 1 in the conversation). */
registerTemplate({
  name: 'qwen_vl',
  stopStrings: ['<|im_end|>'],
  render(turns, generation) {
    let k = 0;
    const wrapped: Turn[] = turns.map((t) => ({
      role: t.role,
      parts: t.parts.flatMap((p) => ('image' in p ? [{ text: `Picture ${++k}: <img>` }, p, { text: '</img>\n' }] : [p])),
    }));
    return templateFor('chatml').render(wrapped, generation);
  },
});

/** A box in pixels of a W x H image. */
export interface PixelBox { x1: number; y1: number; x2: number; y2: number }

/** Pixel coordinate -> Qwen's [0, 1000) grid: floor(v / size * 1000), clamped to [0, 999]. */
export function toQwenCoord(v: number, size: number): number {
  if (!(size > 0)) throw new Error(`qwen box: image side must be positive, got ${size}`);
  if (!Number.isFinite(v)) throw new Error(`qwen box: coordinate ${v} is not finite`);
  return Math.min(999, Math.max(0, Math.floor((v / size) * 1000)));
}

/** `<ref>phrase</ref><box>(x1,y1),(x2,y2)</box>` (the ref part omitted when phrase is undefined), coordinates normalised to [0, 1000). */
export function formatQwenBox(box: PixelBox, W: number, H: number, phrase?: string): string {
  if (box.x2 < box.x1 || box.y2 < box.y1) throw new Error(`qwen box: (${box.x1},${box.y1}),(${box.x2},${box.y2}) has x2 < x1 or y2 < y1`);
  const c = [toQwenCoord(box.x1, W), toQwenCoord(box.y1, H), toQwenCoord(box.x2, W), toQwenCoord(box.y2, H)];
  if (phrase !== undefined && /<\/?(ref|box)>/.test(phrase)) throw new Error(`qwen box: phrase ${JSON.stringify(phrase)} contains <ref>/<box> markup`);
  return `${phrase !== undefined ? `<ref>${phrase}</ref>` : ''}<box>(${c[0]},${c[1]}),(${c[2]},${c[3]})</box>`;
}

export interface QwenBox {
  /** The phrase of the `<ref>` right before the box, if any. */
  ref: string | null;
  /** [x1, y1, x2, y2] in [0, 1000). */
  box: [number, number, number, number];
  /** Character offset of the `<box>` in the text. */
  index: number;
}

const BOX_RE = /(?:<ref>([^<]*)<\/ref>)?<box>\((\d+),(\d+)\),\((\d+),(\d+)\)<\/box>/g;

/** Every well-formed box in a text (text that is not box syntax is skipped); a coordinate >= 1000 is an error. */
export function parseQwenBoxes(text: string): QwenBox[] {
  const out: QwenBox[] = [];
  for (const m of text.matchAll(BOX_RE)) {
    const box = [m[2], m[3], m[4], m[5]].map((s) => Number(s)) as [number, number, number, number];
    if (box.some((v) => v >= 1000)) throw new Error(`qwen box at offset ${m.index}: ${m[0]} has a coordinate outside [0, 1000)`);
    out.push({ ref: m[1] ?? null, box, index: m.index! + (m[1] !== undefined ? m[0].indexOf('<box>') : 0) });
  }
  return out;
}

/** [0, 1000) box -> pixels of a W x H image (the lower edge of each grid cell). */
export function qwenBoxToPixels(box: readonly [number, number, number, number], W: number, H: number): PixelBox {
  return { x1: (box[0] / 1000) * W, y1: (box[1] / 1000) * H, x2: (box[2] / 1000) * W, y2: (box[3] / 1000) * H };
}

// ---- presets -------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    // ViT-bigG/14 (1664 wide, 48 layers, ffn 8192 per SPEC §6.2's copy of the module) at 448; resampler 256
    // queries of width 4096, 32 heads (SPEC §9.1). Qwen-7B's dims as a LLaMA-shaped decoder (not in SPEC).
    name: 'qwen-vl', system: 'qwen-vl',
    real: () => ({ system: 'qwen-vl', vision_config: { vision_tower: clipConfig({ hidden: 1664, layers: 48, heads: 16, ffn: 8192, image: 448, patch: 14, act: 'gelu' }), n_queries: 256 },
      text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 151936, maxPos: 8192 }) }),
    // 56 px / 14 = 4×4 keys, 3×3 queries (the key table is resized), 2 heads of 32.
    tiny: () => ({ system: 'qwen-vl', vision_config: { vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14, act: 'gelu' }), n_queries: 9, resampler_heads: 2 },
      text_config: tinyLlama() }),
  },
];
