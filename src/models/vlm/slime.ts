// SliME (SPEC §2): a plain 336 resize of the whole image (global view) through CLIP and the gated
// mixture of two adapters — expert 0 = MLP(x), expert 1 = MLP(Resampler(x)) with a 576-query
// resampler — mixed per token by the zero-initialised gate (0.5 / 0.5 at init); local 336 tiles of
// the UHD-style grid (2–7 tiles, §2.3) through CLIP, the 144-query compressor (`sampler.post_qformer`)
// and the same MLP, laid out as one spatial raster over the (12·rows)×(12·cols) grid (§2.4).
// Text-guided selection keeps the local tokens most similar (summed cosine) to the instruction's
// input embeddings, in their original order. Image tokens: [global G² ; ',' ; kept local K].
// detail 'low' is the global view alone (no separator).
//
// Deviation from SPEC §2.2 (selection size): the reference keeps the top-p (0.95 in SFT) softmax
// mass plus one token, so K depends on the text and the scores. Here K is fixed before any score is
// seen — K = ceil(local_keep · 144 · tiles) highest-scoring tokens — so plan(), prepare() and
// encode() agree without pixels or weights. local_keep = 1 (the real preset; SliME's pre-training
// topp = 1.0) keeps every token in order, identical to the reference, and equals `chimera plan`'s
// upper bound. The top-p rule itself is `selectTopP` in src/bridges/slime-gate.ts.
// Other simplifications: the gate's training noise and the score noise are not applied (the
// inference path); w_noise, unused at inference, is not a parameter.
// `mm_learnable_gated` e ≥ 0 forces the global output to expert e (§2.5 stages 1a/1b); -1 mixes.
//
// Keys: vision_tower.* (HF CLIPVisionModel), mm_projector.{projection.{0,2}, attn.{attn_pool.*, ln_post}, w_gate},
// sampler.post_qformer.{attn_pool.*, ln_post}. Dims: G tower grid side, Dv tower width, D LLM width,
// q local queries per tile, n tiles.

import { noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { initMlpProjector, mlpProjector, type MlpProjectorConfig, type MlpProjectorParams } from '../../bridges/mlp-projector.ts';
import { initResampler, resampler, type ResamplerConfig, type ResamplerParams } from '../../bridges/resampler.ts';
import { gatherTokens, initSlimeGate, slimeGateMix, textSimilarityScores, type SlimeGate } from '../../bridges/slime-gate.ts';
import { cropRegion, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { resizeKeepCeil, slimeViews, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { clipPatches, resamplerGlobs, tokenEmbeds } from './llava-uhd.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, type ClipTower } from './towers.ts';

export interface SlimeConfig {
  vision: ClipTower;
  featureLayer: number;
  tile: number;
  /** Tower grid side G (24): the global resampler has G² queries. */
  grid: number;
  projector: MlpProjectorConfig;
  globalResampler: ResamplerConfig;
  localResampler: ResamplerConfig;
  /** Fraction of local tokens kept (see header). */
  localKeep: number;
  separatorId: number;
  learnableGated: number;
}

export interface SlimeParams {
  vision_tower: clip.ClipVisionParams;
  mm_projector: { projection: MlpProjectorParams; attn: ResamplerParams; w_gate: SlimeGate['w_gate'] };
  sampler: { post_qformer: ResamplerParams };
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): SlimeConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const v = vision.cfg, L = v.numHiddenLayers;
  if (v.imageSize % v.patchSize !== 0) throw new Error(`${r.source}: vision_tower image_size ${v.imageSize} is not a multiple of patch_size ${v.patchSize}`);
  const G = v.imageSize / v.patchSize, Dv = v.hiddenSize;
  const heads = r.int('num_heads', Math.max(1, Math.floor(Dv / 128)));
  const q = r.int('mm_resampler_dim', 144);
  const qs = Math.round(Math.sqrt(q));
  if (qs * qs !== q) throw new Error(`${r.source}: mm_resampler_dim ${q} is not a square`);
  const localKeep = r.num('local_keep', 1, 0, 1);
  if (!(localKeep > 0)) throw new Error(`${r.source}: local_keep must be in (0, 1], got ${localKeep}`);
  const separatorId = r.int('separator_token_id', undefined, 0);
  if (separatorId >= llm.vocabSize) throw new Error(`${r.source}: 'separator_token_id' ${separatorId} is outside the vocabulary (text_config.vocab_size ${llm.vocabSize})`);
  const res = (grid: number): ResamplerConfig => ({ gridSize: grid, embedDim: Dv, kvDim: Dv, heads, postProj: true });
  if (Dv % heads !== 0) throw new Error(`${r.source}: num_heads ${heads} does not divide the tower width ${Dv}`);
  return {
    vision, featureLayer: r.int('mm_vision_select_layer', -2, -(L + 1), L), tile: v.imageSize, grid: G,
    projector: { type: r.str('mm_projector_type', 'mlp2x_gelu'), inDim: Dv, outDim: llm.hiddenSize },
    globalResampler: res(G), localResampler: res(qs), localKeep, separatorId,
    learnableGated: r.int('mm_learnable_gated', -1, -1, 1),
  };
}

function info(): SystemInfo {
  const attn = resamplerGlobs('mm_projector.attn'), local = resamplerGlobs('sampler.post_qformer');
  return {
    template: 'vicuna_v1',
    layout: 'placeholder',
    keepPlaceholder: false,
    // SPEC §2.5 alternating schedule. w_gate is unused while an expert is forced (1a/1b), so it trains only in SFT.
    stages: {
      global_mlp: ['mm_projector.projection'],
      global_attn: attn,
      local_compression: local,
      sft: ['language_model', 'mm_projector.projection', 'mm_projector.w_gate', ...attn, ...local],
    },
    maxImages: 4,
    stopStrings: [],
    sampling: { temperature: 0.2, topP: 0.7 },
  };
}

/** A resampler with ln_post and no output projection (SliME's use_post_proj=False). */
function initNoProj(cfg: ResamplerConfig, rng: Rng | null): ResamplerParams {
  const p = initResampler(cfg, rng);
  p.proj?.dispose();
  return { ...p, proj: null };
}

function init(cfg: SlimeConfig, _llm: LlamaConfig, rng: Rng | null): SlimeParams {
  return {
    vision_tower: clip.init(cfg.vision.cfg, rng),
    mm_projector: { projection: initMlpProjector(cfg.projector, rng), attn: initNoProj(cfg.globalResampler, rng), w_gate: initSlimeGate(cfg.vision.cfg.hiddenSize).w_gate },
    sampler: { post_qformer: initNoProj(cfg.localResampler, rng) },
  };
}

/** Local tokens kept out of `total` candidates. */
export function slimeKeepCount(total: number, keep: number): number {
  return Math.min(total, Math.max(1, Math.ceil(keep * total - 1e-9)));
}

function layout(cfg: SlimeConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; grid: [number, number]; positions: number; local: number } {
  const s = slimeViews(W, H, cfg.tile);
  const G2 = cfg.grid * cfg.grid;
  if (detail === 'low') return { views: [s.views[0]!], grid: s.grid, positions: G2, local: 0 };
  const local = slimeKeepCount((s.views.length - 1) * cfg.localResampler.gridSize ** 2, cfg.localKeep);
  return { views: s.views, grid: s.grid, positions: G2 + 1 + local, local };
}

function plan(cfg: SlimeConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; positions: number } {
  const l = layout(cfg, W, H, detail);
  return { views: l.views, positions: l.positions };
}

function prepare(cfg: SlimeConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.tile, l = layout(cfg, image.width, image.height, detail);
  const chws: Float32Array[] = [normalize(resizeBicubic(image, S, S))]; // global: plain resize, aspect not kept
  if (detail === 'high') {
    const [cols, rows] = l.grid, cw = cols * S, ch = rows * S;
    const at = resizeKeepCeil(image.width, image.height, cw, ch);
    const canvas = cropRegion(resizeBicubic(image, at.w, at.h), { x: -at.x, y: -at.y, w: cw, h: ch }); // centred on black
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) chws.push(normalize(cropRegion(canvas, { x: c * S, y: r * S, w: S, h: S })));
  }
  const px = new Float32Array(chws.length * 3 * S * S);
  chws.forEach((d, i) => px.set(d, i * d.length));
  return {
    size: [image.width, image.height], detail, views: l.views, positions: l.positions,
    pixels: { clip: fromData(px, [chws.length, 3, S, S]) }, meta: { grid: l.grid, local: l.local },
  };
}

/** Indices (ascending) of the K highest scores; ties keep the lower index. */
export function selectTopK(scores: Float32Array, K: number): Int32Array {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return Int32Array.from(order.slice(0, K)).sort();
}

/** Global view features [1, G², Dv] -> [G², D] through the gated mixture. */
function globalTokens(cfg: SlimeConfig, p: SlimeParams['mm_projector'], x: Tensor): Tensor {
  const mlp = (t: Tensor): Tensor => mlpProjector(cfg.projector, p.projection, t);
  const force = cfg.learnableGated >= 0 ? cfg.learnableGated : null;
  const e0 = force === 1 ? null : mlp(x); // [1, G², D]
  const e1 = force === 0 ? null : mlp(resampler(cfg.globalResampler, p.attn, x)); // [1, G², D]
  const out = force === 0 ? e0! : force === 1 ? e1! : slimeGateMix({ w_gate: p.w_gate }, x, e0!, e1!);
  return F.squeeze(out, 0);
}

function encode(cfg: SlimeConfig, params: SlimeParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize, S = cfg.localResampler.gridSize;
  const px = images.length === 1 ? images[0]!.pixels.clip! : F.concat(images.map((i) => i.pixels.clip!), 0); // [V, 3, T, T]
  const feats = runFrozen(params.vision_tower, () => clipPatches(cfg.vision, params.vision_tower, px, cfg.featureLayer)); // [V, G², Dv]
  const sep = tokenEmbeds(ctx.lm, ctx.llm, [cfg.separatorId]); // [1, D]
  const out: Tensor[] = [];
  let v = 0;
  for (const im of images) {
    const n = im.views.length;
    const glob = globalTokens(cfg, params.mm_projector, F.slice(feats, 0, v, v + 1)); // [G², D]
    if (n === 1) { out.push(glob); v += n; continue; }
    const m = im.meta as { grid: [number, number]; local: number };
    const [cols, rows] = m.grid;
    const comp = resampler(cfg.localResampler, params.sampler.post_qformer, F.slice(feats, 0, v + 1, v + n)); // [n, q, Dv]
    let local = mlpProjector(cfg.projector, params.mm_projector.projection, comp); // [n, q, D]
    local = F.reshape(F.permute(F.reshape(local, [rows, cols, S, S, D]), [0, 2, 1, 3, 4]), [(n - 1) * S * S, D]); // spatial raster
    if (m.local < local.shape[0]!) {
      const ids = (im.instruction ?? []).filter((t) => t >= 0 && t < ctx.llm.vocabSize);
      const scores = ids.length === 0
        ? new Float32Array(local.shape[0]!)
        : noGrad(() => F.denseData(textSimilarityScores(local, tokenEmbeds(ctx.lm, ctx.llm, ids)))); // [n·q]
      local = gatherTokens(local, selectTopK(scores, m.local)); // [K, D]
    }
    const e = F.concat([glob, sep, local], 0);
    if (e.shape[0] !== im.positions) throw new Error(`slime: encoded ${e.shape[0]} positions, planned ${im.positions}`);
    out.push(e);
    v += n;
  }
  return out;
}

export const system: VlmSystem<SlimeConfig, SlimeParams> = { name: 'slime', parseConfig, info, init, plan, prepare, encode };

// ---- presets ------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    name: 'slime', system: 'slime',
    // SPEC §2.2, §2.6: CLIP ViT-L/14-336 (layer −2), gated MLP/resampler projector (576 queries, 8 heads), 144-query
    // local compressor, ',' separator (LLaMA id 29892), Vicuna-7B. local_keep 1 = topp 1.0 (see header).
    real: () => ({
      system: 'slime',
      vision_config: {
        vision_tower: clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 336, patch: 14 }),
        mm_vision_select_layer: -2, mm_projector_type: 'mlp2x_gelu', num_heads: 8, mm_resampler_dim: 144,
        local_keep: 1, separator_token_id: 29892, mm_learnable_gated: -1,
      },
      text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 4096 }),
    }),
    // 56-px tiles (4×4 patches), 4 local queries per tile, 3/4 of the local tokens kept; ',' = 49 in the tiny tokenizer.
    tiny: () => ({
      system: 'slime',
      vision_config: {
        vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14 }),
        mm_vision_select_layer: -2, mm_projector_type: 'mlp2x_gelu', num_heads: 2, mm_resampler_dim: 4,
        local_keep: 0.75, separator_token_id: 49, mm_learnable_gated: -1,
      },
      text_config: tinyLlama(),
    }),
  },
];
