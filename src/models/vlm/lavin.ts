// LaVIN, Mixture-of-Modality Adaptation (SPEC §15): a frozen CLIP ViT whose CLS token is read
// after every `cls_every`-th block (6 tokens from ViT-L/14's 24 blocks) -> the visual adapter
// (AdapterMLP: Linear(Dv->128), SiLU, Linear(128->D)) -> the image's positions at its placeholder
// (the template writes LaVIN's "Image: " prefix, "Image: N/A" without an image). Every LLM layer
// gets a routed MM-adapter on the attention's normed input (adapter_type 'attn'):
//   x' = x + s·(w0·B(A(x)) + w1·D(A(x))),  A: D->8, B and D: 8->D grouped (2 groups), zero init,
//   w = softmax(Linear_{D->2}(router input) / t), t = 10.
// LaVIN routes on the first position, a modality token Embedding(2, D)[has image] prepended to
// the sequence. Chimera's sequence has no slot before BOS, so the modality embedding feeds the
// routers directly: layer l's router sees RMSNorm_l(modality embedding) (exactly LaVIN's input at
// layer 0; later layers in LaVIN see the token after l blocks). Routing therefore depends only on
// HookStep.hasImage and is identical for prefill and cached decode, as LaVIN's cached weights.
// Dropout (0.1 in LaVIN's adapters) is not applied; the ViT's router adapters are not included.
//
// Keys (LaVIN's names): vision_tower.vision_model.* (HF CLIP layout), adapter_proj.{conv_A, conv_B},
// adapter_modality_embedding.weight [2, D], language_model.model.layers.N.adapter_attn.{conv_A
// (weight [8, D, 1]), conv_B and conv_D (weight [D, 4, 1]), expert_weights (weight [2, D])}.
//
// Dims: V images, K CLS tokens, Dv vision width, D LLM width, R adapter rank (8), B rows, T step positions.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { constInit, normalInit, uniformInit } from '../../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { rmsNorm } from '../../nn/norm.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig, LlamaLayer, LlamaParams } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, HookStep, PreparedImage, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, type ClipTower } from './towers.ts';

export interface LavinConfig {
  vision: ClipTower;
  /** CLS read after blocks clsEvery, 2·clsEvery, ... */
  clsEvery: number;
  /** Visual tokens per image. */
  tokens: number;
  /** AdapterMLP hidden width (128). */
  projHidden: number;
  /** MM-adapter rank (8), groups of B/D (2), scale s (1), router temperature t (10). */
  rank: number;
  groups: number;
  scale: number;
  temperature: number;
}

export interface RouterAdapter {
  conv_A: Linear; // weight [R, D, 1], bias [R]
  conv_B: Linear; // weight [D, R/groups, 1], bias [D]
  conv_D: Linear; // weight [D, R/groups, 1], bias [D]
  expert_weights: Linear; // [2, D], bias [2]
}

export interface LavinParams {
  vision_tower: clip.ClipVisionParams;
  adapter_proj: { conv_A: Linear; conv_B: Linear }; // [Hp, Dv], [D, Hp]
  adapter_modality_embedding: { weight: Tensor }; // [2, D]
}

type LavinLayer = LlamaLayer & { adapter_attn: RouterAdapter };

function parseConfig(r: ConfigReader, llm: LlamaConfig): LavinConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const L = vision.cfg.numHiddenLayers;
  const clsEvery = r.int('cls_every', 4, 1, L);
  const rank = r.int('adapter_dim', 8, 1), groups = r.int('adapter_groups', 2, 1);
  if (rank % groups !== 0 || llm.hiddenSize % groups !== 0) throw new Error(`${r.source}: adapter_groups ${groups} must divide adapter_dim ${rank} and the LLM width ${llm.hiddenSize}`);
  return {
    vision, clsEvery, tokens: Math.floor(L / clsEvery), projHidden: r.int('adapter_proj_dim', 128, 1), rank, groups,
    scale: r.num('adapter_scale', 1), temperature: r.num('router_temperature', 10, Number.MIN_VALUE),
  };
}

function info(): SystemInfo {
  return {
    template: 'lavin',
    layout: 'placeholder',
    keepPlaceholder: false,
    // SPEC §15: every parameter whose name contains "adapter"; single stage.
    stages: { finetune: ['adapter_proj', 'adapter_modality_embedding', 'language_model.model.layers.*.adapter_attn'] },
    maxImages: 1,
    stopStrings: [],
    sampling: { temperature: 0.1, topP: 0.75 },
  };
}

/** xavier_uniform on a [out, in] (or [out, in, 1]) weight. */
function xavier(shape: number[], fanIn: number, fanOut: number, rng: Rng): Tensor {
  return uniformInit(shape, Math.sqrt(6 / (fanIn + fanOut)), rng);
}

export function initRouterAdapter(cfg: LavinConfig, D: number, rng: Rng | null): RouterAdapter {
  const R = cfg.rank, g = cfg.groups;
  return {
    conv_A: { weight: rng ? xavier([R, D, 1], D, R, rng) : constInit([R, D, 1], 0), bias: constInit([R], 0) },
    conv_B: { weight: constInit([D, R / g, 1], 0), bias: constInit([D], 0) }, // zero init
    conv_D: { weight: constInit([D, R / g, 1], 0), bias: constInit([D], 0) },
    expert_weights: rng ? initLinear(D, 2, rng) : zeroLinear(D, 2),
  };
}

function init(cfg: LavinConfig, llm: LlamaConfig, rng: Rng | null, lm: LlamaParams): LavinParams {
  const D = llm.hiddenSize, Dv = cfg.vision.cfg.hiddenSize, Hp = cfg.projHidden;
  for (const layer of lm.model.layers) (layer as LavinLayer).adapter_attn = initRouterAdapter(cfg, D, rng);
  const xl = (i: number, o: number): Linear => ({ weight: rng ? xavier([o, i], i, o, rng) : constInit([o, i], 0), bias: constInit([o], 0) });
  return {
    vision_tower: clip.init(cfg.vision.cfg, rng),
    adapter_proj: { conv_A: xl(Dv, Hp), conv_B: xl(Hp, D) },
    adapter_modality_embedding: { weight: rng ? normalInit([2, D], 1, rng) : constInit([2, D], 0) },
  };
}

function plan(cfg: LavinConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: cfg.tokens };
}

function prepare(cfg: LavinConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.vision.cfg.imageSize;
  const p = plan(cfg, image.width, image.height);
  const px = fromData(normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD), [1, 3, S, S]);
  return { size: [image.width, image.height], detail, views: p.views, positions: p.positions, pixels: { clip: px } };
}

/** CLS tokens after every clsEvery-th block, post-layernormed: [V, K, Dv]. */
export function lavinClsTokens(cfg: LavinConfig, p: clip.ClipVisionParams, px: Tensor): Tensor {
  const hs = clip.forwardClipVision(p, cfg.vision.cfg, px, { outputHiddenStates: true }).hiddenStates!; // (L + 1) × [V, 1+N, Dv]
  const cls: Tensor[] = [];
  for (let k = 1; k <= cfg.tokens; k++) cls.push(F.slice(hs[k * cfg.clsEvery]!, 1, 0, 1)); // [V, 1, Dv]
  return clip.postLayerNorm(p, cfg.vision.cfg, F.concat(cls, 1));
}

function encode(cfg: LavinConfig, params: LavinParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, S, S]
  const cls = runFrozen(params.vision_tower, () => lavinClsTokens(cfg, params.vision_tower, px)); // [V, K, Dv]
  const a = params.adapter_proj;
  const out = linear(a.conv_B, F.silu(linear(a.conv_A, cls))); // [V, K, D]
  return images.map((_, i) => F.reshape(F.slice(out, 0, i, i + 1), [cfg.tokens, ctx.llm.hiddenSize]));
}

// ---- MM-adapters ----------------------------------------------------------------------------------

/** A grouped 1×1 conv R -> D: a [.., R] -> [.., D]; weight [D, R/g, 1]. */
function groupedConv(l: Linear, a: Tensor, groups: number): Tensor {
  const [D, Rg] = l.weight.shape as [number, number, number];
  const w = F.reshape(l.weight, [D, Rg]);
  const Dg = D / groups;
  const outs: Tensor[] = [];
  for (let g = 0; g < groups; g++) outs.push(F.linear(F.slice(a, -1, g * Rg, (g + 1) * Rg), F.slice(w, 0, g * Dg, (g + 1) * Dg), null));
  const y = groups === 1 ? outs[0]! : F.concat(outs, -1);
  return l.bias === null ? y : F.add(y, l.bias);
}

/** Routing weights [B, 2] of one layer from the per-row modality embeddings. */
export function lavinRouterWeights(cfg: LavinConfig, p: RouterAdapter, layer: LlamaLayer, modality: Tensor, eps: number): Tensor {
  const x = rmsNorm(layer.input_layernorm, modality, eps); // [B, D]
  return F.softmax(F.scale(linear(p.expert_weights, x), 1 / cfg.temperature), -1);
}

/** The routed adapter on h [B, T, D] with weights w [B, 2]. */
export function routerAdapter(cfg: LavinConfig, p: RouterAdapter, h: Tensor, w: Tensor): Tensor {
  const B = h.shape[0]!;
  const Aw = F.reshape(p.conv_A.weight, [cfg.rank, h.shape[2]!]);
  const a = F.linear(h, Aw, p.conv_A.bias); // [B, T, R]
  const wb = F.reshape(F.slice(w, 1, 0, 1), [B, 1, 1]), wd = F.reshape(F.slice(w, 1, 1, 2), [B, 1, 1]);
  const mix = F.add(F.mul(groupedConv(p.conv_B, a, cfg.groups), wb), F.mul(groupedConv(p.conv_D, a, cfg.groups), wd)); // [B, T, D]
  return F.add(cfg.scale === 1 ? mix : F.scale(mix, cfg.scale), h);
}

function hooks(cfg: LavinConfig, params: LavinParams & { language_model: LlamaParams }, llm: LlamaConfig, step: HookStep): SystemHooks {
  const lm = params.language_model;
  const ids = fromData(Int32Array.from(step.hasImage, (x) => (x ? 1 : 0)), [step.B], 'i32');
  let cached: { layer: number; h: Tensor; out: Tensor } | null = null; // q, k and v of a layer share one adapter output
  return {
    linear(layer, name, base, h) {
      if (name === 'o_proj') return null;
      if (cached === null || cached.layer !== layer || cached.h !== h) {
        const L = lm.model.layers[layer] as LavinLayer;
        const modality = F.indexSelect(params.adapter_modality_embedding.weight, 0, ids); // [B, D]
        const w = lavinRouterWeights(cfg, L.adapter_attn, L, modality, llm.rmsNormEps);
        cached = { layer, h, out: routerAdapter(cfg, L.adapter_attn, h, w) };
      }
      return linear(base, cached.out);
    },
  };
}

export const system: VlmSystem<LavinConfig, LavinParams> = {
  name: 'lavin', parseConfig, info, init, plan, prepare, encode,
  hooks(cfg, params, llm, step) { return hooks(cfg, params, llm, step); },
};

// ---- template -----------------------------------------------------------------------------------

// "Image: " then the image (or "N/A"), then "Instruction: q\nResponse: a" turns. The "Image: "
// prefix is LaVIN's (SPEC §15); the instruction/response wording is not in SPEC.
registerTemplate({
  name: 'lavin',
  stopStrings: [],
  render(turns, generation) {
    const rest = turns.filter((t) => t.role !== 'system');
    const images = rest.flatMap((t) => t.parts.filter((p): p is { image: number } => 'image' in p));
    const out: Segment[] = [{ special: 'bos' }, { text: 'Image: ' }];
    if (images.length === 0) out.push({ text: 'N/A' });
    else out.push(...images.map((p) => ({ image: p.image })));
    out.push({ text: '\n' });
    for (const t of rest) {
      const text = t.parts.filter((p): p is { text: string } => 'text' in p).map((p) => p.text).join('');
      if (t.role === 'user') out.push({ text: `Instruction: ${text}\nResponse:` });
      else out.push({ text: ' ' }, { text, supervised: true }, { special: 'eos', supervised: true }, { text: '\n' });
    }
    if (generation && rest[rest.length - 1]?.role !== 'user') throw new Error('lavin template: the last turn must be the user\'s to generate a reply');
    return out;
  },
});

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [{
  name: 'lavin', system: 'lavin',
  // LaVIN-7B (SPEC §15): CLIP ViT-L/14 at 224, CLS after every 4th of 24 blocks (6 tokens × 1024),
  // AdapterMLP 1024 -> 128 -> 4096, rank-8 adapters in 2 groups, t = 10; LLaMA-7B.
  real: () => ({
    system: 'lavin',
    vision_config: {
      vision_tower: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 224, patch: 14 }),
      cls_every: 4, adapter_proj_dim: 128, adapter_dim: 8, adapter_groups: 2, adapter_scale: 1, router_temperature: 10,
    },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 2048 }),
  }),
  tiny: () => ({
    system: 'lavin',
    vision_config: {
      vision_tower: clipConfig({ hidden: 32, layers: 4, heads: 2, ffn: 64, image: 56, patch: 14 }),
      cls_every: 2, adapter_proj_dim: 16, adapter_dim: 8, adapter_groups: 2, adapter_scale: 1, router_temperature: 10,
    },
    text_config: tinyLlama(),
  }),
}];
