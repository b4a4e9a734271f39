// ConvNeXt, Hugging Face ConvNextModel (model_type convnext). Stem: conv p x p stride p, then a
// channels-first LayerNorm (eps 1e-6, see blockNormEps). Stage s > 0 starts with a downsampling LayerNorm
// (channels-first, eps 1e-6) + conv 2x2 stride 2; every block is
// x + gamma * pwconv2(act(pwconv1(LN_channels_last(dwconv7x7(x))))). pooler_output is
// layernorm(mean over H, W) with eps layer_norm_eps (the only norm using that key).
//
// Dims: B batch, C0 input channels, H/W input size, S stages, Cs = hidden_sizes[s],
// Hs/Ws the stage-s feature map (H/p halved per stage after the first).

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { tidy, type Tensor } from '../engine/tensor.ts';
import type { Linear } from '../nn/linear.ts';
import {
  ACT_NAMES, activation, checkPixels, constOrZero, layerNormChannelsFirst, layerNormParams, linearWith, normalOrZero,
  type ActName, type LayerNormParams,
} from '../nn/vit.ts';
import { ConfigReader } from './config.ts';
import type { ModelFamily } from './registry.ts';

export interface ConvNextConfig {
  numChannels: number; // C0
  patchSize: number; // p
  hiddenSizes: number[]; // Cs
  depths: number[]; // blocks per stage
  hiddenAct: ActName;
  layerNormEps: number; // final pooler norm only
  /** eps of the stem, downsampling and block LayerNorms: 1e-6, hard-coded in HF; `norm_eps` (timm's name, never in HF configs) overrides it. */
  blockNormEps: number;
  layerScaleInitValue: number; // <= 0: no layer_scale_parameter
  initializerRange: number;
}

export function parseConfig(json: unknown, source = 'config.json'): ConvNextConfig {
  const r = new ConfigReader(json, source);
  const cfg: ConvNextConfig = {
    numChannels: r.int('num_channels', 3),
    patchSize: r.int('patch_size', 4),
    hiddenSizes: r.intList('hidden_sizes'),
    depths: r.intList('depths'),
    hiddenAct: r.str('hidden_act', 'gelu', ACT_NAMES),
    layerNormEps: r.num('layer_norm_eps', 1e-12, 0),
    blockNormEps: r.num('norm_eps', 1e-6, 0),
    layerScaleInitValue: r.num('layer_scale_init_value', 1e-6),
    initializerRange: r.num('initializer_range', 0.02, 0),
  };
  const S = r.int('num_stages', cfg.hiddenSizes.length);
  if (cfg.hiddenSizes.length !== S || cfg.depths.length !== S) {
    throw new Error(`${source}: 'hidden_sizes' (${cfg.hiddenSizes.length}) and 'depths' (${cfg.depths.length}) must both have num_stages = ${S} entries`);
  }
  if (cfg.hiddenSizes.some((c) => c < 1)) throw new Error(`${source}: 'hidden_sizes' must be positive, got ${JSON.stringify(cfg.hiddenSizes)}`);
  return cfg;
}

export interface ConvNextBlock {
  dwconv: { weight: Tensor; bias: Tensor }; // [C, 1, 7, 7], [C]
  layernorm: LayerNormParams; // [C]
  pwconv1: Linear; // [4C, C]
  pwconv2: Linear; // [C, 4C]
  layer_scale_parameter: Tensor | null; // [C]
}

export interface ConvNextStage {
  /** [0] channels-first LayerNorm [C_{s-1}], [1] conv [Cs, C_{s-1}, 2, 2]; absent when stride 1 and channels match. */
  downsampling_layer?: [LayerNormParams, { weight: Tensor; bias: Tensor }];
  layers: ConvNextBlock[];
}

export interface ConvNextParams {
  embeddings: {
    patch_embeddings: { weight: Tensor; bias: Tensor }; // [C0', C0, p, p] with C0' = hidden_sizes[0]
    layernorm: LayerNormParams;
  };
  encoder: { stages: ConvNextStage[] };
  layernorm: LayerNormParams; // [C_{S-1}]
}

/** ConvNextPreTrainedModel._init_weights: N(0, initializer_range) weights, zero biases; zeros when rng is null. */
export function init(cfg: ConvNextConfig, rng: Rng | null): ConvNextParams {
  const std = cfg.initializerRange;
  const conv = (o: number, i: number, k: number): { weight: Tensor; bias: Tensor } => ({ weight: normalOrZero([o, i, k, k], std, rng), bias: constOrZero([o], 0, rng) });
  const lin = (i: number, o: number): Linear => linearWith(i, o, (s) => normalOrZero(s, std, rng));
  const stages: ConvNextStage[] = [];
  let prev = cfg.hiddenSizes[0]!;
  cfg.hiddenSizes.forEach((C, s) => {
    const down: ConvNextStage['downsampling_layer'] = s > 0 || prev !== C ? [layerNormParams(prev, rng), conv(C, prev, 2)] : undefined;
    const layers = Array.from({ length: cfg.depths[s]! }, (): ConvNextBlock => ({
      dwconv: conv(C, 1, 7),
      layernorm: layerNormParams(C, rng),
      pwconv1: lin(C, 4 * C),
      pwconv2: lin(4 * C, C),
      layer_scale_parameter: cfg.layerScaleInitValue > 0 ? constOrZero([C], cfg.layerScaleInitValue, rng) : null,
    }));
    stages.push(down === undefined ? { layers } : { downsampling_layer: down, layers });
    prev = C;
  });
  return {
    embeddings: { patch_embeddings: conv(cfg.hiddenSizes[0]!, cfg.numChannels, cfg.patchSize), layernorm: layerNormParams(cfg.hiddenSizes[0]!, rng) },
    encoder: { stages },
    layernorm: layerNormParams(cfg.hiddenSizes[cfg.hiddenSizes.length - 1]!, rng),
  };
}

function blockForward(p: ConvNextBlock, act: (t: Tensor) => Tensor, eps: number, x: Tensor): Tensor {
  const C = x.shape[1]!;
  const d = F.conv2d(x, p.dwconv.weight, p.dwconv.bias, { padding: 3, groups: C }); // [B, C, H, W]
  const t = F.layerNorm(F.permute(d, [0, 2, 3, 1]), p.layernorm.weight, p.layernorm.bias, eps); // [B, H, W, C]
  let y = F.linear(act(F.linear(t, p.pwconv1.weight, p.pwconv1.bias)), p.pwconv2.weight, p.pwconv2.bias); // [B, H, W, C]
  if (p.layer_scale_parameter !== null) y = F.mul(y, p.layer_scale_parameter);
  return F.add(x, F.permute(y, [0, 3, 1, 2]));
}

/** One stage: optional downsampling, then its blocks. [B, C_{s-1}, H, W] -> [B, Cs, H', W']. */
export function stageForward(p: ConvNextStage, cfg: ConvNextConfig, x: Tensor): Tensor {
  let h = x;
  if (p.downsampling_layer !== undefined) {
    const [ln, conv] = p.downsampling_layer;
    h = F.conv2d(layerNormChannelsFirst(h, ln.weight, ln.bias, cfg.blockNormEps), conv.weight, conv.bias, { stride: 2 });
  }
  const act = activation(cfg.hiddenAct);
  for (const b of p.layers) {
    const prev = h;
    h = tidy(() => blockForward(b, act, cfg.blockNormEps, prev));
  }
  return h;
}

/** ConvNextEmbeddings.forward: [B, C0, H, W] -> [B, hidden_sizes[0], H/p, W/p]. */
export function embed(params: ConvNextParams, cfg: ConvNextConfig, pixelValues: Tensor): Tensor {
  checkPixels('convnext', pixelValues, cfg.numChannels, cfg.patchSize);
  const pe = params.embeddings;
  const x = F.conv2d(pixelValues, pe.patch_embeddings.weight, pe.patch_embeddings.bias, { stride: cfg.patchSize });
  return layerNormChannelsFirst(x, pe.layernorm.weight, pe.layernorm.bias, cfg.blockNormEps);
}

export interface ConvNextOptions {
  /** Also return the S + 1 hidden states (the embeddings, then each stage's output), NCHW. */
  outputHiddenStates?: boolean;
}

export interface ConvNextOutput {
  lastHiddenState: Tensor; // [B, C_{S-1}, H_{S-1}, W_{S-1}]
  poolerOutput: Tensor; // [B, C_{S-1}]
  hiddenStates: Tensor[] | null;
}

/** The outputs of stages 0 .. n-1 (default all), each [B, Cs, Hs, Ws]. Run inside tidy(). */
export function convNextStages(params: ConvNextParams, cfg: ConvNextConfig, pixelValues: Tensor, n?: number): Tensor[] {
  const S = params.encoder.stages.length;
  const upTo = n ?? S;
  if (!Number.isInteger(upTo) || upTo < 1 || upTo > S) throw new Error(`convnext: stage count ${upTo} is outside [1, ${S}]`);
  return runStages(params, cfg, embed(params, cfg, pixelValues), upTo);
}

function runStages(params: ConvNextParams, cfg: ConvNextConfig, emb: Tensor, n: number): Tensor[] {
  const outs: Tensor[] = [];
  let x = emb;
  for (let s = 0; s < n; s++) {
    const st = params.encoder.stages[s]!;
    const H = x.shape[2]!, W = x.shape[3]!;
    if (st.downsampling_layer !== undefined && (H < 2 || W < 2)) {
      throw new Error(`convnext: the feature map before stage ${s} is ${H}x${W}; the input is too small for ${params.encoder.stages.length} stages`);
    }
    x = stageForward(st, cfg, x);
    outs.push(x);
  }
  return outs;
}

/** ConvNextModel.forward. Run inside tidy(). */
export function forwardConvNext(params: ConvNextParams, cfg: ConvNextConfig, pixelValues: Tensor, opts: ConvNextOptions = {}): ConvNextOutput {
  const emb = embed(params, cfg, pixelValues); // [B, C_0, H/p, W/p]
  const stages = runStages(params, cfg, emb, params.encoder.stages.length);
  const x = stages[stages.length - 1]!;
  const ln = params.layernorm;
  const pooled = F.layerNorm(F.mean(x, [2, 3]), ln.weight, ln.bias, cfg.layerNormEps); // [B, C]
  return { lastHiddenState: x, poolerOutput: pooled, hiddenStates: opts.outputHiddenStates ? [emb, ...stages] : null };
}

export const family: ModelFamily<ConvNextConfig, ConvNextParams> = {
  modelType: 'convnext',
  parseConfig,
  init,
  inputs: ['pixel_values'],
  forward(params, cfg, inputs) {
    const px = inputs.get('pixel_values');
    if (px === undefined) throw new Error('convnext: missing input pixel_values');
    const out = forwardConvNext(params, cfg, px);
    return new Map([['last_hidden_state', out.lastHiddenState], ['pooler_output', out.poolerOutput]]);
  },
};
