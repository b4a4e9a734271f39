// BLIP-2 Q-Former, Hugging Face Blip2QFormerModel (model_type blip_2_qformer; the qformer_config
// of a `blip-2` config is read too). A BERT-style post-LN encoder over query embeddings:
//   x = dropout(layernorm(query_embeds))                      (the only pre-norm, on the input)
//   per layer: a = LN(x + dense(selfattn(x)))                 (attention.output.LayerNorm)
//              q = a[:, :Q]; every cross_attention_frequency-th layer (0, f, 2f, ...):
//              q = LN(q + dense(crossattn(q, image)))          (keys/values from encoder_hidden_size)
//              x = LN(q + output_query(act(intermediate_query(q))))   query-only FFN
//              text positions a[:, Q:] (use_qformer_text_input) take the separate
//              intermediate/output FFN and skip cross-attention.
// pooler_output = last_hidden_state[:, 0] (no dense). The learned query tokens live in Blip2Model
// (query_tokens [1, Q, D]); forwardQFormerWithQueries expands them over the batch.
//
// Dims: B batch, T = Q + Tt positions (Q queries, Tt text), S image tokens, E encoder_hidden_size,
// D hidden_size, I intermediate_size, Hh heads, L layers.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { tidy, type Tensor } from '../engine/tensor.ts';
import type { Linear } from '../nn/linear.ts';
import { ACT_NAMES, activation, layerNormParams, linearWith, multiHeadAttention, normalOrZero, type ActName, type LayerNormParams } from '../nn/vit.ts';
import { ConfigReader } from './config.ts';
import type { ModelFamily } from './registry.ts';

export interface Blip2QFormerConfig {
  hiddenSize: number; // D
  numHiddenLayers: number; // L
  numAttentionHeads: number; // Hh
  intermediateSize: number; // I
  hiddenAct: ActName;
  layerNormEps: number;
  crossAttentionFrequency: number;
  encoderHiddenSize: number; // E
  useQformerTextInput: boolean;
  initializerRange: number;
}

/** Reads a blip_2_qformer config (or the qformer_config of a blip-2 config). Size keys are required. */
export function parseConfig(json: unknown, source = 'config.json'): Blip2QFormerConfig {
  let r = new ConfigReader(json, source);
  let encoderDefault: number | undefined;
  if (r.raw('model_type') === 'blip-2') {
    // Blip2Config sets qformer_config.encoder_hidden_size from the vision tower's width.
    encoderDefault = r.sub('vision_config', {}).int('hidden_size', 1408);
    r = r.sub('qformer_config');
  }
  const pet = r.str('position_embedding_type', 'absolute');
  if (pet !== 'absolute') throw new Error(`${r.source}: 'position_embedding_type' ${JSON.stringify(pet)} is not supported (only "absolute")`);
  const cfg: Blip2QFormerConfig = {
    hiddenSize: r.int('hidden_size'),
    numHiddenLayers: r.int('num_hidden_layers'),
    numAttentionHeads: r.int('num_attention_heads'),
    intermediateSize: r.int('intermediate_size'),
    hiddenAct: r.str('hidden_act', 'gelu', ACT_NAMES),
    layerNormEps: r.num('layer_norm_eps', 1e-12, 0),
    crossAttentionFrequency: r.int('cross_attention_frequency', 2),
    encoderHiddenSize: encoderDefault !== undefined ? encoderDefault : r.int('encoder_hidden_size'),
    useQformerTextInput: r.bool('use_qformer_text_input', false),
    initializerRange: r.num('initializer_range', 0.02, 0),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(`${r.source}: 'hidden_size' ${cfg.hiddenSize} is not divisible by 'num_attention_heads' ${cfg.numAttentionHeads}`);
  }
  return cfg;
}

export interface QFormerAttention {
  attention: { query: Linear; key: Linear; value: Linear }; // query [D, D]; key/value [D, D] or [D, E] (cross)
  output: { dense: Linear; LayerNorm: LayerNormParams }; // dense [D, D]
}

export interface QFormerFfn {
  dense: Linear; // intermediate [I, D]
}

export interface QFormerFfnOut {
  dense: Linear; // [D, I]
  LayerNorm: LayerNormParams;
}

export interface Blip2QFormerLayer {
  attention: QFormerAttention;
  crossattention?: QFormerAttention; // layers 0, f, 2f, ...
  intermediate?: QFormerFfn; // text FFN (use_qformer_text_input)
  output?: QFormerFfnOut;
  intermediate_query: QFormerFfn;
  output_query: QFormerFfnOut;
}

export interface Blip2QFormerParams {
  layernorm: LayerNormParams; // [D]
  encoder: { layer: Blip2QFormerLayer[] };
}

/** Blip2PreTrainedModel._init_weights: N(0, initializer_range) weights, zero biases; zeros when rng is null. */
export function init(cfg: Blip2QFormerConfig, rng: Rng | null): Blip2QFormerParams {
  const D = cfg.hiddenSize, I = cfg.intermediateSize, E = cfg.encoderHiddenSize;
  const lin = (i: number, o: number): Linear => linearWith(i, o, (s) => normalOrZero(s, cfg.initializerRange, rng));
  const attn = (kvIn: number): QFormerAttention => ({
    attention: { query: lin(D, D), key: lin(kvIn, D), value: lin(kvIn, D) },
    output: { dense: lin(D, D), LayerNorm: layerNormParams(D, rng) },
  });
  return {
    layernorm: layerNormParams(D, rng),
    encoder: {
      layer: Array.from({ length: cfg.numHiddenLayers }, (_, i) => {
        const layer: Blip2QFormerLayer = {
          attention: attn(D),
          intermediate_query: { dense: lin(D, I) },
          output_query: { dense: lin(I, D), LayerNorm: layerNormParams(D, rng) },
        };
        if (i % cfg.crossAttentionFrequency === 0) layer.crossattention = attn(E);
        if (cfg.useQformerTextInput) {
          layer.intermediate = { dense: lin(D, I) };
          layer.output = { dense: lin(I, D), LayerNorm: layerNormParams(D, rng) };
        }
        return layer;
      }),
    },
  };
}

export interface QFormerOptions {
  /** Leading positions that are queries (default: all). The rest are text positions. */
  queryLength?: number;
  /** [B, T] (bool, or 0/1 numbers): which positions self-attention may read; or [B, T, T] per query row (BLIP-2 ITC/ITG masks). */
  attentionMask?: Tensor | null;
  /** [B, S]: which image tokens cross-attention may read. */
  encoderAttentionMask?: Tensor | null;
  /** Also return the L + 1 hidden states (the normalised input, then each layer). */
  outputHiddenStates?: boolean;
}

export interface QFormerOutput {
  lastHiddenState: Tensor; // [B, T, D]
  poolerOutput: Tensor; // [B, D]
  hiddenStates: Tensor[] | null;
}

/** A [B, n] keep-mask (bool or 0/1) as bool [B, 1, 1, n] for F.attention; a [B, n, n] mask (row = query) as [B, 1, n, n]. */
function keyMask(what: string, m: Tensor | null | undefined, B: number, n: number): Tensor | null {
  if (m === null || m === undefined) return null;
  if (m.ndim === 3) {
    if (m.shape[0] !== B || m.shape[1] !== n || m.shape[2] !== n) throw new Error(`blip_2_qformer: ${what} must be [${B}, ${n}] or [${B}, ${n}, ${n}], got ${m.describe()}`);
    const b3 = m.dtype === 'bool' || m.dtype === 'u8' ? m : F.ne(m.dtype === 'f32' ? m : F.cast(m, 'f32'), 0);
    return F.reshape(b3, [B, 1, n, n]);
  }
  if (m.ndim !== 2 || m.shape[0] !== B || m.shape[1] !== n) throw new Error(`blip_2_qformer: ${what} must be [${B}, ${n}], got ${m.describe()}`);
  const b = m.dtype === 'bool' || m.dtype === 'u8' ? m : F.ne(m.dtype === 'f32' ? m : F.cast(m, 'f32'), 0);
  return F.reshape(b, [B, 1, 1, n]);
}

function attentionBlock(p: QFormerAttention, cfg: Blip2QFormerConfig, x: Tensor, kv: Tensor, mask: Tensor | null): Tensor {
  const a = p.attention;
  const ctx = multiHeadAttention(a.query, a.key, a.value, x, kv, cfg.numAttentionHeads, { mask });
  const o = p.output;
  return F.layerNorm(F.add(F.linear(ctx, o.dense.weight, o.dense.bias), x), o.LayerNorm.weight, o.LayerNorm.bias, cfg.layerNormEps);
}

function ffnBlock(inter: QFormerFfn, out: QFormerFfnOut, cfg: Blip2QFormerConfig, x: Tensor): Tensor {
  const h = activation(cfg.hiddenAct)(F.linear(x, inter.dense.weight, inter.dense.bias)); // [B, t, I]
  return F.layerNorm(F.add(F.linear(h, out.dense.weight, out.dense.bias), x), out.LayerNorm.weight, out.LayerNorm.bias, cfg.layerNormEps);
}

function layerForward(p: Blip2QFormerLayer, i: number, cfg: Blip2QFormerConfig, x: Tensor, enc: Tensor, Q: number, selfMask: Tensor | null, encMask: Tensor | null): Tensor {
  const T = x.shape[1]!;
  const a = attentionBlock(p.attention, cfg, x, x, selfMask); // [B, T, D]
  const text = (t: Tensor): Tensor => {
    if (p.intermediate === undefined || p.output === undefined) {
      throw new Error(`blip_2_qformer: layer ${i} has no text FFN (intermediate/output); text positions need use_qformer_text_input`);
    }
    return ffnBlock(p.intermediate, p.output, cfg, t);
  };
  if (Q === 0) return text(a);
  let q = Q === T ? a : F.slice(a, 1, 0, Q); // [B, Q, D]
  if (p.crossattention !== undefined) q = attentionBlock(p.crossattention, cfg, q, enc, encMask);
  const out = ffnBlock(p.intermediate_query, p.output_query, cfg, q);
  return Q === T ? out : F.concat([out, text(F.slice(a, 1, Q))], 1);
}

/**
 * Blip2QFormerModel.forward(query_embeds, encoder_hidden_states). queryEmbeds [B, T, D],
 * encoderHiddenStates [B, S, E]. Run inside tidy(); each layer's temporaries are freed as it goes.
 */
export function forwardQFormer(params: Blip2QFormerParams, cfg: Blip2QFormerConfig, queryEmbeds: Tensor, encoderHiddenStates: Tensor, opts: QFormerOptions = {}): QFormerOutput {
  const D = cfg.hiddenSize, E = cfg.encoderHiddenSize;
  if (queryEmbeds.dtype !== 'f32' || queryEmbeds.ndim !== 3 || queryEmbeds.shape[2] !== D || queryEmbeds.shape[1]! < 1) {
    throw new Error(`blip_2_qformer: query_embeds must be f32 [B, T, ${D}], got ${queryEmbeds.describe()}`);
  }
  const [B, T] = queryEmbeds.shape as [number, number, number];
  const enc = encoderHiddenStates;
  if (enc.dtype !== 'f32' || enc.ndim !== 3 || enc.shape[0] !== B || enc.shape[2] !== E || enc.shape[1]! < 1) {
    throw new Error(`blip_2_qformer: encoder_hidden_states must be f32 [${B}, S, ${E}] (encoder_hidden_size ${E}), got ${enc.describe()}`);
  }
  const Q = opts.queryLength ?? T;
  if (!Number.isInteger(Q) || Q < 0 || Q > T) throw new Error(`blip_2_qformer: queryLength ${Q} is outside [0, ${T}]`);
  const selfMask = keyMask('attention_mask', opts.attentionMask, B, T);
  const encMask = keyMask('encoder_attention_mask', opts.encoderAttentionMask, B, enc.shape[1]!);
  let x = F.layerNorm(queryEmbeds, params.layernorm.weight, params.layernorm.bias, cfg.layerNormEps); // dropout: identity at inference
  const hidden: Tensor[] | null = opts.outputHiddenStates ? [x] : null;
  params.encoder.layer.forEach((layer, i) => {
    const prev = x;
    x = tidy(() => layerForward(layer, i, cfg, prev, enc, Q, selfMask, encMask));
    hidden?.push(x);
  });
  return { lastHiddenState: x, poolerOutput: F.squeeze(F.slice(x, 1, 0, 1), 1), hiddenStates: hidden };
}

/** The Blip2Model path: learned queryTokens [1, Q, D] expanded over the batch of encoderHiddenStates [B, S, E]. */
export function forwardQFormerWithQueries(params: Blip2QFormerParams, cfg: Blip2QFormerConfig, queryTokens: Tensor, encoderHiddenStates: Tensor, opts: QFormerOptions = {}): QFormerOutput {
  if (queryTokens.ndim !== 3 || queryTokens.shape[0] !== 1 || queryTokens.shape[2] !== cfg.hiddenSize) {
    throw new Error(`blip_2_qformer: query_tokens must be [1, Q, ${cfg.hiddenSize}], got ${queryTokens.describe()}`);
  }
  if (encoderHiddenStates.ndim !== 3) throw new Error(`blip_2_qformer: encoder_hidden_states must be [B, S, E], got ${encoderHiddenStates.describe()}`);
  const q = F.expand(queryTokens, [encoderHiddenStates.shape[0]!, queryTokens.shape[1]!, cfg.hiddenSize]);
  return forwardQFormer(params, cfg, q, encoderHiddenStates, opts);
}

export const family: ModelFamily<Blip2QFormerConfig, Blip2QFormerParams> = {
  modelType: 'blip_2_qformer',
  parseConfig,
  init,
  inputs: ['encoder_hidden_states', 'query_embeds'],
  forward(params, cfg, inputs) {
    const enc = inputs.get('encoder_hidden_states');
    const q = inputs.get('query_embeds');
    if (enc === undefined) throw new Error('blip_2_qformer: missing input encoder_hidden_states');
    if (q === undefined) throw new Error('blip_2_qformer: missing input query_embeds (Blip2QFormerModel has no query tokens of its own)');
    // Optional HF arguments: attention masks, and query_length (a one-element integer tensor)
    // when query_embeds also carries text positions.
    const ql = inputs.get('query_length');
    if (ql !== undefined && ql.size !== 1) throw new Error(`blip_2_qformer: query_length must hold one integer, got ${ql.describe()}`);
    const out = forwardQFormer(params, cfg, q, enc, {
      attentionMask: inputs.get('attention_mask') ?? null,
      encoderAttentionMask: inputs.get('encoder_attention_mask') ?? null,
      ...(ql !== undefined ? { queryLength: F.item(ql) } : {}),
    });
    return new Map([['last_hidden_state', out.lastHiddenState], ['pooler_output', out.poolerOutput]]);
  },
};

// ---- text embeddings (BLIP-2 stage 1, InstructBLIP qformer_text_input) ---------------------------

/** BERT word + absolute position embeddings of the Q-Former's text side (LAVIS Qformer.bert.embeddings; HF InstructBlipQFormerEmbeddings). */
export interface QFormerTextEmbeddings {
  word_embeddings: { weight: Tensor }; // [Vt, D]
  position_embeddings: { weight: Tensor }; // [P, D]
}

/** N(0, initializer_range) tables; zeros when rng is null. */
export function initTextEmbeddings(cfg: Blip2QFormerConfig, vocabSize: number, maxPositions: number, rng: Rng | null): QFormerTextEmbeddings {
  const D = cfg.hiddenSize;
  return {
    word_embeddings: { weight: normalOrZero([vocabSize, D], cfg.initializerRange, rng) },
    position_embeddings: { weight: normalOrZero([maxPositions, D], cfg.initializerRange, rng) },
  };
}

/** ids i32 [B, Tt] -> word + position embeddings [B, Tt, D] (positions from 0; the Q-Former's input LayerNorm runs later, over [queries ; text]). */
export function textEmbeds(p: QFormerTextEmbeddings, ids: Tensor): Tensor {
  if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new Error(`blip_2_qformer: text ids must be i32 [B, T], got ${ids.describe()}`);
  const [V, D] = p.word_embeddings.weight.shape as [number, number];
  const P = p.position_embeddings.weight.shape[0]!, T = ids.shape[1]!;
  if (T > P) throw new Error(`blip_2_qformer: ${T} text tokens exceed the ${P} position embeddings`);
  for (const id of F.denseI32(ids)) if (id < 0 || id >= V) throw new Error(`blip_2_qformer: text id ${id} is outside the Q-Former vocabulary of ${V}`);
  const w = F.embedding(p.word_embeddings.weight, ids); // [B, T, D]
  return F.add(w, F.reshape(F.slice(p.position_embeddings.weight, 0, 0, T), [1, T, D]));
}
