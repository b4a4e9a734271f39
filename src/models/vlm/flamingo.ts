// Flamingo / OpenFlamingo (SPEC §7): a frozen CLIP ViT's patch tokens (after ln_post, CLS
// dropped) go through a Perceiver Resampler (§7.2) to `num_latents` media tokens per image; the
// frozen LLaMA decoder gets a tanh-gated cross-attention dense block (§7.3) before every layer l
// with (l + 1) % cross_attn_every_n_layers == 0. Images take no LLM positions: the `<image>`
// placeholder stays in the text and marks the media location; a text token attends only to the
// latest image at or before it (only_attend_immediate_media) — HookStep.mediaIndex — and tokens
// before the first image get a zero cross-attention output. Both gates start at 0, so a fresh
// model is exactly its language model.
//
// Keys (OpenFlamingo's names where it has them): vision_encoder.vision_model.* (HF CLIP layout),
// perceiver.* (bridges/perceiver.ts), gated_cross_attn_layers.<layer>.* (bridges/gated-xattn.ts;
// OpenFlamingo keeps them at lang_encoder.gated_cross_attn_layers.<layer>).
//
// Dims: V images, N patch tokens, Dv vision width, L latents per image, Ti images of a row,
// B rows, T positions in a step, D LLM width, Hh xattn heads, Dh xattn head dim.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initGatedXAttn, type GatedXAttnConfig, type GatedXAttnParams } from '../../bridges/gated-xattn.ts';
import { feedForward, initPerceiver, perceiver, type PerceiverConfig, type PerceiverParams } from '../../bridges/perceiver.ts';
import { mergeHeads, splitHeads } from '../../nn/vit.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig, LlamaParams } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, HookStep, PreparedImage, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, vitGrid, type ClipTower } from './towers.ts';

export interface FlamingoConfig {
  vision: ClipTower;
  perceiver: PerceiverConfig;
  xattn: GatedXAttnConfig;
  /** A gated block goes before decoder layer l when (l + 1) % every === 0. */
  every: number;
  /** Decoder layers that carry a gated block. */
  xattnLayers: number[];
  /** Patch tokens per image (CLS dropped). */
  patches: number;
}

export interface FlamingoParams {
  vision_encoder: clip.ClipVisionParams;
  perceiver: PerceiverParams;
  /** Keyed by decoder layer index. */
  gated_cross_attn_layers: Record<string, GatedXAttnParams>;
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): FlamingoConfig {
  const vision = parseClipTower(r, 'vision_encoder');
  const Dv = vision.cfg.hiddenSize;
  const p = r.sub('perceiver');
  const perceiverCfg: PerceiverConfig = {
    dim: Dv, depth: p.int('depth', 6, 1), heads: p.int('heads', 8, 1), dimHead: p.int('dim_head', 64, 1),
    numLatents: p.int('num_latents', 64, 1), ffMult: p.int('ff_mult', 4, 1),
  };
  const x = r.sub('xattn');
  const xattn: GatedXAttnConfig = {
    dim: llm.hiddenSize, dimVisual: Dv, heads: x.int('heads', 8, 1), dimHead: x.int('dim_head', 64, 1), ffMult: x.int('ff_mult', 4, 1),
    onlyAttendImmediateMedia: r.bool('only_attend_immediate_media', true),
  };
  const every = r.int('cross_attn_every_n_layers', 1, 1, llm.numLayers);
  const xattnLayers: number[] = [];
  for (let l = 0; l < llm.numLayers; l++) if ((l + 1) % every === 0) xattnLayers.push(l);
  const G = vitGrid(vision.cfg.patchSize, vision.cfg.imageSize, `${r.source}:vision_encoder`);
  return { vision, perceiver: perceiverCfg, xattn, every, xattnLayers, patches: G * G };
}

function info(): SystemInfo {
  return {
    template: 'flamingo',
    layout: 'placeholder',
    keepPlaceholder: true,
    // SPEC §7.3: the resampler and the gated layers train; the vision encoder and LM are frozen
    // (OpenFlamingo's optional input-embedding training is not offered).
    stages: { train: ['perceiver', 'gated_cross_attn_layers'] },
    maxImages: 16,
    stopStrings: ['<|endofchunk|>'],
    sampling: { temperature: 1, topP: 1 },
  };
}

function init(cfg: FlamingoConfig, _llm: LlamaConfig, rng: Rng | null): FlamingoParams {
  const gated: Record<string, GatedXAttnParams> = {};
  const vision_encoder = clip.init(cfg.vision.cfg, rng);
  const p = initPerceiver(cfg.perceiver, rng);
  for (const l of cfg.xattnLayers) gated[String(l)] = initGatedXAttn(cfg.xattn, rng);
  return { vision_encoder, perceiver: p, gated_cross_attn_layers: gated };
}

function plan(cfg: FlamingoConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: 0 };
}

function prepare(cfg: FlamingoConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.vision.cfg.imageSize;
  const p = plan(cfg, image.width, image.height);
  const px = fromData(normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD), [1, 3, S, S]);
  return { size: [image.width, image.height], detail, views: p.views, positions: 0, pixels: { clip: px } };
}

/** Media tokens per image: [L, Dv] each. */
function encode(cfg: FlamingoConfig, params: FlamingoParams, images: readonly PreparedImage[], _ctx: EncodeContext): Tensor[] {
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, S, S]
  const feats = runFrozen(params.vision_encoder, () => {
    const h = clip.forwardClipVision(params.vision_encoder, cfg.vision.cfg, px).lastHiddenState; // [V, 1+N, Dv]
    return F.slice(clip.postLayerNorm(params.vision_encoder, cfg.vision.cfg, h), 1, 1); // [V, N, Dv]: open_clip output_tokens
  });
  const V = images.length, Dv = cfg.vision.cfg.hiddenSize;
  const lat = perceiver(cfg.perceiver, params.perceiver, F.reshape(feats, [V, 1, 1, cfg.patches, Dv])); // [V, 1, L, Dv]
  const L = lat.shape[2]!;
  return images.map((_, i) => F.reshape(F.slice(lat, 0, i, i + 1), [L, Dv]));
}

// ---- decoder hooks ------------------------------------------------------------------------------

/** Which media tokens each position sees: [B, 1, T, Ti*L] bool, from HookStep.mediaIndex. */
function mediaMaskOf(step: HookStep, Ti: number, L: number, immediate: boolean): Tensor {
  const { B, T } = step;
  const K = Ti * L;
  const m = new Uint8Array(B * T * K);
  for (let r = 0; r < B * T; r++) {
    const j = step.mediaIndex[r]!;
    if (j < 0) continue; // before the first image: zero cross-attention output
    if (immediate) m.fill(1, r * K + j * L, r * K + (j + 1) * L);
    else m.fill(1, r * K, r * K + (j + 1) * L);
  }
  return fromData(m, [B, 1, T, K], 'bool');
}

/** Rows' media stacked: [B, Ti, L, Dv], rows with fewer images padded with zeros (always masked). */
function stackMedia(step: HookStep, L: number, Dv: number): Tensor {
  const Ti = Math.max(...step.media.map((r) => r.length));
  const rows = step.media.map((r) => {
    const items = r.map((t) => F.reshape(t, [1, L, Dv]));
    if (r.length < Ti) items.push(F.zeros([Ti - r.length, L, Dv]));
    return F.concat(items, 0); // [Ti, L, Dv]
  });
  return F.stack(rows, 0);
}

/** x + tanh(attn_gate)·XAttn(LN(x), media) then + tanh(ff_gate)·FFN: the block over one step, masked by mediaIndex. */
export function flamingoBlock(cfg: FlamingoConfig, p: GatedXAttnParams, x: Tensor, step: HookStep): Tensor {
  const c = cfg.xattn, heads = c.heads!, Dv = c.dimVisual;
  const L = cfg.perceiver.numLatents!;
  const Ti = Math.max(0, ...step.media.map((r) => r.length));
  let h = x; // [B, T, D]
  if (Ti > 0) {
    for (const r of step.media) for (const t of r) {
      if (t.ndim !== 2 || t.shape[0] !== L || t.shape[1] !== Dv) throw new Error(`flamingo: media tokens must be [${L}, ${Dv}], got ${t.describe()}`);
    }
    for (let i = 0; i < step.mediaIndex.length; i++) {
      const b = Math.floor(i / step.T), j = step.mediaIndex[i]!;
      if (j >= step.media[b]!.length) throw new Error(`flamingo: position ${i % step.T} of row ${b} refers to image ${j} but the row has ${step.media[b]!.length}`);
    }
    const a = p.attn;
    const xn = F.layerNorm(x, a.norm.weight, a.norm.bias, 1e-5); // [B, T, D]
    const qh = splitHeads(F.linear(xn, a.to_q.weight, null), heads); // [B, Hh, T, Dh]
    const m = F.reshape(stackMedia(step, L, Dv), [step.B, Ti * L, Dv]); // [B, Ti*L, Dv]
    const [wk, wv] = F.chunk(a.to_kv.weight, 2, 0); // [Hh*Dh, Dv] each
    const kh = splitHeads(F.linear(m, wk!, null), heads); // [B, Hh, Ti*L, Dh]
    const vh = splitHeads(F.linear(m, wv!, null), heads);
    const ctx = F.attention(qh, kh, vh, { mask: mediaMaskOf(step, Ti, L, c.onlyAttendImmediateMedia ?? true) }); // no visible media -> 0
    h = F.add(F.mul(F.linear(mergeHeads(ctx), a.to_out.weight, null), F.tanh(p.attn_gate)), x);
  }
  return F.add(F.mul(feedForward(p.ff, h), F.tanh(p.ff_gate)), h); // OpenFlamingo: the FFN runs on every token
}

function hooks(cfg: FlamingoConfig, params: FlamingoParams, _llm: LlamaConfig, step: HookStep): SystemHooks {
  return {
    beforeLayer(layer, x) {
      const p = params.gated_cross_attn_layers[String(layer)];
      return p === undefined ? x : flamingoBlock(cfg, p, x, step);
    },
  };
}

export const system: VlmSystem<FlamingoConfig, FlamingoParams> = {
  name: 'flamingo', parseConfig, info, init, plan, prepare, encode,
  hooks(cfg, params, llm, step) { return hooks(cfg, params, llm, step); },
};

// ---- template -----------------------------------------------------------------------------------

// OpenFlamingo's interleaved format: "<image>text<|endofchunk|>" chunks; a user turn's parts in
// order, the assistant's text supervised and closed by <|endofchunk|>.
registerTemplate({
  name: 'flamingo',
  stopStrings: ['<|endofchunk|>'],
  render(turns, generation) {
    const out: Segment[] = [{ special: 'bos' }];
    for (const t of turns) {
      const sup = t.role === 'assistant';
      for (const part of t.parts) out.push('text' in part ? { text: part.text, supervised: sup } : { image: part.image });
      if (sup) out.push({ text: '<|endofchunk|>', supervised: true });
    }
    if (generation && turns[turns.length - 1]?.role !== 'user') throw new Error('flamingo template: the last turn must be the user\'s to generate a reply');
    return out;
  },
});

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [{
  name: 'flamingo', system: 'flamingo',
  // OpenFlamingo-9B (SPEC §7.4): CLIP ViT-L/14 at 224 (256 patch tokens × 1024), a 6-layer
  // resampler with 64 latents, 8 heads × 64 (§7.2); xattn every 4th layer (not in SPEC: the
  // OpenFlamingo-9B config). The LM is MPT-7B in OpenFlamingo; here a LLaMA-shaped decoder with
  // MPT-7B's dims (d 4096, 32 layers, 32 heads, FFN 4×, vocab 50432, 2048 positions).
  real: () => ({
    system: 'flamingo',
    vision_config: {
      vision_encoder: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 224, patch: 14 }),
      perceiver: { depth: 6, heads: 8, dim_head: 64, num_latents: 64, ff_mult: 4 },
      xattn: { heads: 8, dim_head: 64, ff_mult: 4 },
      cross_attn_every_n_layers: 4,
      only_attend_immediate_media: true,
    },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 16384, vocab: 50432, maxPos: 2048 }),
  }),
  tiny: () => ({
    system: 'flamingo',
    vision_config: {
      vision_encoder: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14 }),
      perceiver: { depth: 2, heads: 2, dim_head: 16, num_latents: 8, ff_mult: 2 },
      xattn: { heads: 2, dim_head: 16, ff_mult: 2 },
      cross_attn_every_n_layers: 1,
      only_attend_immediate_media: true,
    },
    text_config: tinyLlama(),
  }),
}];
