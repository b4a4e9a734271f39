// LLaVA (linear projector) and LLaVA-1.5 (SPEC §3): a frozen CLIP ViT read at a chosen hidden
// layer (-2 for 1.5), CLS dropped after the layer is taken, an MLP projector, and the image's
// tokens replacing its `<image>` placeholder. Yi-VL shares the design at 448 px.
// Keys: vision_tower.vision_model.* (HF CLIPVisionModel), mm_projector.{0,2} or mm_projector.
//
// Dims: V images, N = G² patch tokens, Dv vision width, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initMlpProjector, mlpProjector, projectorDepth, type MlpProjectorParams } from '../../bridges/mlp-projector.ts';
import { centerCrop, CLIP_MEAN, CLIP_STD, llavaPadPreprocess, normalize, resizeBicubic, resizeShortestEdge, type RgbImage } from '../../vision/preprocess.ts';
import { singlePadded, singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, vitGrid, type ClipTower } from './towers.ts';

export interface LlavaConfig {
  vision: ClipTower;
  /** HF hidden-state index read from the tower (-2: penultimate layer). */
  featureLayer: number;
  /** 'patch' drops CLS after the layer is taken; 'cls_patch' keeps it. */
  selectFeature: 'patch' | 'cls_patch';
  /** 'pad': expand to a mean-filled square first (LLaVA-1.5); 'resize': squash to the square; 'crop': shortest edge then centre crop (HF CLIPImageProcessor). */
  aspect: 'pad' | 'resize' | 'crop';
  projectorType: string;
  tokens: number;
}

export interface LlavaParams {
  vision_tower: clip.ClipVisionParams;
  mm_projector: MlpProjectorParams;
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): LlavaConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const L = vision.cfg.numHiddenLayers;
  const featureLayer = r.int('mm_vision_select_layer', -2, -(L + 1), L);
  const projectorType = r.str('mm_projector_type', 'mlp2x_gelu');
  projectorDepth(projectorType);
  const selectFeature = r.str('mm_vision_select_feature', 'patch', ['patch', 'cls_patch'] as const);
  const G = vitGrid(vision.cfg.patchSize, vision.cfg.imageSize, `${r.source}:vision_tower`);
  void llm;
  return { vision, featureLayer, selectFeature, aspect: r.str('image_aspect_ratio', 'pad', ['pad', 'resize', 'crop'] as const), projectorType, tokens: G * G + (selectFeature === 'cls_patch' ? 1 : 0) };
}

function info(): SystemInfo {
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: { pretrain: ['mm_projector'], finetune: ['mm_projector', 'language_model'] }, // SPEC §3.5
    maxImages: 8,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

function init(cfg: LlavaConfig, llm: LlamaConfig, rng: Rng | null): LlavaParams {
  return {
    vision_tower: clip.init(cfg.vision.cfg, rng),
    mm_projector: initMlpProjector({ type: cfg.projectorType, inDim: cfg.vision.cfg.hiddenSize, outDim: llm.hiddenSize }, rng),
  };
}

function plan(cfg: LlavaConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  const S = cfg.vision.cfg.imageSize;
  if (cfg.aspect === 'crop') {
    const m = Math.min(W, H);
    return { views: [{ name: 'global', size: [S, S], region: { x: Math.floor((W - m) / 2), y: Math.floor((H - m) / 2), w: m, h: m } }], positions: cfg.tokens };
  }
  return { views: cfg.aspect === 'pad' ? singlePadded(W, H, S) : singleResize(W, H, S), positions: cfg.tokens };
}

function prepare(cfg: LlavaConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.vision.cfg.imageSize;
  const chw = cfg.aspect === 'pad' ? llavaPadPreprocess(image, S)
    : cfg.aspect === 'crop' ? normalize(centerCrop(resizeShortestEdge(image, S), S, S), CLIP_MEAN, CLIP_STD)
    : normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD);
  const p = plan(cfg, image.width, image.height);
  return { size: [image.width, image.height], detail, views: p.views, positions: p.positions, pixels: { clip: fromData(chw, [1, 3, S, S]) } };
}

/** Tower features [V, N(+1), Dv] at the configured layer. */
export function llavaFeatures(cfg: LlavaConfig, p: clip.ClipVisionParams, pixels: Tensor): Tensor {
  const h = clip.clipHiddenState(p, cfg.vision.cfg, pixels, cfg.featureLayer); // [V, 1+N, Dv]
  return cfg.selectFeature === 'patch' ? F.slice(h, 1, 1) : h;
}

function encode(cfg: LlavaConfig, params: LlavaParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, S, S]
  const feats = runFrozen(params.vision_tower, () => llavaFeatures(cfg, params.vision_tower, px));
  const out = mlpProjector({ type: cfg.projectorType, inDim: cfg.vision.cfg.hiddenSize, outDim: ctx.llm.hiddenSize }, params.mm_projector, feats); // [V, N, D]
  return images.map((_, i) => F.squeeze(F.slice(out, 0, i, i + 1), 0));
}

export const system: VlmSystem<LlavaConfig, LlavaParams> = { name: 'llava', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

const vicuna7b = (): Record<string, unknown> => llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 4096 });
const tinyVision = (image: number): Record<string, unknown> => clipConfig({ hidden: 32, layers: 3, heads: 2, ffn: 64, image, patch: 14 });

function llavaPreset(name: string, vision: () => Record<string, unknown>, text: () => Record<string, unknown>, extra: Record<string, unknown>, tinyImage: number): PresetDef {
  return {
    name, system: 'llava',
    real: () => ({ system: 'llava', vision_config: { vision_tower: vision(), ...extra }, text_config: text() }),
    tiny: () => ({ system: 'llava', vision_config: { vision_tower: tinyVision(tinyImage), ...extra }, text_config: tinyLlama() }),
  };
}

export const presets: PresetDef[] = [
  // LLaVA v1: CLIP ViT-L/14 at 224, the penultimate layer, one Linear (not in SPEC; LLaVA's v1 scripts).
  llavaPreset('llava', () => clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 224, patch: 14 }), vicuna7b,
    { mm_projector_type: 'linear', mm_vision_select_layer: -2, image_aspect_ratio: 'resize' }, 56),
  llavaPreset('llava-1.5', () => clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 336, patch: 14 }), vicuna7b,
    { mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, image_aspect_ratio: 'pad' }, 84),
  // Yi-VL-6B public config: CLIP ViT-H/14 at 448, LLaVA-style 2-layer MLP, Yi-6B (not in SPEC).
  llavaPreset('yi-vl', () => clipConfig({ hidden: 1280, layers: 32, heads: 16, ffn: 5120, image: 448, patch: 14, act: 'gelu' }),
    () => llamaConfig({ dim: 4096, layers: 32, heads: 32, kvHeads: 4, ffn: 11008, vocab: 64000, maxPos: 4096, theta: 5e6 }),
    { mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, image_aspect_ratio: 'pad' }, 56),
];
