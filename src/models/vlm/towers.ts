// Visual towers as systems use them: typed wrappers over the encoder families with the feature
// read-outs the bridges need, plus config builders at real and tiny size. Every config here is the
// family's own Hugging Face config.json shape, so a tower's subtree loads from HF weights
// (after the system's key prefix).

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import * as blip2 from '../blip2-qformer.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import * as convnext from '../convnext.ts';
import * as dinov2 from '../dinov2.ts';
import { CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD } from '../../vision/preprocess.ts';
import { normalInit } from '../../nn/init.ts';

export type ClipTower = { cfg: clip.ClipVisionConfig; json: Record<string, unknown> };
export type DinoTower = { cfg: dinov2.Dinov2Config; json: Record<string, unknown> };
export type ConvNextTower = { cfg: convnext.ConvNextConfig; json: Record<string, unknown> };
/** BLIP-2's image path: a ViT (EVA ViT-g in the published model; HF CLIP-style layout here), learned queries and the Q-Former. */
export type QFormerTower = { vision: ClipTower; qformer: blip2.Blip2QFormerConfig; qformerJson: Record<string, unknown>; numQueryTokens: number };

export interface QFormerTowerParams {
  vision_model: clip.ClipVisionParams['vision_model'];
  query_tokens: Tensor; // [1, Q, Dq]
  qformer: blip2.Blip2QFormerParams;
}

function objectOf(r: ConfigReader, key: string): Record<string, unknown> {
  r.sub(key);
  return r.raw(key) as Record<string, unknown>;
}

export function parseClipTower(r: ConfigReader, key: string): ClipTower {
  const json = objectOf(r, key);
  return { cfg: clip.parseConfig(json, `${r.source}:${key}`), json };
}
export function parseDinoTower(r: ConfigReader, key: string): DinoTower {
  const json = objectOf(r, key);
  return { cfg: dinov2.parseConfig(json, `${r.source}:${key}`), json };
}
export function parseConvNextTower(r: ConfigReader, key: string): ConvNextTower {
  const json = objectOf(r, key);
  return { cfg: convnext.parseConfig(json, `${r.source}:${key}`), json };
}
export function parseQFormerTower(r: ConfigReader, key: string): QFormerTower {
  const sub = r.sub(key);
  const vision = parseClipTower(sub, 'vision_config');
  const qformerJson = objectOf(sub, 'qformer_config');
  const qformer = blip2.parseConfig({ encoder_hidden_size: vision.cfg.hiddenSize, ...qformerJson }, `${sub.source}:qformer_config`);
  if (qformer.encoderHiddenSize !== vision.cfg.hiddenSize) {
    throw new Error(`${sub.source}: qformer_config.encoder_hidden_size ${qformer.encoderHiddenSize} must equal vision_config.hidden_size ${vision.cfg.hiddenSize}`);
  }
  return { vision, qformer, qformerJson, numQueryTokens: sub.int('num_query_tokens', 32) };
}

export function initQFormerTower(t: QFormerTower, rng: Rng | null): QFormerTowerParams {
  const D = t.qformer.hiddenSize;
  return {
    vision_model: clip.init(t.vision.cfg, rng).vision_model,
    query_tokens: rng ? normalInit([1, t.numQueryTokens, D], t.qformer.initializerRange, rng) : F.zeros([1, t.numQueryTokens, D]),
    qformer: blip2.init(t.qformer, rng),
  };
}

/** Patch grid side of a ViT at input `size`. */
export function vitGrid(patch: number, size: number, what: string): number {
  if (size % patch !== 0) throw new Error(`${what}: input size ${size} is not a multiple of the patch size ${patch}`);
  return size / patch;
}

/** ConvNeXt total stride (patch size × 2 per downsampling stage). */
export function convNextStride(cfg: convnext.ConvNextConfig): number {
  return cfg.patchSize * 2 ** (cfg.hiddenSizes.length - 1);
}

/** HF Blip2Model.get_qformer_features: ViT last hidden state (with post_layernorm) -> Q-Former on the learned queries: [B, Q, Dq]. */
export function qformerFeatures(t: QFormerTower, p: QFormerTowerParams, pixels: Tensor, opts: blip2.QFormerOptions & { text?: Tensor } = {}): Tensor {
  const vis = clip.forwardClipVision({ vision_model: p.vision_model }, t.vision.cfg, pixels);
  const img = clip.postLayerNorm({ vision_model: p.vision_model }, t.vision.cfg, vis.lastHiddenState); // [B, S, E]
  const B = pixels.shape[0]!;
  let q = F.expand(p.query_tokens, [B, t.numQueryTokens, t.qformer.hiddenSize]);
  if (opts.text !== undefined) q = F.concat([q, opts.text], 1); // InstructBLIP: instruction embeddings after the queries
  const out = blip2.forwardQFormer(p.qformer, t.qformer, q, img, { ...opts, queryLength: t.numQueryTokens });
  return opts.text !== undefined ? F.slice(out.lastHiddenState, 1, 0, t.numQueryTokens) : out.lastHiddenState;
}

/** CLIP-normalised pixels re-normalised to ImageNet statistics (SPEC §1.4 E3): [B, 3, H, W]. */
export function clipToImagenet(x: Tensor): Tensor {
  const scale = new Float32Array(3), shift = new Float32Array(3);
  for (let c = 0; c < 3; c++) {
    scale[c] = CLIP_STD[c]! / IMAGENET_STD[c]!;
    shift[c] = (CLIP_MEAN[c]! - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
  }
  return F.add(F.mul(x, fromData(scale, [1, 3, 1, 1])), fromData(shift, [1, 3, 1, 1]));
}

// ---- config builders (HF config.json shapes) ------------------------------------------------------

export function clipConfig(o: { hidden: number; layers: number; heads: number; ffn: number; image: number; patch: number; act?: string }): Record<string, unknown> {
  return { model_type: 'clip_vision_model', hidden_size: o.hidden, num_hidden_layers: o.layers, num_attention_heads: o.heads, intermediate_size: o.ffn,
    image_size: o.image, patch_size: o.patch, hidden_act: o.act ?? 'quick_gelu', layer_norm_eps: 1e-5 };
}
export function dinoConfig(o: { hidden: number; layers: number; heads: number; image: number; patch: number; swiglu?: boolean; mlpRatio?: number }): Record<string, unknown> {
  return { model_type: 'dinov2', hidden_size: o.hidden, num_hidden_layers: o.layers, num_attention_heads: o.heads, image_size: o.image, patch_size: o.patch,
    mlp_ratio: o.mlpRatio ?? 4, use_swiglu_ffn: o.swiglu ?? false, layer_norm_eps: 1e-6 };
}
export function convnextConfig(o: { dims: number[]; depths: number[]; image: number }): Record<string, unknown> {
  return { model_type: 'convnext', hidden_sizes: o.dims, depths: o.depths, num_stages: o.dims.length, patch_size: 4, image_size: o.image, layer_scale_init_value: 1e-6 };
}
export function qformerConfig(o: { vision: Record<string, unknown>; hidden: number; layers: number; heads: number; ffn: number; queries: number }): Record<string, unknown> {
  return { vision_config: o.vision, num_query_tokens: o.queries,
    qformer_config: { model_type: 'blip_2_qformer', hidden_size: o.hidden, num_hidden_layers: o.layers, num_attention_heads: o.heads, intermediate_size: o.ffn, cross_attention_frequency: 2 } };
}

/** LLaMA config.json for the language model. */
export function llamaConfig(o: { dim: number; layers: number; heads: number; kvHeads?: number; ffn: number; vocab: number; maxPos?: number; theta?: number }): Record<string, unknown> {
  return { model_type: 'llama', hidden_size: o.dim, num_hidden_layers: o.layers, num_attention_heads: o.heads, num_key_value_heads: o.kvHeads ?? o.heads,
    intermediate_size: o.ffn, vocab_size: o.vocab, max_position_embeddings: o.maxPos ?? 4096, rms_norm_eps: 1e-5, rope_theta: o.theta ?? 10000,
    bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, tie_word_embeddings: false };
}

/** The LLM of every tiny preset: small enough to train on 2 cores, with the tiny tokenizer's vocabulary. */
export const TINY_VOCAB = 512;
export function tinyLlama(o: { dim?: number; layers?: number; maxPos?: number } = {}): Record<string, unknown> {
  const dim = o.dim ?? 64;
  return llamaConfig({ dim, layers: o.layers ?? 2, heads: 4, kvHeads: 2, ffn: dim * 3, vocab: TINY_VOCAB, maxPos: o.maxPos ?? 2048 });
}
