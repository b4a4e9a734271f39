// LLaMA decoder (Hugging Face LlamaForCausalLM; Mistral configs share it): pre-RMSNorm blocks of
// rotary grouped-query attention and a SwiGLU MLP, a final RMSNorm and an LM head (optionally
// tied to the token embedding). Parameter paths equal HF checkpoint keys.
//
// Dims: B batch, T new tokens, P cached positions, S = P + T visible slots, D hidden_size,
// H heads, Hkv kv heads, Dh head_dim, R rotary dim, I intermediate_size, V vocab_size.

import { isGradEnabled, noGrad } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../engine/tensor.ts';
import { cachedAttention, type SlotMask } from '../nn/attention.ts';
import { constInit, normalInit } from '../nn/init.ts';
import { KVCache } from '../nn/kv-cache.ts';
import { linear, type Linear } from '../nn/linear.ts';
import { rmsNorm, type RMSNorm } from '../nn/norm.ts';
import { parseRopeScaling, ropeInvFreq, ropeTables, type RopeSpec, type RopeTables } from '../nn/rope.ts';
import type { CausalLM, ForwardOptions, KVCache as CacheHandle } from './causal-lm.ts';
import { ConfigReader } from './config.ts';
import type { ModelFamily } from './registry.ts';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** max_position_embeddings. */
  maxPositions: number;
  rmsNormEps: number;
  rope: RopeSpec;
  attentionBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  initializerRange: number;
  /** Mistral's sliding_window: a query sees the last `slidingWindow` slots only (null: all). */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
}

export interface LlamaAttention {
  q_proj: Linear; // [H*Dh, D]
  k_proj: Linear; // [Hkv*Dh, D]
  v_proj: Linear; // [Hkv*Dh, D]
  o_proj: Linear; // [D, H*Dh]
}

export interface LlamaMlp {
  gate_proj: Linear; // [I, D]
  up_proj: Linear; // [I, D]
  down_proj: Linear; // [D, I]
}

export interface LlamaLayer {
  input_layernorm: RMSNorm; // [D]
  self_attn: LlamaAttention;
  post_attention_layernorm: RMSNorm; // [D]
  /** Null where a hook supplies the feed-forward (a sparse MoE layer keeps its weights elsewhere). */
  mlp: LlamaMlp | null;
}

export type LlamaLinearName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj';

/**
 * Extension points for bridges that change the decoder (Flamingo's gated cross-attention,
 * CogVLM's visual expert, MoE feed-forwards, LaVIN's adapters). Each hook sees the step's new
 * positions only ([B, T, ...]); returning null keeps the default computation.
 */
export interface DecoderHooks {
  /** Residual stream entering layer l [B, T, D] -> its replacement. */
  beforeLayer?(layer: number, x: Tensor): Tensor;
  /** An attention projection of layer l on its normed input h [B, T, D_in]. */
  linear?(layer: number, name: LlamaLinearName, base: Linear, h: Tensor): Tensor | null;
  /** The feed-forward of layer l on its normed input h [B, T, D]. */
  mlp?(layer: number, h: Tensor, base: LlamaMlp | null): Tensor | null;
}

export interface LlamaParams {
  model: {
    embed_tokens: { weight: Tensor }; // [V, D]
    layers: LlamaLayer[];
    norm: RMSNorm; // [D]
  };
  /** [V, D]; null when tie_word_embeddings (the head reuses embed_tokens). */
  lm_head: { weight: Tensor } | null;
}

// ---- config ----------------------------------------------------------------------------------

function optionalTokenIds(r: ConfigReader, key: string): number[] {
  if (!r.has(key)) return [];
  const v = r.raw(key);
  if (typeof v === 'number') return [r.int(key, undefined, 0)];
  return r.intList(key);
}

/** Parses a LlamaConfig / MistralConfig config.json; errors name the key and the file. */
export function parseLlamaConfig(json: unknown, source = 'config.json'): LlamaConfig {
  const r = new ConfigReader(json, source);
  const act = r.str('hidden_act', 'silu');
  if (act !== 'silu' && act !== 'swish') throw new Error(`${source}: 'hidden_act' must be "silu" for llama, got ${JSON.stringify(act)}`);
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new Error(`${source}: 'num_key_value_heads' (${numKvHeads}) must divide 'num_attention_heads' (${numHeads})`);
  }
  let headDim: number;
  if (r.has('head_dim')) headDim = r.int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0) throw new Error(`${source}: 'num_attention_heads' (${numHeads}) must divide 'hidden_size' (${hiddenSize}) when 'head_dim' is not given`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) throw new Error(`${source}: head dim ${headDim} ('head_dim' or hidden_size / num_attention_heads) must be even for rotary embeddings`);
  if (r.has('partial_rotary_factor') && r.num('partial_rotary_factor') !== 1) {
    throw new Error(`${source}: 'partial_rotary_factor' must be 1 for llama (HF LlamaAttention rotates whole heads), got ${r.raw('partial_rotary_factor')}`);
  }
  const maxPositions = r.int('max_position_embeddings', 2048);
  let theta = r.num('rope_theta', 10000, Number.MIN_VALUE);
  let scaling = r.has('rope_scaling') ? parseRopeScaling(r.sub('rope_scaling')) : null;
  if (r.has('rope_parameters')) {
    // transformers v5 layout: rope_theta and the scaling fields live in one object.
    const rp = r.sub('rope_parameters');
    theta = rp.num('rope_theta', theta, Number.MIN_VALUE);
    scaling = parseRopeScaling(rp);
  }
  // Some exports write -1 for "no padding token"; any integer is accepted, out-of-range ones mean none.
  const tokenId = (key: string): number | null => (r.has(key) ? r.int(key, undefined, -(2 ** 31)) : null);
  const padTokenId = tokenId('pad_token_id');
  return {
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    rmsNormEps: r.num('rms_norm_eps', 1e-6, 0),
    rope: { theta, rotaryDim: headDim, maxPositions, scaling },
    attentionBias: r.bool('attention_bias', false),
    mlpBias: r.bool('mlp_bias', false),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    initializerRange: r.num('initializer_range', 0.02, 0),
    slidingWindow: r.has('sliding_window') ? r.int('sliding_window') : null,
    bosTokenId: tokenId('bos_token_id'),
    eosTokenIds: optionalTokenIds(r, 'eos_token_id'),
    padTokenId,
  };
}

/** Longest sequence accepted: max_position_embeddings, times the factor under dynamic NTK scaling. */
export function llamaPositionLimit(cfg: LlamaConfig): number {
  const s = cfg.rope.scaling;
  return s !== null && s.type === 'dynamic' ? Math.floor(cfg.maxPositions * s.factor) : cfg.maxPositions;
}

// ---- parameters ------------------------------------------------------------------------------

/**
 * The parameter tree. With an rng: HF's _init_weights (linear and embedding weights N(0,
 * initializer_range), biases 0, norms 1, the padding token's embedding row 0). With null: all zeros.
 */
export function initLlama(cfg: LlamaConfig, rng: Rng | null): LlamaParams {
  const { hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: Hkv, headDim: Dh, vocabSize: V } = cfg;
  const std = cfg.initializerRange;
  const weight = (shape: number[]): Tensor => (rng ? normalInit(shape, std, rng) : constInit(shape, 0));
  const lin = (inF: number, outF: number, bias: boolean): Linear => ({ weight: weight([outF, inF]), bias: bias ? constInit([outF], 0) : null });
  const norm = (): RMSNorm => ({ weight: constInit([D], rng ? 1 : 0) });
  const embed = weight([V, D]);
  if (rng && cfg.padTokenId !== null && cfg.padTokenId >= 0 && cfg.padTokenId < V) embed.data.fill(0, cfg.padTokenId * D, (cfg.padTokenId + 1) * D);
  const layers = Array.from({ length: cfg.numLayers }, (): LlamaLayer => ({
    input_layernorm: norm(),
    self_attn: {
      q_proj: lin(D, H * Dh, cfg.attentionBias),
      k_proj: lin(D, Hkv * Dh, cfg.attentionBias),
      v_proj: lin(D, Hkv * Dh, cfg.attentionBias),
      o_proj: lin(H * Dh, D, cfg.attentionBias),
    },
    post_attention_layernorm: norm(),
    mlp: { gate_proj: lin(D, I, cfg.mlpBias), up_proj: lin(D, I, cfg.mlpBias), down_proj: lin(I, D, cfg.mlpBias) },
  }));
  return {
    model: { embed_tokens: { weight: embed }, layers, norm: norm() },
    lm_head: cfg.tieWordEmbeddings ? null : { weight: weight([V, D]) },
  };
}

// ---- forward ---------------------------------------------------------------------------------

export interface LlamaRunOptions {
  /** Keys/values of earlier positions; the step's own are appended (see KVCache). */
  cache?: KVCache | null;
  /** [B, P + T] (bool, or any numeric dtype: nonzero = real token); left padding. */
  attentionMask?: Tensor | null;
  /** Only the last position's output: [B, 1, ...]. */
  lastOnly?: boolean;
  hooks?: DecoderHooks | null;
}

/** Token embeddings [B, T, D] of i32 ids [B, T]; an id outside [0, V) throws naming vocab_size. */
export function llamaEmbed(p: LlamaParams, cfg: LlamaConfig, ids: Tensor): Tensor {
  if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new Error(`llama: input_ids must be i32 [B, T], got ${ids.describe()}`);
  const d = F.denseI32(ids), V = cfg.vocabSize, T = ids.shape[1]!;
  for (let i = 0; i < d.length; i++) {
    const t = d[i]!;
    if (t < 0 || t >= V) throw new Error(`llama: token id ${t} at [${Math.floor(i / T)}, ${i % T}] is outside [0, ${V}) (vocab_size ${V})`);
  }
  return F.embedding(p.model.embed_tokens.weight, ids);
}

/** Nonzero entries of a mask tensor of shape [B, S] as 0/1 bytes. */
function maskBytes(mask: Tensor, B: number, S: number): Uint8Array {
  if (mask.ndim !== 2 || mask.shape[0] !== B || mask.shape[1] !== S) {
    throw new Error(`llama: attention_mask ${mask.describe()} must be [B, cached + new] = [${B}, ${S}]`);
  }
  const src = mask.dtype === 'bool' || mask.dtype === 'u8' ? F.denseU8(mask) : mask.dtype === 'i32' ? F.denseI32(mask) : F.denseData(F.cast(mask, 'f32'));
  const out = new Uint8Array(B * S);
  for (let i = 0; i < out.length; i++) out[i] = src[i] !== 0 ? 1 : 0;
  return out;
}

/** Visibility of one step: which slots each row's queries may see, besides causality. */
interface StepMask {
  /** Padding (and sliding-window) mask, or null when every slot is visible. */
  slots: SlotMask | null;
  /** The same as a bool tensor [B, 1, 1 | T, S] for F.attention. */
  tensor: Tensor | null;
}

function stepMask(B: number, T: number, P: number, rowMask: SlotMask | null, window: number | null): StepMask {
  const S = P + T;
  let slots = rowMask;
  if (window !== null && S > window) {
    // Slot-based window as HF Mistral: query slot P + i sees slot j iff P + i - j < window.
    const m = new Uint8Array(B * T * S);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const o = (b * T + i) * S;
        for (let j = Math.max(0, P + i - window + 1); j < S; j++) m[o + j] = rowMask === null ? 1 : rowMask.data[b * rowMask.strideB + j]!;
      }
    }
    slots = { data: m, strideB: T * S, strideQ: S };
  }
  if (slots === null) return { slots, tensor: null };
  const Q = slots.strideQ !== 0 ? T : 1;
  const dense = new Uint8Array(B * Q * S);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Q; i++) {
      const o = b * slots.strideB + i * slots.strideQ;
      dense.set(slots.data.subarray(o, o + S), (b * Q + i) * S);
    }
  }
  return { slots, tensor: fromData(dense, [B, 1, Q, S], 'bool') };
}

/** Rotary tables for the step: shared [T, R/2] without padding, per row [B, T, R/2] with it. */
function stepRope(cfg: LlamaConfig, B: number, T: number, P: number, rowMask: SlotMask | null): RopeTables {
  const S = P + T;
  if (rowMask === null) {
    const pos = Int32Array.from({ length: T }, (_, t) => P + t);
    return ropeTables(ropeInvFreq(cfg.rope, S), pos, [T]);
  }
  // HF: position_ids = cumsum(mask) - 1 (clamped at 0 for leading padding).
  const pos = new Int32Array(B * T);
  let maxPos = 0;
  for (let b = 0; b < B; b++) {
    const row = rowMask.data.subarray(b * rowMask.strideB, b * rowMask.strideB + S);
    let count = 0;
    for (let j = 0; j < S; j++) {
      count += row[j]!;
      if (j >= P) {
        const v = Math.max(0, count - 1);
        pos[b * T + j - P] = v;
        if (v > maxPos) maxPos = v;
      }
    }
  }
  return ropeTables(ropeInvFreq(cfg.rope, maxPos + 1), pos, [B, T]);
}

interface StepContext {
  B: number;
  T: number;
  P: number;
  rope: RopeTables;
  mask: StepMask;
  cache: KVCache | null;
  hooks: DecoderHooks | null;
}

function attentionBlock(p: LlamaAttention, cfg: LlamaConfig, h: Tensor, layer: number, ctx: StepContext): Tensor {
  const { B, T, P, cache } = ctx;
  const H = cfg.numHeads, Hkv = cfg.numKvHeads, Dh = cfg.headDim;
  const heads = (t: Tensor, n: number): Tensor => F.permute(F.reshape(t, [B, T, n, Dh]), [0, 2, 1, 3]); // view [B, n, T, Dh]
  const proj = (name: LlamaLinearName, x: Tensor): Tensor => ctx.hooks?.linear?.(layer, name, p[name], x) ?? linear(p[name], x);
  const q = F.rope(heads(proj('q_proj', h), H), ctx.rope.cos, ctx.rope.sin); // [B, H, T, Dh]
  const k = F.rope(heads(proj('k_proj', h), Hkv), ctx.rope.cos, ctx.rope.sin); // [B, Hkv, T, Dh]
  const v = heads(proj('v_proj', h), Hkv); // [B, Hkv, T, Dh] (strided view)
  let o: Tensor; // [B, H, T, Dh]
  const grad = isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad);
  if (cache === null) {
    o = F.attention(q, k, v, { causal: true, mask: ctx.mask.tensor });
  } else if (!grad) {
    cache.write(layer, k, v);
    o = cachedAttention(q, cache.keys[layer]!, cache.values[layer]!, P + T, { causal: true, mask: ctx.mask.slots });
  } else {
    // A step that carries a graph: past keys/values are constants, the step's own stay differentiable.
    const past = cache.view(layer, P);
    const kAll = P > 0 ? F.concat([past.k, k], 2) : k; // [B, Hkv, S, Dh]
    const vAll = P > 0 ? F.concat([past.v, v], 2) : v;
    o = F.attention(q, kAll, vAll, { causal: true, mask: ctx.mask.tensor });
    cache.write(layer, k, v);
  }
  const merged = F.reshape(F.transpose(o, 1, 2), [B, T, H * Dh]); // [B, T, H*Dh]
  return proj('o_proj', merged); // [B, T, D]
}

/** SwiGLU feed-forward [B, T, D] -> [B, T, D]. */
export function llamaMlp(p: LlamaMlp, h: Tensor): Tensor {
  return linear(p.down_proj, F.mul(F.silu(linear(p.gate_proj, h)), linear(p.up_proj, h))); // [B, T, D]
}

function mlpBlock(p: LlamaMlp | null, h: Tensor, layer: number, hooks: DecoderHooks | null): Tensor {
  const out = hooks?.mlp?.(layer, h, p) ?? null;
  if (out !== null) return out;
  if (p === null) throw new Error(`llama: layer ${layer} has no mlp weights and no hook supplied its feed-forward`);
  return llamaMlp(p, h);
}

/**
 * Final hidden states (after model.norm) [B, T, D] ([B, 1, D] with lastOnly), from i32 ids
 * [B, T] or input embeddings f32 [B, T, D] (multimodal bridges splice their tokens there).
 * With a cache, the step runs after its P positions and appends its keys/values. Records a
 * graph when grad is enabled and parameters require it.
 */
export function llamaHidden(p: LlamaParams, cfg: LlamaConfig, input: Tensor, opts: LlamaRunOptions = {}): Tensor {
  return tidy(() => {
    let x: Tensor; // [B, T, D]
    if (input.dtype === 'i32') x = llamaEmbed(p, cfg, input);
    else if (input.dtype === 'f32' && input.ndim === 3 && input.shape[2] === cfg.hiddenSize) x = input;
    else throw new Error(`llama: input must be i32 input_ids [B, T] or f32 inputs_embeds [B, T, ${cfg.hiddenSize}], got ${input.describe()}`);
    const [B, T] = x.shape as [number, number];
    const cache = opts.cache ?? null;
    if (cache !== null && (cache.layers !== cfg.numLayers || cache.kvHeads !== cfg.numKvHeads || cache.headDim !== cfg.headDim || cache.batch !== B)) {
      throw new Error(`llama: cache [layers ${cache.layers}, batch ${cache.batch}, kv heads ${cache.kvHeads}, head dim ${cache.headDim}] does not fit this model and batch ${B} ([${cfg.numLayers}, ${B}, ${cfg.numKvHeads}, ${cfg.headDim}])`);
    }
    const P = cache === null ? 0 : cache.length, S = P + T;
    const limit = llamaPositionLimit(cfg);
    if (S > limit) throw new Error(`llama: ${S} positions (${P} cached + ${T} new) exceed max_position_embeddings ${limit}`);
    if (T === 0) throw new Error('llama: input has no tokens (T = 0)');
    const given = opts.attentionMask ? maskBytes(opts.attentionMask, B, S) : null;
    let rowMask: SlotMask | null = null;
    if (cache !== null) {
      if (cache.begin(T, given)) rowMask = { data: cache.slotMask, strideB: cache.capacity, strideQ: 0 };
    } else if (given !== null && given.includes(0)) rowMask = { data: given, strideB: S, strideQ: 0 };
    const hooks = opts.hooks ?? null;
    const ctx: StepContext = { B, T, P, cache, hooks, rope: stepRope(cfg, B, T, P, rowMask), mask: stepMask(B, T, P, rowMask, cfg.slidingWindow) };
    const eps = cfg.rmsNormEps;
    for (let l = 0; l < p.model.layers.length; l++) {
      const lp = p.model.layers[l]!;
      const prev = x;
      x = tidy(() => {
        const xin = hooks?.beforeLayer ? hooks.beforeLayer(l, prev) : prev;
        const a = F.add(xin, attentionBlock(lp.self_attn, cfg, rmsNorm(lp.input_layernorm, xin, eps), l, ctx));
        return F.add(a, mlpBlock(lp.mlp, rmsNorm(lp.post_attention_layernorm, a, eps), l, hooks));
      });
      if (prev !== input) prev.dispose();
    }
    cache?.commit(T);
    const last = opts.lastOnly ? F.slice(x, 1, T - 1) : x; // [B, 1 | T, D]
    return rmsNorm(p.model.norm, last, eps);
  });
}

/** Logits [B, T, V] of final hidden states [B, T, D]. */
export function llamaHead(p: LlamaParams, hidden: Tensor): Tensor {
  return F.linear(hidden, p.lm_head === null ? p.model.embed_tokens.weight : p.lm_head.weight);
}

/** Logits [B, T, V] ([B, 1, V] with lastOnly) from ids [B, T] or inputs_embeds [B, T, D]. */
export function llamaForward(p: LlamaParams, cfg: LlamaConfig, input: Tensor, opts: LlamaRunOptions = {}): Tensor {
  return tidy(() => llamaHead(p, llamaHidden(p, cfg, input, opts)));
}

// ---- CausalLM --------------------------------------------------------------------------------

/** The generation interface over a loaded LLaMA. Inference only: no graph is recorded. */
export class LlamaModel implements CausalLM {
  readonly params: LlamaParams;
  readonly config: LlamaConfig;

  constructor(params: LlamaParams, config: LlamaConfig) {
    this.params = params;
    this.config = config;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get maxPositions(): number {
    return llamaPositionLimit(this.config);
  }

  newCache(batch: number, capacity: number): KVCache {
    if (capacity > this.maxPositions) throw new Error(`llama: cache capacity ${capacity} exceeds max_position_embeddings ${this.maxPositions}`);
    return new KVCache(this.config.numLayers, batch, this.config.numKvHeads, this.config.headDim, capacity);
  }

  private cacheOf(cache: CacheHandle): KVCache {
    if (!(cache instanceof KVCache)) throw new Error('llama: the cache must come from newCache()');
    return cache;
  }

  /** Logits [B, T, V] for ids [B, T] (or inputs_embeds [B, T, D]) after the cache's contents. */
  forward(tokens: Tensor, cache: CacheHandle, opts: ForwardOptions = {}): Tensor {
    const c = this.cacheOf(cache);
    return noGrad(() => llamaForward(this.params, this.config, tokens, { cache: c, attentionMask: opts.attentionMask ?? null, lastOnly: opts.lastOnly ?? false }));
  }

  /** Final hidden states [B, T, D] instead of logits (same inputs as forward). */
  hidden(input: Tensor, cache: CacheHandle | null, opts: ForwardOptions = {}): Tensor {
    const c = cache === null ? null : this.cacheOf(cache);
    return noGrad(() => llamaHidden(this.params, this.config, input, { cache: c, attentionMask: opts.attentionMask ?? null, lastOnly: opts.lastOnly ?? false }));
  }

  /** Token embeddings [B, T, D] (to splice other modalities before `forward`). */
  embed(ids: Tensor): Tensor {
    return noGrad(() => llamaEmbed(this.params, this.config, ids));
  }
}

export const family: ModelFamily<LlamaConfig, LlamaParams> = {
  modelType: 'llama',
  parseConfig: parseLlamaConfig,
  init: initLlama,
  // Rotary buffers some exports keep; a tied head some checkpoints store anyway (HF ties it on load).
  ignoreKeys: [/(^|\.)rotary_emb\.inv_freq$/, /^lm_head\.weight$/],
  inputs: ['input_ids'],
  forward(params, cfg, inputs) {
    const ids = inputs.get('input_ids');
    if (ids === undefined) throw new Error(`llama: missing input 'input_ids' (got ${[...inputs.keys()].join(', ') || 'none'})`);
    return new Map([['logits', llamaForward(params, cfg, ids, { attentionMask: inputs.get('attention_mask') ?? null })]]);
  },
};
