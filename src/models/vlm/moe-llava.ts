// MoE-LLaVA (SPEC §11): the LLaVA-1.5 stack (CLIP-L/336, layer −2, 576 tokens, mlp2x_gelu;
// llava.ts does the vision side) with sparse mixture-of-experts feed-forwards in the LLM:
// moe_mode 'sparse' puts top-2-of-4 MoE in layers 0, 2, 4, … ('dense' every layer, 'first_half',
// 'second_half', or moe_layers_idx). Each MoE layer's experts start as copies of that layer's
// dense (stage-2) FFN (`upcycleMoeLlava`), so right after upcycling the model equals the dense one.
// Routing (DeepSpeed top2gating, nn/moe.ts): softmax gate, first choice argmax, second choice
// argmax of logits + Gumbel noise in training, weights renormalised over the kept slots, capacity
// max(ceil(2N/E·cf), min_capacity) with cf 1.5 in training. Balance loss
// E·Σ_e mean_n(g_e)·frac_top1_e (= SPEC's E²·mean_e(…)), summed over MoE layers × router_aux_loss_coef.
//
// Inference routes without Gumbel noise and, unless eval_capacity_factor is set, without capacity
// drops: DeepSpeed's eval capacity (cf 1.0) makes a token's slots depend on later tokens, so a
// cached decode could not equal a full pass. Set eval_capacity_factor: 1.0 for DeepSpeed's eval.
//
// Keys: vision_tower.*, mm_projector.* (llava.ts); MoE layers keep Mixtral's names,
// language_model.model.layers.N.block_sparse_moe.{gate, experts.E.{w1, w2, w3}} (gate = DeepSpeed
// wg, w1/w3/w2 = gate/up/down of the upcycled SwiGLU FFN), with layer N's mlp removed.
//
// Dims: N tokens of a step (B·T), D LLM width, E experts.

import { isGradEnabled } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import { Rng } from '../../engine/rng.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { sparseMoe, upcycleSparseMoe, type SparseMoe } from '../../nn/moe.ts';
import { zeroLinear } from '../../nn/linear.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig, LlamaLayer, LlamaParams } from '../llama.ts';
import * as llava from './llava.ts';
import type { HookStep, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { clipConfig, llamaConfig, tinyLlama } from './towers.ts';
import { LayerLosses } from './trainable.ts';

export interface MoeSettings {
  /** false: the dense stage-1/2 model (plain LLaVA-1.5 layers). */
  enabled: boolean;
  layers: number[];
  numExperts: number;
  topK: number;
  capacityFactor: number;
  /** null: no capacity drops at inference. */
  evalCapacityFactor: number | null;
  minCapacity: number;
  auxLossCoef: number;
  /** Seed of the Gumbel noise stream for second choices in training. */
  noiseSeed: number;
}

export interface MoeLlavaConfig {
  llava: llava.LlavaConfig;
  moe: MoeSettings;
}

export type MoeLlavaParams = llava.LlavaParams;

type MoeLayer = LlamaLayer & { block_sparse_moe: SparseMoe };

/** MoE layer indices of a moe_mode (MoE-LLaVA builder: sparse = every other layer from 0). */
export function moeLayers(mode: string, numLayers: number, custom: number[] | null, source = 'config.json'): number[] {
  if (custom !== null) {
    for (const l of custom) if (!Number.isInteger(l) || l < 0 || l >= numLayers) throw new Error(`${source}: moe_layers_idx entry ${l} is outside [0, ${numLayers})`);
    return [...new Set(custom)].sort((a, b) => a - b);
  }
  const all = Array.from({ length: numLayers }, (_, i) => i);
  switch (mode) {
    case 'sparse': return all.filter((i) => i % 2 === 0);
    case 'dense': return all;
    case 'first_half': return all.slice(0, numLayers >> 1);
    case 'second_half': return all.slice(numLayers >> 1);
    default: throw new Error(`${source}: moe_mode must be one of "sparse", "dense", "first_half", "second_half", got ${JSON.stringify(mode)}`);
  }
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): MoeLlavaConfig {
  const base = llava.system.parseConfig(r, llm);
  const m = r.sub('moe');
  const numExperts = m.int('num_experts', 4, 1);
  const topK = m.int('top_k_experts', 2, 1);
  if (topK > numExperts) throw new Error(`${m.source}: top_k_experts ${topK} exceeds num_experts ${numExperts}`);
  const custom = m.has('moe_layers_idx') && m.raw('moe_layers_idx') !== null ? m.intList('moe_layers_idx') : null;
  const moe: MoeSettings = {
    enabled: m.bool('moe_enable', true),
    layers: moeLayers(m.str('moe_mode', 'sparse'), llm.numLayers, custom, m.source),
    numExperts, topK,
    capacityFactor: m.num('capacity_factor', 1.5, Number.MIN_VALUE),
    evalCapacityFactor: m.has('eval_capacity_factor') && m.raw('eval_capacity_factor') !== null ? m.num('eval_capacity_factor', undefined, Number.MIN_VALUE) : null,
    minCapacity: m.int('min_capacity', 4, 0),
    auxLossCoef: m.num('router_aux_loss_coef', 0.01, 0),
    noiseSeed: m.int('router_noise_seed', 0, 0),
  };
  return { llava: base, moe };
}

function info(cfg: MoeLlavaConfig): SystemInfo {
  const base = llava.system.info(cfg.llava);
  if (!cfg.moe.enabled) return { ...base, stages: { pretrain: ['mm_projector'], finetune: ['mm_projector', 'language_model'] } };
  return {
    ...base,
    stages: {
      // SPEC §11.2. S1 and S2 are the dense recipe (run them on moe_enable: false and upcycle); on
      // the upcycled tree S2 also trains the experts and routers.
      pretrain: ['mm_projector'],
      finetune: ['mm_projector', 'language_model'],
      // S3: names containing fc1/fc2/wg — every FFN (the ordinary ones of non-MoE layers too), the experts and routers.
      moe: ['language_model.model.layers.*.mlp', 'language_model.model.layers.*.block_sparse_moe'],
    },
  };
}

/**
 * Stage-3 initialisation: each MoE layer's dense FFN becomes `numExperts` copies of itself and a
 * fresh router (rng null: a zero router). Edits `lm` in place; the dense weights are released.
 */
export function upcycleMoeLlava(moe: MoeSettings, lm: LlamaParams, rng: Rng | null): void {
  for (const l of moe.layers) {
    const layer = lm.model.layers[l]!;
    const dense = layer.mlp;
    if (dense === null) throw new Error(`moe-llava: layer ${l} has no dense mlp to upcycle (already upcycled?)`);
    const expert = { w1: dense.gate_proj, w2: dense.down_proj, w3: dense.up_proj };
    const D = dense.gate_proj.weight.shape[1]!;
    const sm = upcycleSparseMoe(expert, moe.numExperts, rng ?? new Rng(0));
    if (rng === null) { sm.gate.weight.dispose(); sm.gate = zeroLinear(D, moe.numExperts, false); }
    (layer as MoeLayer).block_sparse_moe = sm;
    for (const t of [dense.gate_proj, dense.up_proj, dense.down_proj]) { t.weight.dispose(); t.bias?.dispose(); }
    layer.mlp = null;
  }
}

function init(cfg: MoeLlavaConfig, llm: LlamaConfig, rng: Rng | null, lm: LlamaParams): MoeLlavaParams {
  const p = llava.system.init(cfg.llava, llm, rng, lm);
  if (cfg.moe.enabled) upcycleMoeLlava(cfg.moe, lm, rng);
  return p;
}

/** Gumbel noise streams per model (the language model's tree), seeded from the config. */
const noiseStreams = new WeakMap<LlamaParams, Rng>();

function hooks(cfg: MoeLlavaConfig, lm: LlamaParams, _step: HookStep): SystemHooks {
  const moe = cfg.moe;
  if (!moe.enabled) return {};
  const training = isGradEnabled();
  let noise: Rng | null = null;
  if (training) {
    noise = noiseStreams.get(lm) ?? new Rng(moe.noiseSeed);
    noiseStreams.set(lm, noise);
  }
  const losses = new LayerLosses();
  return {
    mlp(layer, h) {
      const p = (lm.model.layers[layer] as Partial<MoeLayer>).block_sparse_moe;
      if (p === undefined) return null; // a dense layer
      const cf = training ? moe.capacityFactor : moe.evalCapacityFactor;
      const { out, routing } = sparseMoe(p, h, {
        topK: moe.topK, balance: 'top1', normalize: true,
        capacityFactor: cf, minCapacity: moe.minCapacity, noiseRng: noise,
      });
      if (training && moe.auxLossCoef > 0) losses.add(routing.balanceLoss);
      return out;
    },
    auxLoss() {
      return losses.reduce('sum', moe.auxLossCoef); // summed over MoE layers (SPEC §11.1)
    },
  };
}

export const system: VlmSystem<MoeLlavaConfig, MoeLlavaParams> = {
  name: 'moe-llava',
  parseConfig,
  info,
  init,
  plan: (cfg, W, H, detail) => llava.system.plan(cfg.llava, W, H, detail),
  prepare: (cfg, image, detail) => llava.system.prepare(cfg.llava, image, detail),
  encode: (cfg, params, images, ctx) => llava.system.encode(cfg.llava, params, images, ctx),
  hooks(cfg, params, _llm, step) { return hooks(cfg, params.language_model, step); },
};

// ---- presets ------------------------------------------------------------------------------------

const moeSettings = { moe_enable: true, moe_mode: 'sparse', num_experts: 4, top_k_experts: 2, capacity_factor: 1.5, min_capacity: 4, router_aux_loss_coef: 0.01 };

export const presets: PresetDef[] = [{
  name: 'moe-llava', system: 'moe-llava',
  // MoE-LLaVA-Phi2 (SPEC §11.1): CLIP-L/336 at layer −2 (576 tokens), mlp2x_gelu, MoE in every
  // other layer, 4 experts, top-2, aux coef 0.01. The LLM is Phi-2 in MoE-LLaVA; here a
  // LLaMA-shaped decoder with Phi-2's dims (d 2560, 32 layers, 32 heads, FFN 10240, vocab 51200,
  // 2048 positions; Phi-2's partial rotary, LayerNorm and GELU MLP become LLaMA's).
  real: () => ({
    system: 'moe-llava',
    vision_config: {
      vision_tower: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 336, patch: 14 }),
      mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, image_aspect_ratio: 'pad',
      moe: moeSettings,
    },
    text_config: llamaConfig({ dim: 2560, layers: 32, heads: 32, ffn: 10240, vocab: 51200, maxPos: 2048 }),
  }),
  tiny: () => ({
    system: 'moe-llava',
    vision_config: {
      vision_tower: clipConfig({ hidden: 32, layers: 3, heads: 2, ffn: 64, image: 56, patch: 14 }),
      mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: -2, image_aspect_ratio: 'pad',
      moe: moeSettings,
    },
    text_config: tinyLlama(),
  }),
}];
