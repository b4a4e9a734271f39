// NExT-GPT's output projector (TextFcLayer, mode 'transformer'; SPEC §16): the LLM's hidden states
// at the k signal tokens (plus those tokens' input embeddings) -> fc Linear(In -> H) -> an
// encoder-decoder nn.Transformer (batch_first, norm_first = pre-norm, ReLU FFN, dropout 0, no masks)
// whose decoder reads Nq learned queries -> model Linear(H -> Out): the conditioning sequence a
// diffusion decoder expects (77×768 for SD-1.5's text encoder).
// Keys = PyTorch's: fc, tfm.encoder.layers.N.{self_attn.{in_proj_weight, in_proj_bias, out_proj},
// linear1, linear2, norm1, norm2}, tfm.encoder.norm, tfm.decoder.layers.N.{self_attn,
// multihead_attn, linear1, linear2, norm1, norm2, norm3}, tfm.decoder.norm, model, query_embs.
//
// Dims: B batch, k signal tokens, In LLM width, H transformer width, Hh heads, Nq queries, Out output width.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { constInit } from '../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../nn/linear.ts';
import { layerNormParams, mergeHeads, normalOrZero, splitHeads, type LayerNormParams } from '../nn/vit.ts';
import type { MultiheadAttentionParams } from './resampler.ts';

export interface TextFcConfig {
  inDim: number; // In
  outDim: number; // Out
  hidden: number; // H (512)
  heads: number; // Hh (4)
  encoderLayers: number; // 4
  decoderLayers: number; // 4
  ffn: number; // 2048
  numOutputTokens: number; // Nq (77 image / video, 1 audio)
  eps?: number; // LayerNorm eps (1e-5)
}

export interface TfmEncoderLayer {
  self_attn: MultiheadAttentionParams;
  linear1: Linear; // [ffn, H]
  linear2: Linear; // [H, ffn]
  norm1: LayerNormParams;
  norm2: LayerNormParams;
}

export interface TfmDecoderLayer extends TfmEncoderLayer {
  multihead_attn: MultiheadAttentionParams;
  norm3: LayerNormParams;
}

export interface TextFcParams {
  fc: Linear; // [H, In]
  tfm: { encoder: { layers: TfmEncoderLayer[]; norm: LayerNormParams }; decoder: { layers: TfmDecoderLayer[]; norm: LayerNormParams } };
  model: Linear; // [Out, H]
  query_embs: Tensor; // [1, Nq, H]
}

function check(cfg: TextFcConfig): void {
  for (const k of ['inDim', 'outDim', 'hidden', 'heads', 'encoderLayers', 'decoderLayers', 'ffn', 'numOutputTokens'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new Error(`text-fc: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.hidden % cfg.heads !== 0) throw new Error(`text-fc: hidden ${cfg.hidden} is not divisible by heads ${cfg.heads}`);
}

/** PyTorch defaults: Linear kaiming-uniform, MHA xavier-ish (here N(0, 0.02)) with zero biases, LayerNorm ones/zeros, query_embs ~ N(0, 1). rng null: zeros. */
export function initTextFc(cfg: TextFcConfig, rng: Rng | null): TextFcParams {
  check(cfg);
  const H = cfg.hidden;
  const lin = (i: number, o: number): Linear => (rng ? initLinear(i, o, rng) : zeroLinear(i, o));
  const mha = (): MultiheadAttentionParams => ({ in_proj_weight: normalOrZero([3 * H, H], 0.02, rng), in_proj_bias: constInit([3 * H], 0), out_proj: { weight: normalOrZero([H, H], 0.02, rng), bias: constInit([H], 0) } });
  const ln = (): LayerNormParams => layerNormParams(H, rng);
  const enc = (): TfmEncoderLayer => ({ self_attn: mha(), linear1: lin(H, cfg.ffn), linear2: lin(cfg.ffn, H), norm1: ln(), norm2: ln() });
  return {
    fc: lin(cfg.inDim, H),
    tfm: {
      encoder: { layers: Array.from({ length: cfg.encoderLayers }, enc), norm: ln() },
      decoder: { layers: Array.from({ length: cfg.decoderLayers }, () => ({ ...enc(), multihead_attn: mha(), norm3: ln() })), norm: ln() },
    },
    model: lin(H, cfg.outDim),
    query_embs: normalOrZero([1, cfg.numOutputTokens, H], 1, rng),
  };
}

/** nn.MultiheadAttention (batch_first, no masks): xq [B, Tq, H], xkv [B, Tk, H] -> [B, Tq, H]. */
export function multiheadAttention(p: MultiheadAttentionParams, heads: number, xq: Tensor, xkv: Tensor): Tensor {
  const [wq, wk, wv] = F.chunk(p.in_proj_weight, 3, 0); // each [H, H]
  const [bq, bk, bv] = F.chunk(p.in_proj_bias, 3, 0);
  const q = splitHeads(F.linear(xq, wq!, bq!), heads); // [B, Hh, Tq, Dh]
  const k = splitHeads(F.linear(xkv, wk!, bk!), heads);
  const v = splitHeads(F.linear(xkv, wv!, bv!), heads);
  return F.linear(mergeHeads(F.attention(q, k, v)), p.out_proj.weight, p.out_proj.bias);
}

function ln(p: LayerNormParams, x: Tensor, eps: number): Tensor {
  return F.layerNorm(x, p.weight, p.bias, eps);
}

function ff(l: TfmEncoderLayer, x: Tensor): Tensor {
  return linear(l.linear2, F.relu(linear(l.linear1, x)));
}

/** x [B, k, In] (signal-token hidden states), inputEmbs [B, k, In] -> [B, Nq, Out]. */
export function textFc(cfg: TextFcConfig, p: TextFcParams, x: Tensor, inputEmbs: Tensor): Tensor {
  if (x.ndim !== 3 || x.shape[2] !== cfg.inDim) throw new Error(`text-fc: hidden states must be [B, k, ${cfg.inDim}], got ${x.describe()}`);
  if (inputEmbs.ndim !== 3 || inputEmbs.shape.some((d, i) => d !== x.shape[i])) throw new Error(`text-fc: input embeddings ${inputEmbs.describe()} must match hidden states ${x.describe()}`);
  const eps = cfg.eps ?? 1e-5, Hh = cfg.heads, B = x.shape[0]!;
  let mem = linear(p.fc, F.add(x, inputEmbs)); // [B, k, H]
  for (const l of p.tfm.encoder.layers) {
    const h = ln(l.norm1, mem, eps);
    mem = F.add(mem, multiheadAttention(l.self_attn, Hh, h, h));
    mem = F.add(mem, ff(l, ln(l.norm2, mem, eps)));
  }
  mem = ln(p.tfm.encoder.norm, mem, eps);
  let y = F.expand(p.query_embs, [B, cfg.numOutputTokens, cfg.hidden]); // [B, Nq, H]
  for (const l of p.tfm.decoder.layers) {
    const h = ln(l.norm1, y, eps);
    y = F.add(y, multiheadAttention(l.self_attn, Hh, h, h));
    y = F.add(y, multiheadAttention(l.multihead_attn, Hh, ln(l.norm2, y, eps), mem));
    y = F.add(y, ff(l, ln(l.norm3, y, eps)));
  }
  return linear(p.model, ln(p.tfm.decoder.norm, y, eps)); // [B, Nq, Out]
}

/** NExT-GPT's alignment loss: mean over rows and tokens of the Euclidean distance ||pred - target||_2 (not squared). pred, target [B, Nq, Out]. */
export function l2AlignLoss(pred: Tensor, target: Tensor): Tensor {
  if (pred.ndim !== target.ndim || pred.shape.some((d, i) => d !== target.shape[i])) throw new Error(`alignment loss: prediction ${pred.describe()} and target ${target.describe()} differ in shape`);
  return F.mean(F.sqrt(F.sum(F.square(F.sub(pred, target)), -1)));
}
