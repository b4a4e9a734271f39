// LLaMA-VID (SPEC §12): per frame a context token and content token(s).
//   V = the ViT's patch tokens (CLS dropped), [N, Dv]
//   text_q = vlm_att_projector(Q-Former(queries ; instruction | vlm_att_ln(ViT tokens)))   [Qn, Dv]
//   ctx = vlm_att_val_projector(mean_q softmax(text_q · key_proj(V)ᵀ / sqrt(Dv)) · V)      [1, D]
//   content = mm_projector(compress(V)): 'mean' -> 1 token, 'grid:k' -> k×k average pooling, 'none' -> all N
// A frame gives [ctx ; content]. A video is one PreparedImage whose views are its frames
// (prepareFrames), compressed with `video_compress` ('mean': 2 tokens per frame); a single image
// uses `image_compress` ('none' by default: 1 + N tokens; SPEC does not fix the image setting).
// Keys follow LLaMA-VID's names: vision_tower.* (CLIP-layout stand-in for EVA-G), vlm_att_query,
// vlm_att_encoder.* (Q-Former + embeddings for the instruction), vlm_att_ln, vlm_att_projector,
// vlm_att_key_projector, vlm_att_val_projector, mm_projector.
//
// Dims: F frames, N = G² patches, Dv ViT width, Dq Q-Former width, Qn queries, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initMlpProjector, mlpProjector, projectorDepth, type MlpProjectorParams } from '../../bridges/mlp-projector.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { normalOrZero, layerNormParams, type LayerNormParams } from '../../nn/vit.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as qf from '../blip2-qformer.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { EVA_G, instructionIds, prepareSquare, qformerTrainGlobs, qformerWithText, TINY_EVA } from './blip2.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { llamaConfig, parseClipTower, tinyLlama, vitGrid, type ClipTower } from './towers.ts';

export type Compress = { kind: 'none' } | { kind: 'mean' } | { kind: 'grid'; k: number };

export interface LlamaVidConfig {
  vision: ClipTower;
  grid: number; // G
  qformer: qf.Blip2QFormerConfig;
  numQueries: number;
  maxInstruction: number;
  textVocab: number;
  textPositions: number;
  projectorType: string;
  imageCompress: Compress;
  videoCompress: Compress;
}

export interface LlamaVidParams {
  vision_tower: clip.ClipVisionParams;
  vlm_att_query: Tensor; // [1, Qn, Dq]
  vlm_att_encoder: qf.Blip2QFormerParams & { embeddings: qf.QFormerTextEmbeddings };
  vlm_att_ln: LayerNormParams; // [Dv]
  vlm_att_projector: Linear; // [Dv, Dq]
  vlm_att_key_projector: Linear; // [Dv, Dv]
  vlm_att_val_projector: Linear; // [D, Dv]
  mm_projector: MlpProjectorParams; // Dv -> D
}

export function parseCompress(s: string, where: string): Compress {
  if (s === 'none' || s === 'mean') return { kind: s };
  const m = /^grid:(\d+)$/.exec(s);
  if (m && Number(m[1]) >= 1) return { kind: 'grid', k: Number(m[1]) };
  throw new Error(`${where}: compress type ${JSON.stringify(s)} is not one of "none", "mean", "grid:k"`);
}

function contentTokens(c: Compress, G: number): number {
  return c.kind === 'none' ? G * G : c.kind === 'mean' ? 1 : c.k * c.k;
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): LlamaVidConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const grid = vitGrid(vision.cfg.patchSize, vision.cfg.imageSize, `${r.source}:vision_tower`);
  const qsrc = `${r.source}:qformer_config`;
  r.sub('qformer_config');
  const qformer = qf.parseConfig({ encoder_hidden_size: vision.cfg.hiddenSize, use_qformer_text_input: true, ...(r.raw('qformer_config') as Record<string, unknown>) }, qsrc);
  if (qformer.encoderHiddenSize !== vision.cfg.hiddenSize) throw new Error(`${qsrc}: encoder_hidden_size ${qformer.encoderHiddenSize} must equal vision_tower.hidden_size ${vision.cfg.hiddenSize}`);
  if (!qformer.useQformerTextInput) throw new Error(`${qsrc}: use_qformer_text_input must be true (the instruction enters the Q-Former)`);
  const projectorType = r.str('mm_projector_type', 'mlp2x_gelu');
  projectorDepth(projectorType);
  const imageCompress = parseCompress(r.str('image_compress', 'none'), `${r.source}:image_compress`);
  const videoCompress = parseCompress(r.str('video_compress', 'mean'), `${r.source}:video_compress`);
  for (const c of [imageCompress, videoCompress]) if (c.kind === 'grid' && grid % c.k !== 0) throw new Error(`${r.source}: grid:${c.k} does not divide the ${grid}x${grid} patch grid`);
  const textPositions = r.int('qformer_max_position_embeddings', 512);
  return {
    vision, grid, qformer, numQueries: r.int('num_query_tokens', 32), maxInstruction: r.int('max_instruction_length', 256, 1, textPositions),
    textVocab: r.int('qformer_vocab_size', llm.vocabSize), textPositions, projectorType, imageCompress, videoCompress,
  };
}

const PROJ = ['mm_projector', 'vlm_att_projector', 'vlm_att_key_projector', 'vlm_att_val_projector'];

function info(cfg: LlamaVidConfig): SystemInfo {
  const qformer = ['vlm_att_query', 'vlm_att_ln', ...qformerTrainGlobs('vlm_att_encoder', cfg.qformer, true)];
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: {
      s1: PROJ, // projectors; Q-Former frozen (qformer_pretrain_freeze)
      s2: [...PROJ, ...qformer, 'language_model'], // + Q-Former + LLM
      s3: [...PROJ, ...qformer, 'language_model'], // long-video tuning: same parameters (README)
    },
    maxImages: 8,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

function init(cfg: LlamaVidConfig, llm: LlamaConfig, rng: Rng | null): LlamaVidParams {
  const Dv = cfg.vision.cfg.hiddenSize, Dq = cfg.qformer.hiddenSize, D = llm.hiddenSize;
  const lin = (i: number, o: number): Linear => (rng ? initLinear(i, o, rng) : zeroLinear(i, o));
  return {
    vision_tower: clip.init(cfg.vision.cfg, rng),
    vlm_att_query: normalOrZero([1, cfg.numQueries, Dq], cfg.qformer.initializerRange, rng),
    vlm_att_encoder: { ...qf.init(cfg.qformer, rng), embeddings: qf.initTextEmbeddings(cfg.qformer, cfg.textVocab, cfg.textPositions, rng) },
    vlm_att_ln: layerNormParams(Dv, rng),
    vlm_att_projector: lin(Dq, Dv),
    vlm_att_key_projector: lin(Dv, Dv),
    vlm_att_val_projector: lin(Dv, D),
    mm_projector: initMlpProjector({ type: cfg.projectorType, inDim: Dv, outDim: D }, rng),
  };
}

function plan(cfg: LlamaVidConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: 1 + contentTokens(cfg.imageCompress, cfg.grid) };
}

function prepare(cfg: LlamaVidConfig, image: RgbImage, detail: Detail): PreparedImage {
  return prepareSquare(image, cfg.vision.cfg.imageSize, detail, plan(cfg, image.width, image.height).positions);
}

/** Positions a video of `frames` frames takes: frames × (1 + content tokens of video_compress). */
export function planFrames(cfg: LlamaVidConfig, frames: number): number {
  return frames * (1 + contentTokens(cfg.videoCompress, cfg.grid));
}

/** A video as one PreparedImage: one view per frame (each resized to the ViT input), pixels [F, 3, S, S]. */
export function prepareFrames(cfg: LlamaVidConfig, frames: readonly RgbImage[], detail: Detail = 'high'): PreparedImage {
  if (frames.length === 0) throw new Error('llama-vid: a video needs at least one frame');
  const S = cfg.vision.cfg.imageSize;
  const data = new Float32Array(frames.length * 3 * S * S);
  frames.forEach((f, i) => data.set(normalize(resizeBicubic(f, S, S), CLIP_MEAN, CLIP_STD), i * 3 * S * S));
  const f0 = frames[0]!;
  const views = frames.flatMap((f, i) => singleResize(f.width, f.height, S, `frame${i}`));
  return { size: [f0.width, f0.height], detail, views, positions: planFrames(cfg, frames.length), pixels: { vit: fromData(data, [frames.length, 3, S, S]) }, meta: { video: true } };
}

/** compress(V) [F, N, Dv] -> [F, n, Dv]. */
function compress(c: Compress, v: Tensor, G: number): Tensor {
  if (c.kind === 'none') return v;
  if (c.kind === 'mean') return F.mean(v, 1, true);
  const [Fr, N, Dv] = v.shape as [number, number, number];
  void N;
  const map = F.reshape(F.transpose(v, 1, 2), [Fr, Dv, G, G]);
  const s = G / c.k;
  const pooled = F.avgPool2d(map, [s, s], { stride: [s, s] }); // [F, Dv, k, k]
  return F.transpose(F.reshape(pooled, [Fr, Dv, c.k * c.k]), 1, 2);
}

/** One image or video -> [F · (1 + n), D]. */
function encodeOne(cfg: LlamaVidConfig, params: LlamaVidParams, im: PreparedImage, D: number): Tensor {
  const px = im.pixels.vit;
  if (px === undefined) throw new Error('llama-vid: image has no \'vit\' pixels (prepared by another system?)');
  const video = im.meta?.video === true;
  const tower = params.vision_tower;
  const v = runFrozen(tower, () => F.slice(clip.forwardClipVision(tower, cfg.vision.cfg, px).lastHiddenState, 1, 1)); // [F, N, Dv]
  const [Fr, , Dv] = v.shape as [number, number, number];
  const enc = params.vlm_att_encoder;
  const qOut = runFrozen({ q: params.vlm_att_query, e: enc, l: params.vlm_att_ln }, () => {
    const kv = F.layerNorm(v, params.vlm_att_ln.weight, params.vlm_att_ln.bias, 1e-5); // vlm_att_ln on the ViT tokens
    return qformerWithText(enc, cfg.qformer, params.vlm_att_query, enc.embeddings, kv, instructionIds(im, cfg.maxInstruction)); // [F, Qn, Dq]
  });
  const textQ = linear(params.vlm_att_projector, qOut); // [F, Qn, Dv]
  const keys = linear(params.vlm_att_key_projector, v); // [F, N, Dv]
  const att = F.softmax(F.div(F.matmul(textQ, F.transpose(keys, 1, 2)), Math.sqrt(Dv)), -1); // [F, Qn, N]
  const ctx = linear(params.vlm_att_val_projector, F.mean(F.matmul(att, v), 1, true)); // [F, 1, D]
  const content = mlpProjector({ type: cfg.projectorType, inDim: Dv, outDim: D }, params.mm_projector, compress(video ? cfg.videoCompress : cfg.imageCompress, v, cfg.grid)); // [F, n, D]
  const tokens = F.concat([ctx, content], 1); // [F, 1 + n, D]
  return F.reshape(tokens, [Fr * tokens.shape[1]!, D]);
}

function encode(cfg: LlamaVidConfig, params: LlamaVidParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  return images.map((im) => encodeOne(cfg, params, im, ctx.llm.hiddenSize));
}

export const system: VlmSystem<LlamaVidConfig, LlamaVidParams> = { name: 'llama-vid', parseConfig, info, init, plan, prepare, encode };

// ---- presets -------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    // EVA ViT-g/14 at 336 (576 patches), the InstructBLIP Q-Former (32 queries, BERT-base), Vicuna-7B;
    // image: content = all patches (577 positions), video: 'mean' (2 per frame) (SPEC §12.1).
    name: 'llama-vid', system: 'llama-vid',
    real: () => ({ system: 'llama-vid', vision_config: {
      vision_tower: EVA_G(336), qformer_config: { model_type: 'blip_2_qformer', hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, cross_attention_frequency: 2 },
      num_query_tokens: 32, max_instruction_length: 256, image_compress: 'none', video_compress: 'mean', mm_projector_type: 'mlp2x_gelu' },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 4096 }) }),
    tiny: () => ({ system: 'llama-vid', vision_config: {
      vision_tower: TINY_EVA(56), qformer_config: { model_type: 'blip_2_qformer', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, cross_attention_frequency: 2 },
      num_query_tokens: 4, max_instruction_length: 16, qformer_max_position_embeddings: 32, image_compress: 'none', video_compress: 'mean', mm_projector_type: 'mlp2x_gelu' },
    text_config: tinyLlama() }),
  },
];
