// CogVLM (SPEC §10): an EVA-CLIP-style ViT (Chimera's clip_vision tower; CLS dropped) -> the GLU
// adapter Linear(Dv->D, no bias), LayerNorm, GELU, SwiGLU FFN of the LLM's inner size ->
// [boi ; image tokens ; eoi] right after BOS (or at the placeholder). Every decoder layer has a
// visual expert: its own QKV, attention output and SwiGLU FFN, used at positions flagged by the
// vision-expert mask (boi + image tokens, not eoi; hard routing by token type) while text
// positions keep the language weights; attention is one causal softmax over all positions.
// RoPE: all image tokens of an image share one position id, boi and eoi get their own, text
// continues after (HF CogVLM build_position_ids). The decoder's RoPE runs on slot indices, so the
// q/k hooks pre-rotate by (position id − slot) — rotations compose, R(p)·R(δ) = R(p + δ).
//
// Keys: vision_tower.vision_model.* (HF CLIP layout), linear_proj.{linear_proj, norm1,
// dense_h_to_4h, gate_proj, dense_4h_to_h} and boi/eoi [1, 1, D] (HF CogVLM model.vision.*); the
// experts sit in the LLaMA layers under HF CogVLM's names:
//   language_model.model.layers.N.self_attn.vision_expert_query_key_value.weight [H·Dh + 2·Hkv·Dh, D] (q|k|v rows)
//   language_model.model.layers.N.self_attn.vision_expert_dense.weight [D, H·Dh]
//   language_model.model.layers.N.mlp.vision_mlp.{gate_proj, up_proj, down_proj}.weight
// (HF CogVLM also fuses the language QKV; here the language weights keep LLaMA's q/k/v_proj.)
//
// Dims: V images, N patch tokens, Dv vision width, D LLM width, I LLM inner size, B rows, T step positions.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { noGrad } from '../../engine/autograd.ts';
import { constInit, leaf } from '../../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { initLayerNorm, layerNorm, type LayerNorm } from '../../nn/norm.ts';
import { ropeInvFreq, ropeTables } from '../../nn/rope.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import { llamaMlp, type LlamaConfig, type LlamaLayer, type LlamaMlp, type LlamaParams } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, HookStep, PreparedImage, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, vitGrid, type ClipTower } from './towers.ts';

export interface CogVlmConfig {
  vision: ClipTower;
  /** Patch tokens per image (CLS dropped). */
  patches: number;
  /** LLM positions per image: boi + patches + eoi. */
  positions: number;
  /** Whether image tokens share one RoPE position id (CogVLM); false: consecutive ids. */
  sharedPosition: boolean;
}

export interface GluAdapter {
  linear_proj: Linear; // [D, Dv], no bias
  norm1: LayerNorm; // [D]
  dense_h_to_4h: Linear; // [I, D] (up)
  gate_proj: Linear; // [I, D]
  dense_4h_to_h: Linear; // [D, I] (down)
}

export interface CogVlmParams {
  vision_tower: clip.ClipVisionParams;
  linear_proj: GluAdapter;
  boi: Tensor; // [1, 1, D]
  eoi: Tensor; // [1, 1, D]
}

export interface VisualExpertAttention {
  vision_expert_query_key_value: Linear; // [H·Dh + 2·Hkv·Dh, D]
  vision_expert_dense: Linear; // [D, H·Dh]
}

/** A LLaMA layer with its visual expert attached. */
export type CogLayer = LlamaLayer & { self_attn: LlamaLayer['self_attn'] & VisualExpertAttention; mlp: LlamaMlp & { vision_mlp: LlamaMlp } };

function parseConfig(r: ConfigReader, llm: LlamaConfig): CogVlmConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const G = vitGrid(vision.cfg.patchSize, vision.cfg.imageSize, `${r.source}:vision_tower`);
  void llm;
  return { vision, patches: G * G, positions: G * G + 2, sharedPosition: r.bool('shared_image_position', true) };
}

function info(): SystemInfo {
  return {
    template: 'cogvlm',
    layout: 'after-bos',
    keepPlaceholder: false,
    stages: {
      // SPEC §10.2: the visual expert and the adapter (with boi/eoi) train; the LLM and ViT are frozen.
      pretrain: ['linear_proj', 'boi', 'eoi', 'language_model.model.layers.*.self_attn.vision_expert_*', 'language_model.model.layers.*.mlp.vision_mlp'],
    },
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.8, topP: 0.4 },
  };
}

const copyLinear = (l: Linear): Linear => noGrad(() => ({ weight: leaf(F.clone(l.weight)), bias: l.bias === null ? null : leaf(F.clone(l.bias)) }));

/** The visual expert of a layer initialised as a copy of its language weights (SPEC §10.1 copy_param). */
export function attachVisualExpert(layer: LlamaLayer): CogLayer {
  const a = layer.self_attn;
  if (layer.mlp === null) throw new Error('cogvlm: the language model layer has no dense mlp to copy into the visual expert');
  const cat = (ls: Linear[]): Linear => noGrad(() => ({
    weight: leaf(F.concat(ls.map((l) => l.weight), 0)),
    bias: ls[0]!.bias === null ? null : leaf(F.concat(ls.map((l) => l.bias!), 0)),
  }));
  const L = layer as CogLayer;
  L.self_attn.vision_expert_query_key_value = cat([a.q_proj, a.k_proj, a.v_proj]);
  L.self_attn.vision_expert_dense = copyLinear(a.o_proj);
  const m = layer.mlp;
  L.mlp.vision_mlp = { gate_proj: copyLinear(m.gate_proj), up_proj: copyLinear(m.up_proj), down_proj: copyLinear(m.down_proj) };
  return L;
}

function init(cfg: CogVlmConfig, llm: LlamaConfig, rng: Rng | null, lm: LlamaParams): CogVlmParams {
  const D = llm.hiddenSize, I = llm.intermediateSize, Dv = cfg.vision.cfg.hiddenSize;
  const lin = (i: number, o: number): Linear => (rng ? initLinear(i, o, rng, false) : zeroLinear(i, o, false));
  for (const layer of lm.model.layers) attachVisualExpert(layer);
  return {
    vision_tower: clip.init(cfg.vision.cfg, rng),
    linear_proj: {
      linear_proj: lin(Dv, D),
      norm1: rng ? initLayerNorm(D) : { weight: constInit([D], 0), bias: constInit([D], 0) },
      dense_h_to_4h: lin(D, I),
      gate_proj: lin(D, I),
      dense_4h_to_h: lin(I, D),
    },
    boi: constInit([1, 1, D], 0), // SPEC §10.1: zeros init
    eoi: constInit([1, 1, D], 0),
  };
}

function plan(cfg: CogVlmConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: cfg.positions };
}

function prepare(cfg: CogVlmConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.vision.cfg.imageSize;
  const p = plan(cfg, image.width, image.height);
  const px = fromData(normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD), [1, 3, S, S]);
  return { size: [image.width, image.height], detail, views: p.views, positions: p.positions, pixels: { clip: px } };
}

/** GLU adapter: x [.., Dv] -> [.., D]. */
export function gluAdapter(p: GluAdapter, x: Tensor): Tensor {
  const h = F.gelu(layerNorm(p.norm1, linear(p.linear_proj, x))); // [.., D]
  return linear(p.dense_4h_to_h, F.mul(F.silu(linear(p.gate_proj, h)), linear(p.dense_h_to_4h, h)));
}

function encode(cfg: CogVlmConfig, params: CogVlmParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, S, S]
  const feats = runFrozen(params.vision_tower, () => F.slice(clip.forwardClipVision(params.vision_tower, cfg.vision.cfg, px).lastHiddenState, 1, 1)); // [V, N, Dv]
  const V = images.length, D = ctx.llm.hiddenSize;
  const tok = gluAdapter(params.linear_proj, feats); // [V, N, D]
  const all = F.concat([F.expand(params.boi, [V, 1, D]), tok, F.expand(params.eoi, [V, 1, D])], 1); // [V, N + 2, D]
  return images.map((_, i) => F.reshape(F.slice(all, 0, i, i + 1), [cfg.positions, D]));
}

// ---- decoder hooks ------------------------------------------------------------------------------

interface Routing {
  /** 1 = visual expert (boi and image tokens), per [B·T]. */
  expert: Uint8Array;
  anyExpert: boolean;
  /** RoPE position id minus slot index per [B·T]; null when all zero. */
  delta: Int32Array | null;
}

/**
 * Expert mask and RoPE shifts of a step. Image spans are runs of imageMask of length
 * `positions` (boi, N image tokens, eoi). A continuation step (P > 0) may not hold image
 * positions; its shift counts the images before it (mediaIndex + 1).
 */
export function cogRouting(cfg: CogVlmConfig, step: HookStep): Routing {
  const { B, T, P } = step;
  const n = cfg.positions, N = cfg.patches;
  const expert = new Uint8Array(B * T);
  const delta = new Int32Array(B * T);
  let anyExpert = false, anyDelta = false;
  for (let b = 0; b < B; b++) {
    let shift = 0;
    if (P > 0) {
      const j = step.mediaIndex[b * T]!;
      shift = cfg.sharedPosition ? -(N - 1) * (j + 1) : 0;
    }
    let o = -1; // offset inside the current image span
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (step.imageMask[i]) {
        if (P > 0) throw new Error('cogvlm: image positions in a cached continuation step (images must be in the first step)');
        o = (o + 1) % n;
        if (o < n - 1) { expert[i] = 1; anyExpert = true; }
        if (cfg.sharedPosition) {
          // boi: its own id; image tokens: one shared id (boi + 1); eoi: boi + 2; text after: eoi + 1.
          delta[i] = o === 0 ? shift : o <= N ? shift + 1 - o : shift - (N - 1);
          if (o === n - 1) shift -= N - 1;
        }
      } else {
        if (o !== -1 && o !== n - 1) throw new Error(`cogvlm: an image span of row ${b} has ${o + 1} positions, expected ${n}`);
        o = -1;
        delta[i] = shift;
      }
      if (delta[i] !== 0) anyDelta = true;
    }
  }
  return { expert, anyExpert, delta: anyDelta ? delta : null };
}

/** Rows of x [B, T, Din] through fText or fExpert by a [B·T] mask, reassembled in order: [B, T, Dout]. */
function routeRows(x: Tensor, mask: Uint8Array, fText: (t: Tensor) => Tensor, fExpert: (t: Tensor) => Tensor): Tensor {
  const [B, T, Din] = x.shape as [number, number, number];
  const ti: number[] = [], ei: number[] = [];
  for (let i = 0; i < B * T; i++) (mask[i] ? ei : ti).push(i);
  if (ei.length === 0) return fText(x);
  if (ti.length === 0) return fExpert(x);
  const xf = F.reshape(x, [B * T, Din]);
  const pick = (idx: number[]): Tensor => F.indexSelect(xf, 0, fromData(Int32Array.from(idx), [idx.length], 'i32'));
  const y = F.concat([fText(pick(ti)), fExpert(pick(ei))], 0); // [B·T, Dout] in (text, expert) order
  const inv = new Int32Array(B * T);
  ti.forEach((r, k) => { inv[r] = k; });
  ei.forEach((r, k) => { inv[r] = ti.length + k; });
  const out = F.indexSelect(y, 0, fromData(inv, [B * T], 'i32'));
  return F.reshape(out, [B, T, out.shape[1]!]);
}

function hooks(cfg: CogVlmConfig, lm: LlamaParams, llm: LlamaConfig, step: HookStep): SystemHooks {
  const r = cogRouting(cfg, step);
  if (!r.anyExpert && r.delta === null) return {};
  const { B, T, P } = step;
  const H = llm.numHeads, Hkv = llm.numKvHeads, Dh = llm.headDim;
  // [B, T, R/2], made here so it lives in the caller's scope for every layer.
  const rot = r.delta === null ? null : ropeTables(ropeInvFreq(llm.rope, P + T), r.delta, [B, T]);
  const rotate = (y: Tensor, heads: number): Tensor => {
    // y [B, T, heads·Dh] rotated by delta per position, the same layout back.
    if (rot === null) return y;
    const hh = F.permute(F.reshape(y, [B, T, heads, Dh]), [0, 2, 1, 3]); // [B, heads, T, Dh]
    return F.reshape(F.permute(F.rope(hh, rot.cos, rot.sin), [0, 2, 1, 3]), [B, T, heads * Dh]);
  };
  const rows = [0, H * Dh, H * Dh + Hkv * Dh, H * Dh + 2 * Hkv * Dh];
  const part = (l: Linear, k: number): Linear => ({
    weight: F.slice(l.weight, 0, rows[k]!, rows[k + 1]),
    bias: l.bias === null ? null : F.slice(l.bias, 0, rows[k]!, rows[k + 1]),
  });
  return {
    linear(layer, name, base, h) {
      const L = lm.model.layers[layer] as CogLayer;
      let expertLin: Linear;
      if (name === 'o_proj') expertLin = L.self_attn.vision_expert_dense;
      else expertLin = part(L.self_attn.vision_expert_query_key_value, name === 'q_proj' ? 0 : name === 'k_proj' ? 1 : 2);
      const y = r.anyExpert ? routeRows(h, r.expert, (t) => linear(base, t), (t) => linear(expertLin, t)) : linear(base, h);
      if (r.delta !== null && (name === 'q_proj' || name === 'k_proj')) return rotate(y, name === 'q_proj' ? H : Hkv);
      return y;
    },
    mlp(layer, h, base) {
      if (!r.anyExpert) return null;
      const L = lm.model.layers[layer] as CogLayer;
      if (base === null) throw new Error(`cogvlm: layer ${layer} has no language mlp`);
      return routeRows(h, r.expert, (t) => llamaMlp(base, t), (t) => llamaMlp(L.mlp.vision_mlp, t));
    },
  };
}

export const system: VlmSystem<CogVlmConfig, CogVlmParams> = {
  name: 'cogvlm', parseConfig, info, init, plan, prepare, encode,
  hooks(cfg, params, llm, step) { return hooks(cfg, params.language_model, llm, step); },
};

// ---- template -----------------------------------------------------------------------------------

// CogVLM's base prompt (utils/utils/language.py base_history_to_prompt): "Question: q Answer: a",
// turns joined by "\n"; the image sits right after BOS (layout 'after-bos').
registerTemplate({
  name: 'cogvlm',
  stopStrings: [],
  render(turns, generation) {
    const out: Segment[] = [{ special: 'bos' }];
    const rest = turns.filter((t) => t.role !== 'system');
    for (const t of rest) {
      const parts = t.parts.map((p) => ('text' in p ? { text: p.text, supervised: t.role === 'assistant' } : { image: p.image }));
      if (t.role === 'user') out.push({ text: 'Question: ' }, ...parts, { text: ' Answer:' });
      else out.push({ text: ' ' }, ...parts, { special: 'eos', supervised: true }, { text: '\n' });
    }
    if (generation && rest[rest.length - 1]?.role !== 'user') throw new Error('cogvlm template: the last turn must be the user\'s to generate a reply');
    return out;
  },
});

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [{
  name: 'cogvlm', system: 'cogvlm',
  // CogVLM-17B at 490 (SPEC §10.1): EVA2-CLIP-E, width 1792, 35×35 = 1225 tokens + boi + eoi;
  // depth 63, 16 heads, FFN 15360 not in SPEC (HF cogvlm-chat-hf vision_config). LLM Vicuna-7B
  // v1.5 (32 visual-expert layers, SPEC §10.1).
  real: () => ({
    system: 'cogvlm',
    vision_config: { vision_tower: clipConfig({ hidden: 1792, layers: 63, heads: 16, ffn: 15360, image: 490, patch: 14, act: 'gelu' }) },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 4096 }),
  }),
  tiny: () => ({
    system: 'cogvlm',
    vision_config: { vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14, act: 'gelu' }) },
    text_config: tinyLlama(),
  }),
}];
