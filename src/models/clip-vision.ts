// CLIP vision tower, Hugging Face CLIPVisionModel (model_type clip_vision_model; a full `clip`
// config is read through its vision_config). Pre-LN ViT: patchify (conv, no bias), prepend the
// class embedding, add learned positions, pre_layrnorm, L encoder layers, then
// pooler_output = post_layernorm(last_hidden_state[:, 0]). last_hidden_state is NOT
// post-normalised (as HF); LLaVA reads hidden_states[-2], SPHINX applies post_layernorm to every token.
//
// Dims: B batch, C channels, H/W input size, p patch, g = image_size / p, N = g*g patches,
// T = N + 1 tokens, D hidden_size, I intermediate_size, Hh heads, L layers.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { tidy, type Tensor } from '../engine/tensor.ts';
import type { Linear } from '../nn/linear.ts';
import {
  ACT_NAMES, activation, checkPixels, layerNormParams, linearWith, mlp, multiHeadAttention, normalOrZero, patchEmbed,
  resizePosGrid, type ActName, type LayerNormParams, type Mlp,
} from '../nn/vit.ts';
import { ConfigReader } from './config.ts';
import type { ModelFamily } from './registry.ts';

export interface ClipVisionConfig {
  hiddenSize: number; // D
  intermediateSize: number; // I
  numHiddenLayers: number; // L
  numAttentionHeads: number; // Hh
  numChannels: number; // C
  imageSize: number;
  patchSize: number; // p
  hiddenAct: ActName;
  layerNormEps: number;
  initializerRange: number;
  initializerFactor: number;
}

/**
 * Reads a clip_vision_model config, or the vision_config of a `clip` config. The size keys are
 * required; the rest default as CLIPVisionConfig does.
 */
export function parseConfig(json: unknown, source = 'config.json'): ClipVisionConfig {
  let r = new ConfigReader(json, source);
  if (r.raw('model_type') === 'clip') r = r.sub('vision_config');
  const cfg: ClipVisionConfig = {
    hiddenSize: r.int('hidden_size'),
    intermediateSize: r.int('intermediate_size'),
    numHiddenLayers: r.int('num_hidden_layers'),
    numAttentionHeads: r.int('num_attention_heads'),
    numChannels: r.int('num_channels', 3),
    imageSize: r.int('image_size'),
    patchSize: r.int('patch_size'),
    hiddenAct: r.str('hidden_act', 'quick_gelu', ACT_NAMES),
    layerNormEps: r.num('layer_norm_eps', 1e-5, 0),
    initializerRange: r.num('initializer_range', 0.02, 0),
    initializerFactor: r.num('initializer_factor', 1, 0),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(`${r.source}: 'hidden_size' ${cfg.hiddenSize} is not divisible by 'num_attention_heads' ${cfg.numAttentionHeads}`);
  }
  if (cfg.patchSize > cfg.imageSize) throw new Error(`${r.source}: 'patch_size' ${cfg.patchSize} exceeds 'image_size' ${cfg.imageSize}`);
  return cfg;
}

export interface ClipEncoderLayer {
  self_attn: { q_proj: Linear; k_proj: Linear; v_proj: Linear; out_proj: Linear }; // each [D, D]
  layer_norm1: LayerNormParams;
  mlp: Mlp; // fc1 [I, D], fc2 [D, I]
  layer_norm2: LayerNormParams;
}

export interface ClipVisionParams {
  vision_model: {
    embeddings: {
      class_embedding: Tensor; // [D]
      patch_embedding: { weight: Tensor }; // [D, C, p, p], no bias
      position_embedding: { weight: Tensor }; // [N + 1, D]
    };
    pre_layrnorm: LayerNormParams; // (sic: HF's key)
    encoder: { layers: ClipEncoderLayer[] };
    post_layernorm: LayerNormParams;
  };
}

/** CLIPPreTrainedModel._init_weights; all zeros when rng is null. */
export function init(cfg: ClipVisionConfig, rng: Rng | null): ClipVisionParams {
  const D = cfg.hiddenSize, I = cfg.intermediateSize, f = cfg.initializerFactor, L = cfg.numHiddenLayers;
  const g = cfg.imageSize / cfg.patchSize | 0;
  const normal = (std: number) => (shape: readonly number[]) => normalOrZero(shape, std, rng);
  const inStd = D ** -0.5 * (2 * L) ** -0.5 * f, outStd = D ** -0.5 * f, fcStd = (2 * D) ** -0.5 * f;
  return {
    vision_model: {
      embeddings: {
        class_embedding: normalOrZero([D], D ** -0.5 * f, rng),
        patch_embedding: { weight: normalOrZero([D, cfg.numChannels, cfg.patchSize, cfg.patchSize], cfg.initializerRange * f, rng) },
        position_embedding: { weight: normalOrZero([g * g + 1, D], cfg.initializerRange * f, rng) },
      },
      pre_layrnorm: layerNormParams(D, rng),
      encoder: {
        layers: Array.from({ length: L }, () => ({
          self_attn: {
            q_proj: linearWith(D, D, normal(inStd)),
            k_proj: linearWith(D, D, normal(inStd)),
            v_proj: linearWith(D, D, normal(inStd)),
            out_proj: linearWith(D, D, normal(outStd)),
          },
          layer_norm1: layerNormParams(D, rng),
          mlp: { fc1: linearWith(D, I, normal(fcStd)), fc2: linearWith(I, D, normal(inStd)) },
          layer_norm2: layerNormParams(D, rng),
        })),
      },
      post_layernorm: layerNormParams(D, rng),
    },
  };
}

export interface ClipVisionOptions {
  /**
   * Accept an input size other than image_size by bicubic resizing of the position grid (HF
   * interpolate_pos_encoding=True, size=(H/p, W/p), align_corners=False). Default false: a
   * different size throws, as HF does.
   */
  interpolatePosEncoding?: boolean;
  /** Also return every hidden state (L + 1: the pre_layrnorm output, then each layer's output). */
  outputHiddenStates?: boolean;
  /**
   * Stop after this hidden state (HF index; negative counts from the end, -2 = the penultimate
   * layer as LLaVA uses). lastHiddenState is then that state and poolerOutput is computed from it.
   */
  stopAtHiddenState?: number;
}

export interface ClipVisionOutput {
  lastHiddenState: Tensor; // [B, T, D]
  poolerOutput: Tensor; // [B, D]
  hiddenStates: Tensor[] | null; // (L + 1) x [B, T, D]
}

function layerForward(p: ClipEncoderLayer, cfg: ClipVisionConfig, x: Tensor): Tensor {
  const eps = cfg.layerNormEps;
  const a = F.layerNorm(x, p.layer_norm1.weight, p.layer_norm1.bias, eps);
  const sa = p.self_attn;
  const ctx = multiHeadAttention(sa.q_proj, sa.k_proj, sa.v_proj, a, a, cfg.numAttentionHeads); // [B, T, D]
  const h = F.add(x, F.linear(ctx, sa.out_proj.weight, sa.out_proj.bias));
  const m = mlp(p.mlp, F.layerNorm(h, p.layer_norm2.weight, p.layer_norm2.bias, eps), activation(cfg.hiddenAct));
  return F.add(h, m);
}

/** Patch + class + position embeddings followed by pre_layrnorm: [B, T, D]. */
export function embed(params: ClipVisionParams, cfg: ClipVisionConfig, pixelValues: Tensor, interpolate = false): Tensor {
  const [B, H, W] = checkPixels('clip_vision_model', pixelValues, cfg.numChannels, cfg.patchSize);
  const p = cfg.patchSize, g = cfg.imageSize / p | 0;
  if (!interpolate && (H !== cfg.imageSize || W !== cfg.imageSize)) {
    throw new Error(`clip_vision_model: pixel_values is ${H}x${W} but image_size is ${cfg.imageSize}; pass interpolatePosEncoding: true to resize the position embeddings`);
  }
  const e = params.vision_model.embeddings;
  const D = cfg.hiddenSize;
  const patches = patchEmbed(pixelValues, e.patch_embedding.weight, null, p); // [B, N', D]
  const cls = F.expand(F.reshape(e.class_embedding, [1, 1, D]), [B, 1, D]);
  const tokens = F.concat([cls, patches], 1); // [B, N' + 1, D]
  const gh = H / p | 0, gw = W / p | 0;
  let pos = e.position_embedding.weight; // [N + 1, D]
  if (!(gh * gw === g * g && H === W)) {
    const grid = resizePosGrid(F.slice(pos, 0, 1), gh, gw, 'size'); // [gh*gw, D]
    pos = F.concat([F.slice(pos, 0, 0, 1), grid], 0);
  }
  const x = F.add(tokens, pos);
  const ln = params.vision_model.pre_layrnorm;
  return F.layerNorm(x, ln.weight, ln.bias, cfg.layerNormEps);
}

/** CLIPVisionModel.forward. Run inside tidy(); each layer's temporaries are freed as it goes. */
export function forwardClipVision(params: ClipVisionParams, cfg: ClipVisionConfig, pixelValues: Tensor, opts: ClipVisionOptions = {}): ClipVisionOutput {
  const L = cfg.numHiddenLayers;
  let stop = opts.stopAtHiddenState ?? L;
  if (!Number.isInteger(stop) || stop < -(L + 1) || stop > L) throw new Error(`clip_vision_model: stopAtHiddenState ${stop} is outside [-${L + 1}, ${L}]`);
  if (stop < 0) stop += L + 1;
  let x = embed(params, cfg, pixelValues, opts.interpolatePosEncoding ?? false); // [B, T, D]
  const hidden: Tensor[] | null = opts.outputHiddenStates ? [x] : null;
  const layers = params.vision_model.encoder.layers;
  for (let i = 0; i < stop; i++) {
    const prev = x;
    x = tidy(() => layerForward(layers[i]!, cfg, prev));
    hidden?.push(x);
  }
  const post = params.vision_model.post_layernorm;
  const cls = F.squeeze(F.slice(x, 1, 0, 1), 1); // [B, D]
  return { lastHiddenState: x, poolerOutput: F.layerNorm(cls, post.weight, post.bias, cfg.layerNormEps), hiddenStates: hidden };
}

/** Hidden state `index` (HF numbering, -2 = penultimate layer), running only the layers it needs: [B, T, D]. */
export function clipHiddenState(params: ClipVisionParams, cfg: ClipVisionConfig, pixelValues: Tensor, index: number, interpolatePosEncoding = false): Tensor {
  return forwardClipVision(params, cfg, pixelValues, { stopAtHiddenState: index, interpolatePosEncoding }).lastHiddenState;
}

/** post_layernorm applied to every token of x [B, T, D] (the SPHINX / open_clip `ln_post` use). */
export function postLayerNorm(params: ClipVisionParams, cfg: ClipVisionConfig, x: Tensor): Tensor {
  const post = params.vision_model.post_layernorm;
  return F.layerNorm(x, post.weight, post.bias, cfg.layerNormEps);
}

export const family: ModelFamily<ClipVisionConfig, ClipVisionParams> = {
  modelType: 'clip_vision_model',
  parseConfig,
  init,
  // position_ids is a buffer in older checkpoints; a full CLIPModel checkpoint also holds the text tower.
  ignoreKeys: [/(^|\.)position_ids$/, /^text_model\./, /^(visual|text)_projection\./, /^logit_(scale|bias)$/],
  inputs: ['pixel_values'],
  forward(params, cfg, inputs) {
    const px = inputs.get('pixel_values');
    if (px === undefined) throw new Error('clip_vision_model: missing input pixel_values');
    // An input size other than image_size resizes the position grid (HF interpolate_pos_encoding=True).
    const out = forwardClipVision(params, cfg, px, { interpolatePosEncoding: true });
    return new Map([['last_hidden_state', out.lastHiddenState], ['pooler_output', out.poolerOutput]]);
  },
};
