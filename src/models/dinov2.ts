// DINOv2, Hugging Face Dinov2Model (model_type dinov2; dinov2_with_registers configs are read too,
// adding embeddings.register_tokens). Pre-LN ViT with LayerScale: patchify (conv with bias),
// prepend CLS, add learned positions (bicubic-resized for other input sizes), insert register
// tokens after CLS, L layers of x + ls1*attn(norm1 x), x + ls2*mlp(norm2 x), then the final
// layernorm. pooler_output is the normalised CLS token.
//
// Position interpolation follows the HF version chosen by `posInterp`: 'scale_factor' (default) is
// Dinov2Embeddings.interpolate_pos_encoding of transformers before its size= refactor (<= 4.4x),
// scale_factor = ((h0 + 0.1)/sqrt(N), (w0 + 0.1)/sqrt(N)), bicubic, align_corners=False; it is also
// what the torch.hub dinov2_vitg14 that SPHINX runs does. 'size' is current HF Dinov2, 'antialias'
// HF Dinov2WithRegisters (size=, antialias=True).
//
// Dims: B batch, C channels, H/W input size, p patch, g = image_size / p, N = g*g table positions,
// h0 = H/p, w0 = W/p, R registers, T = 1 + R + h0*w0 tokens, D hidden_size, I MLP width, L layers.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { tidy, type Tensor } from '../engine/tensor.ts';
import type { Linear } from '../nn/linear.ts';
import {
  ACT_NAMES, activation, checkPixels, constOrZero, layerNormParams, linearWith, mlp, multiHeadAttention, patchEmbed,
  resizePosGrid, truncNormalOrZero, type ActName, type LayerNormParams, type Mlp, type PosInterp,
} from '../nn/vit.ts';
import { ConfigReader } from './config.ts';
import type { ModelFamily } from './registry.ts';

export interface Dinov2Config {
  hiddenSize: number; // D
  numHiddenLayers: number; // L
  numAttentionHeads: number;
  mlpRatio: number;
  hiddenAct: ActName;
  layerNormEps: number;
  imageSize: number;
  patchSize: number; // p
  numChannels: number; // C
  qkvBias: boolean;
  layerscaleValue: number;
  useSwigluFfn: boolean;
  useMaskToken: boolean;
  numRegisterTokens: number; // R
  initializerRange: number;
  /** Default position interpolation (see the file header); 'antialias' for dinov2_with_registers. */
  posInterp: PosInterp;
}

/** Reads a dinov2 (or dinov2_with_registers) config; size keys are required, the rest default as Dinov2Config. */
export function parseConfig(json: unknown, source = 'config.json'): Dinov2Config {
  const r = new ConfigReader(json, source);
  const withRegisters = r.raw('model_type') === 'dinov2_with_registers';
  const cfg: Dinov2Config = {
    hiddenSize: r.int('hidden_size'),
    numHiddenLayers: r.int('num_hidden_layers'),
    numAttentionHeads: r.int('num_attention_heads'),
    mlpRatio: r.num('mlp_ratio', 4, 0),
    hiddenAct: r.str('hidden_act', 'gelu', ACT_NAMES),
    layerNormEps: r.num('layer_norm_eps', 1e-6, 0),
    imageSize: r.int('image_size'),
    patchSize: r.int('patch_size'),
    numChannels: r.int('num_channels', 3),
    qkvBias: r.bool('qkv_bias', true),
    layerscaleValue: r.num('layerscale_value', 1),
    useSwigluFfn: r.bool('use_swiglu_ffn', false),
    useMaskToken: withRegisters ? true : r.bool('use_mask_token', true),
    numRegisterTokens: r.int('num_register_tokens', withRegisters ? 4 : 0, 0),
    initializerRange: r.num('initializer_range', 0.02, 0),
    posInterp: withRegisters ? 'antialias' : 'scale_factor',
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(`${source}: 'hidden_size' ${cfg.hiddenSize} is not divisible by 'num_attention_heads' ${cfg.numAttentionHeads}`);
  }
  if (cfg.patchSize > cfg.imageSize) throw new Error(`${source}: 'patch_size' ${cfg.patchSize} exceeds 'image_size' ${cfg.imageSize}`);
  if (mlpHidden(cfg) < 1) throw new Error(`${source}: 'mlp_ratio' ${cfg.mlpRatio} gives an empty MLP`);
  return cfg;
}

/** The MLP width: int(D * mlp_ratio), or for SwiGLU ((int(that * 2/3) + 7) // 8) * 8. */
export function mlpHidden(cfg: Dinov2Config): number {
  const h = Math.trunc(cfg.hiddenSize * cfg.mlpRatio);
  return cfg.useSwigluFfn ? Math.floor((Math.trunc(h * 2 / 3) + 7) / 8) * 8 : h;
}

export interface SwiGluFfn {
  weights_in: Linear; // [2I, D]
  weights_out: Linear; // [D, I]
}

export interface Dinov2Layer {
  norm1: LayerNormParams;
  attention: {
    attention: { query: Linear; key: Linear; value: Linear }; // [D, D]
    output: { dense: Linear }; // [D, D]
  };
  layer_scale1: { lambda1: Tensor }; // [D]
  norm2: LayerNormParams;
  mlp: Mlp | SwiGluFfn;
  layer_scale2: { lambda1: Tensor }; // [D]
}

export interface Dinov2Params {
  embeddings: {
    cls_token: Tensor; // [1, 1, D]
    mask_token: Tensor | null; // [1, D] (use_mask_token)
    register_tokens?: Tensor; // [1, R, D] (only with registers)
    position_embeddings: Tensor; // [1, N + 1, D]
    patch_embeddings: { projection: { weight: Tensor; bias: Tensor } }; // [D, C, p, p], [D]
  };
  encoder: { layer: Dinov2Layer[] };
  layernorm: LayerNormParams;
}

/** Dinov2PreTrainedModel._init_weights (trunc-normal weights, zero biases); all zeros when rng is null. */
export function init(cfg: Dinov2Config, rng: Rng | null): Dinov2Params {
  const D = cfg.hiddenSize, I = mlpHidden(cfg), g = cfg.imageSize / cfg.patchSize | 0, std = cfg.initializerRange;
  const tn = (shape: readonly number[]): Tensor => truncNormalOrZero(shape, std, rng);
  const lin = (i: number, o: number, bias = true): Linear => linearWith(i, o, tn, bias);
  const embeddings: Dinov2Params['embeddings'] = {
    cls_token: tn([1, 1, D]),
    mask_token: cfg.useMaskToken ? constOrZero([1, D], 0, rng) : null,
    position_embeddings: tn([1, g * g + 1, D]),
    patch_embeddings: { projection: { weight: tn([D, cfg.numChannels, cfg.patchSize, cfg.patchSize]), bias: constOrZero([D], 0, rng) } },
  };
  if (cfg.numRegisterTokens > 0) embeddings.register_tokens = constOrZero([1, cfg.numRegisterTokens, D], 0, rng);
  return {
    embeddings,
    encoder: {
      layer: Array.from({ length: cfg.numHiddenLayers }, () => ({
        norm1: layerNormParams(D, rng),
        attention: {
          attention: { query: lin(D, D, cfg.qkvBias), key: lin(D, D, cfg.qkvBias), value: lin(D, D, cfg.qkvBias) },
          output: { dense: lin(D, D) },
        },
        layer_scale1: { lambda1: constOrZero([D], cfg.layerscaleValue, rng) },
        norm2: layerNormParams(D, rng),
        mlp: cfg.useSwigluFfn ? { weights_in: lin(D, 2 * I), weights_out: lin(I, D) } : { fc1: lin(D, I), fc2: lin(I, D) },
        layer_scale2: { lambda1: constOrZero([D], cfg.layerscaleValue, rng) },
      })),
    },
    layernorm: layerNormParams(D, rng),
  };
}

export interface Dinov2Options {
  /** Position interpolation for other input sizes; default cfg.posInterp. */
  posInterp?: PosInterp;
  /** Bool [B, h0*w0]: true replaces that patch embedding with mask_token (HF bool_masked_pos). */
  boolMaskedPos?: Tensor | null;
  /** Also return the L + 1 hidden states (embeddings, then each layer; before the final layernorm). */
  outputHiddenStates?: boolean;
}

export interface Dinov2Output {
  lastHiddenState: Tensor; // [B, T, D] (after layernorm)
  poolerOutput: Tensor; // [B, D]
  hiddenStates: Tensor[] | null;
}

function ffn(p: Mlp | SwiGluFfn, cfg: Dinov2Config, x: Tensor): Tensor {
  if ('fc1' in p) return mlp(p, x, activation(cfg.hiddenAct));
  const h = F.linear(x, p.weights_in.weight, p.weights_in.bias); // [B, T, 2I]
  const [x1, x2] = F.chunk(h, 2, -1);
  return F.linear(F.mul(F.silu(x1!), x2!), p.weights_out.weight, p.weights_out.bias);
}

function layerForward(p: Dinov2Layer, cfg: Dinov2Config, x: Tensor): Tensor {
  const eps = cfg.layerNormEps;
  const a = F.layerNorm(x, p.norm1.weight, p.norm1.bias, eps);
  const sa = p.attention.attention;
  const ctx = multiHeadAttention(sa.query, sa.key, sa.value, a, a, cfg.numAttentionHeads);
  const o = F.linear(ctx, p.attention.output.dense.weight, p.attention.output.dense.bias);
  const h = F.add(x, F.mul(o, p.layer_scale1.lambda1));
  const m = ffn(p.mlp, cfg, F.layerNorm(h, p.norm2.weight, p.norm2.bias, eps));
  return F.add(h, F.mul(m, p.layer_scale2.lambda1));
}

/** Position table for an h0 x w0 grid (input H x W): [1, 1 + h0*w0, D]. */
export function positionEmbeddings(params: Dinov2Params, cfg: Dinov2Config, H: number, W: number, mode: PosInterp): Tensor {
  const pos = params.embeddings.position_embeddings; // [1, N + 1, D]
  const N = pos.shape[1]! - 1, D = pos.shape[2]!;
  const h0 = H / cfg.patchSize | 0, w0 = W / cfg.patchSize | 0;
  if (h0 * w0 === N && H === W) return pos;
  const table = F.reshape(F.slice(pos, 1, 1), [N, D]);
  const grid = resizePosGrid(table, h0, w0, mode); // [h0*w0, D]
  return F.unsqueeze(F.concat([F.reshape(F.slice(pos, 1, 0, 1), [1, D]), grid], 0), 0);
}

/** Dinov2Embeddings.forward: [B, 1 + R + h0*w0, D]. */
export function embed(params: Dinov2Params, cfg: Dinov2Config, pixelValues: Tensor, opts: Dinov2Options = {}): Tensor {
  const [B, H, W] = checkPixels('dinov2', pixelValues, cfg.numChannels, cfg.patchSize);
  const e = params.embeddings, D = cfg.hiddenSize;
  const proj = e.patch_embeddings.projection;
  let patches = patchEmbed(pixelValues, proj.weight, proj.bias, cfg.patchSize); // [B, n, D]
  const masked = opts.boolMaskedPos ?? null;
  if (masked !== null && e.mask_token !== null) {
    if (masked.ndim !== 2 || masked.shape[0] !== B || masked.shape[1] !== patches.shape[1]) {
      throw new Error(`dinov2: bool_masked_pos must be [${B}, ${patches.shape[1]}], got ${masked.describe()}`);
    }
    patches = F.where(F.unsqueeze(masked, -1), F.reshape(e.mask_token, [1, 1, D]), patches);
  }
  const cls = F.expand(e.cls_token, [B, 1, D]);
  let x = F.add(F.concat([cls, patches], 1), positionEmbeddings(params, cfg, H, W, opts.posInterp ?? cfg.posInterp));
  if (cfg.numRegisterTokens > 0) {
    const reg = e.register_tokens;
    if (reg === undefined) throw new Error('dinov2: num_register_tokens > 0 but embeddings.register_tokens is missing');
    x = F.concat([F.slice(x, 1, 0, 1), F.expand(reg, [B, cfg.numRegisterTokens, D]), F.slice(x, 1, 1)], 1);
  }
  return x;
}

/** Dinov2Model.forward. Run inside tidy(); each layer's temporaries are freed as it goes. */
export function forwardDinov2(params: Dinov2Params, cfg: Dinov2Config, pixelValues: Tensor, opts: Dinov2Options = {}): Dinov2Output {
  let x = embed(params, cfg, pixelValues, opts); // [B, T, D]
  const hidden: Tensor[] | null = opts.outputHiddenStates ? [x] : null;
  for (const layer of params.encoder.layer) {
    const prev = x;
    x = tidy(() => layerForward(layer, cfg, prev));
    hidden?.push(x);
  }
  const seq = F.layerNorm(x, params.layernorm.weight, params.layernorm.bias, cfg.layerNormEps);
  return { lastHiddenState: seq, poolerOutput: F.squeeze(F.slice(seq, 1, 0, 1), 1), hiddenStates: hidden };
}

export const family: ModelFamily<Dinov2Config, Dinov2Params> = {
  modelType: 'dinov2',
  parseConfig,
  init,
  inputs: ['pixel_values'],
  forward(params, cfg, inputs) {
    const px = inputs.get('pixel_values');
    if (px === undefined) throw new Error('dinov2: missing input pixel_values');
    const out = forwardDinov2(params, cfg, px);
    return new Map([['last_hidden_state', out.lastHiddenState], ['pooler_output', out.poolerOutput]]);
  },
};
