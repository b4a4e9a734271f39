// SPHINX (SPEC §1): up to four frozen encoders per view — a BLIP-2 Q-Former branch, CLIP ViT,
// ConvNeXt and DINOv2 — joined as [Q-Former tokens ; Linear+LN([CLIP | ConvNeXt | DINOv2])],
// wrapped in shared start/end vectors, one block per view, all views right after BOS.
// Mixed scales (§1.6): a global view plus g×g sub-images; per encoder resolution r the global
// view is a bicubic resize of the S×S input to r and the crops are cut from the input resized to
// g·r (native when g·r = S). ConvNeXt either runs on its own resolution ('native': SPHINX-Tiny,
// MoE) or on a nearest 256-style resize of the ViT view, its map duplicated up to the ViT grid
// ('upsample': SPHINX, 1k, 2k). SPHINX-MoE replaces every feed-forward with a top-2 sparse MoE.
//
// Keys follow LLaMA2-Accessory's names: qformer.*, clip.*, openclip_convnext_xxl.*,
// dinov2_vitg14.*, visual_proj.{0,1}, qformer_proj.{0,1}, start_img, end_img; MoE layers keep
// Mixtral's language_model.model.layers.N.block_sparse_moe.*.
//
// Dims: V views (all images of a batch), G ViT grid side, N = G² patches, D LLM width.

import { isGradEnabled } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { empty, fromData, type Tensor } from '../../engine/tensor.ts';
import { constInit, leaf } from '../../nn/init.ts';
import { initLinear, zeroLinear, linear, type Linear } from '../../nn/linear.ts';
import { initSparseMoe, sparseMoe, type SparseMoe } from '../../nn/moe.ts';
import { initLayerNorm, layerNorm, type LayerNorm } from '../../nn/norm.ts';
import { meanFill, CLIP_MEAN, normalize, padToSquare, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { sphinxViews, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import * as convnext from '../convnext.ts';
import * as dinov2 from '../dinov2.ts';
import type { LlamaConfig, LlamaLayer, LlamaParams } from '../llama.ts';
import { cachedFrozen, LayerLosses } from './trainable.ts';
import type { Detail, EncodeContext, HookStep, PreparedImage, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import {
  clipConfig, clipToImagenet, convnextConfig, convNextStride, dinoConfig, initQFormerTower, llamaConfig, parseClipTower, parseConvNextTower,
  parseDinoTower, parseQFormerTower, qformerConfig, qformerFeatures, tinyLlama, vitGrid,
  type ClipTower, type ConvNextTower, type DinoTower, type QFormerTower, type QFormerTowerParams,
} from './towers.ts';

export interface SphinxConfig {
  /** Side S of the padded, resized input square. */
  imageSize: number;
  /** Resolution of the ViT views (224 in every published variant). */
  viewSize: number;
  /** Sub-image grid g: 1 = global view only, 2 = SPHINX-1k, 3 = SPHINX-2k. */
  grid: number;
  qformer: QFormerTower | null;
  clip: ClipTower | null;
  convnext: ConvNextTower | null;
  dinov2: DinoTower | null;
  convnextMode: 'upsample' | 'native';
  /** ConvNeXt input side: the nearest resize of a view ('upsample') or its own view size ('native'). */
  convnextSize: number;
  /** Patch grid side G shared by every branch. */
  gridSide: number;
  /** Channel widths joined, in order [CLIP | ConvNeXt | DINOv2]. */
  concatWidth: number;
  moe: { numExperts: number; topK: number; auxLossCoef: number } | null;
}

export interface SphinxParams {
  qformer?: QFormerTowerParams;
  clip?: clip.ClipVisionParams;
  openclip_convnext_xxl?: convnext.ConvNextParams;
  dinov2_vitg14?: dinov2.Dinov2Params;
  visual_proj: [Linear, LayerNorm];
  qformer_proj?: [Linear, LayerNorm];
  start_img: Tensor; // [1, 1, D]
  end_img: Tensor; // [1, 1, D]
}

type MoeLayer = LlamaLayer & { block_sparse_moe: SparseMoe };

function parseConfig(r: ConfigReader, llm: LlamaConfig): SphinxConfig {
  const imageSize = r.int('image_size'), viewSize = r.int('view_size', 224), grid = r.int('grid', 1);
  const qformer = r.has('qformer') ? parseQFormerTower(r, 'qformer') : null;
  const clipT = r.has('clip') ? parseClipTower(r, 'clip') : null;
  const conv = r.has('convnext') ? parseConvNextTower(r, 'convnext') : null;
  const dino = r.has('dinov2') ? parseDinoTower(r, 'dinov2') : null;
  if (!clipT && !conv && !dino) throw new Error(`${r.source}: SPHINX needs at least one of 'clip', 'convnext', 'dinov2'`);
  const src = r.source;
  let G = -1;
  const agree = (g: number, what: string): void => {
    if (G === -1) G = g;
    else if (g !== G) throw new Error(`${src}: ${what} gives a ${g}x${g} token grid but the other encoders give ${G}x${G}; the channel concatenation needs equal grids`);
  };
  if (clipT) agree(vitGrid(clipT.cfg.patchSize, viewSize, `${src}:clip`), 'clip');
  if (dino) agree(vitGrid(dino.cfg.patchSize, viewSize, `${src}:dinov2`), 'dinov2');
  const convnextMode = r.str('convnext_mode', 'upsample', ['upsample', 'native'] as const);
  let convnextSize = 0;
  if (conv) {
    const stride = convNextStride(conv.cfg);
    convnextSize = r.int('convnext_size', convnextMode === 'native' ? imageSize / grid : Math.round(viewSize * 8 / 7));
    if (convnextSize % stride !== 0) throw new Error(`${src}: convnext_size ${convnextSize} is not a multiple of the ConvNeXt stride ${stride}`);
    const m = convnextSize / stride;
    if (G === -1) G = m;
    if (G % m !== 0) throw new Error(`${src}: the ConvNeXt map (${m}x${m} at ${convnextSize}) does not divide the ${G}x${G} token grid`);
    if (convnextMode === 'native' && m !== G) throw new Error(`${src}: convnext_mode "native" needs a ${G}x${G} map, got ${m}x${m} at ${convnextSize}`);
  }
  if (imageSize % grid !== 0) throw new Error(`${src}: image_size ${imageSize} is not divisible by grid ${grid}`);
  if (qformer && qformer.vision.cfg.imageSize !== viewSize) throw new Error(`${src}: qformer.vision_config.image_size ${qformer.vision.cfg.imageSize} must equal view_size ${viewSize}`);
  const concatWidth = (clipT?.cfg.hiddenSize ?? 0) + (conv ? conv.cfg.hiddenSizes[conv.cfg.hiddenSizes.length - 1]! : 0) + (dino?.cfg.hiddenSize ?? 0);
  let moe: SphinxConfig['moe'] = null;
  if (r.has('moe')) {
    const m = r.sub('moe');
    moe = { numExperts: m.int('num_experts'), topK: m.int('top_k', 2), auxLossCoef: m.num('aux_loss_coef', 0.1, 0) };
    if (moe.topK > moe.numExperts) throw new Error(`${m.source}: top_k ${moe.topK} exceeds num_experts ${moe.numExperts}`);
  }
  void llm;
  return { imageSize, viewSize, grid, qformer, clip: clipT, convnext: conv, dinov2: dino, convnextMode, convnextSize, gridSide: G, concatWidth, moe };
}

function info(cfg: SphinxConfig): SystemInfo {
  const bridge = ['visual_proj', 'qformer_proj', 'start_img', 'end_img'];
  return {
    template: 'sphinx',
    layout: 'after-bos',
    keepPlaceholder: false,
    stages: {
      // LLaMA2-Accessory get_trainable_params: everything but the encoders (the paper's stage 1 with the LLM unfrozen, and stage 2).
      pretrain: ['language_model', ...bridge],
      finetune: ['language_model', ...bridge],
      // light/MoE-1k trainable_mode mm_stage1: the projections (and start/end vectors) only.
      mm_stage1: bridge,
      ...(cfg.moe ? { moe: ['language_model.model.layers.*.block_sparse_moe'] } : {}),
    },
    maxImages: 8,
    stopStrings: ['\n###'],
    sampling: { temperature: 0.1, topP: 0.5 },
  };
}

/** torch.rand: U[0, 1) (zeros without an rng). */
function rand01(shape: number[], rng: Rng | null): Tensor {
  const t = empty(shape);
  if (rng) rng.fillUniform(t.data, 0, 1);
  else t.data.fill(0);
  return leaf(t);
}

function init(cfg: SphinxConfig, llm: LlamaConfig, rng: Rng | null, lm: LlamaParams): SphinxParams {
  const D = llm.hiddenSize;
  const lin = (i: number, o: number): Linear => (rng ? initLinear(i, o, rng) : zeroLinear(i, o));
  const ln = (): LayerNorm => (rng ? initLayerNorm(D) : { weight: constInit([D], 0), bias: constInit([D], 0) });
  const p: SphinxParams = {
    visual_proj: [lin(cfg.concatWidth, D), ln()],
    start_img: rand01([1, 1, D], rng),
    end_img: rand01([1, 1, D], rng),
  };
  if (cfg.qformer) { p.qformer = initQFormerTower(cfg.qformer, rng); p.qformer_proj = [lin(cfg.qformer.qformer.hiddenSize, D), ln()]; }
  if (cfg.clip) p.clip = clip.init(cfg.clip.cfg, rng);
  if (cfg.convnext) p.openclip_convnext_xxl = convnext.init(cfg.convnext.cfg, rng);
  if (cfg.dinov2) p.dinov2_vitg14 = dinov2.init(cfg.dinov2.cfg, rng);
  if (cfg.moe) {
    const moe = cfg.moe;
    for (const layer of lm.model.layers) {
      const dense = layer.mlp!;
      const fh = dense.gate_proj.weight.shape[0]!;
      (layer as MoeLayer).block_sparse_moe = rng
        ? initSparseMoe(D, fh, moe.numExperts, rng)
        : { gate: { weight: constInit([moe.numExperts, D], 0), bias: null }, experts: Array.from({ length: moe.numExperts }, () => ({ w1: zeroLinear(D, fh, false), w2: zeroLinear(fh, D, false), w3: zeroLinear(D, fh, false) })) };
      for (const t of [dense.gate_proj.weight, dense.up_proj.weight, dense.down_proj.weight]) t.dispose();
      layer.mlp = null;
    }
  }
  return p;
}

function plan(cfg: SphinxConfig, W: number, H: number, detail: Detail): { views: ViewGeom[]; positions: number } {
  const views = sphinxViews(W, H, detail === 'low' ? 1 : cfg.grid, cfg.viewSize);
  return { views, positions: views.length * perView(cfg) };
}

/** Positions per view: start + Q-Former queries + (1 + G²) visual tokens + end. */
export function perView(cfg: SphinxConfig): number {
  return 2 + (cfg.qformer?.numQueryTokens ?? 0) + 1 + cfg.gridSide * cfg.gridSide;
}

/** x [1, 3, S, S] -> views at resolution r: [1 + g² (or 1), 3, r, r] (global, then crops in raster order). */
function viewsAt(x: Tensor, S: number, g: number, r: number): Tensor {
  const resize = (t: Tensor, s: number): Tensor => (t.shape[2] === s ? t : F.interpolate(t, { size: [s, s], mode: 'bicubic', alignCorners: false }));
  const global = resize(x, r);
  if (g === 1) return global;
  const big = resize(x, g * r); // [1, 3, g·r, g·r]
  const crops = [global];
  for (let i = 0; i < g; i++) for (let j = 0; j < g; j++) crops.push(F.slice(F.slice(big, 2, i * r, (i + 1) * r), 3, j * r, (j + 1) * r));
  void S;
  return F.concat(crops, 0);
}

function prepare(cfg: SphinxConfig, image: RgbImage, detail: Detail): PreparedImage {
  const S = cfg.imageSize, g = detail === 'low' ? 1 : cfg.grid;
  const sq = resizeBicubic(padToSquare(image, meanFill(CLIP_MEAN)), S, S); // SPEC §1.3
  const x = fromData(normalize(sq), [1, 3, S, S]);
  const pixels: Record<string, Tensor> = {};
  if (cfg.clip || cfg.dinov2 || cfg.qformer) pixels.vit = viewsAt(x, S, g, cfg.viewSize);
  if (cfg.convnext) {
    if (cfg.convnextMode === 'native') pixels.convnext = viewsAt(x, S, g, cfg.convnextSize);
    else {
      const v = pixels.vit ?? viewsAt(x, S, g, cfg.viewSize);
      pixels.convnext = F.interpolate(v, { size: [cfg.convnextSize, cfg.convnextSize], mode: 'nearest' }); // SPEC §1.4 E4: F.interpolate default mode
      if (!pixels.vit) v.dispose();
    }
  }
  if (!Object.values(pixels).includes(x)) x.dispose();
  const p = plan(cfg, image.width, image.height, detail);
  return { size: [image.width, image.height], detail, views: p.views, positions: p.positions, pixels };
}

/** ConvNeXt trunk -> [V, 1 + G², C]: the map duplicated up to G×G, flattened row-major, its mean prepended. */
export function convnextTokens(cfg: SphinxConfig, p: convnext.ConvNextParams, px: Tensor): Tensor {
  const c = cfg.convnext!;
  const stages = convnext.convNextStages(p, c.cfg, px);
  let m = stages[stages.length - 1]!; // [V, C, m, m]
  const f = cfg.gridSide / m.shape[2]!;
  if (f > 1) m = F.interpolate(m, { scaleFactor: f, mode: 'nearest' }); // = repeat_interleave on H then W
  const [V, C] = m.shape as [number, number];
  const tokens = F.transpose(F.reshape(m, [V, C, -1]), 1, 2); // [V, G², C]
  return F.concat([F.mean(tokens, 1, true), tokens], 1);
}

function encode(cfg: SphinxConfig, params: SphinxParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize;
  const cat = (key: string, subset: readonly PreparedImage[]): Tensor => {
    const xs = subset.map((im) => {
      const t = im.pixels[key];
      if (t === undefined) throw new Error(`sphinx: image has no '${key}' pixels (prepare it again)`);
      return t;
    });
    return xs.length === 1 ? xs[0]! : F.concat(xs, 0);
  };
  const views = (im: PreparedImage): number => im.views.length;
  const feats: Tensor[] = [];
  if (cfg.clip) {
    const t = cfg.clip, p = params.clip!;
    feats.push(cachedFrozen(images, 'clip', p, views, (sub) => clip.postLayerNorm(p, t.cfg, clip.forwardClipVision(p, t.cfg, cat('vit', sub)).lastHiddenState))); // [V, 1+N, Dc]
  }
  if (cfg.convnext) {
    const p = params.openclip_convnext_xxl!;
    feats.push(cachedFrozen(images, 'convnext', p, views, (sub) => convnextTokens(cfg, p, cat('convnext', sub)))); // [V, 1+N, Cc]
  }
  if (cfg.dinov2) {
    const t = cfg.dinov2, p = params.dinov2_vitg14!;
    feats.push(cachedFrozen(images, 'dinov2', p, views, (sub) => {
      const h = dinov2.forwardDinov2(p, t.cfg, clipToImagenet(cat('vit', sub))).lastHiddenState; // [V, 1+R+N, Dg]
      const R = t.cfg.numRegisterTokens;
      return R === 0 ? h : F.concat([F.slice(h, 1, 0, 1), F.slice(h, 1, 1 + R)], 1);
    }));
  }
  const E = feats.length === 1 ? feats[0]! : F.concat(feats, 2); // [V, 1+N, concatWidth]
  const [vp, vln] = params.visual_proj;
  const vis = layerNorm(vln, linear(vp, E)); // [V, 1+N, D]
  const parts: Tensor[] = [];
  const V = vis.shape[0]!;
  if (cfg.qformer) {
    const q = cachedFrozen(images, 'qformer', params.qformer!, views, (sub) => qformerFeatures(cfg.qformer!, params.qformer!, cat('vit', sub))); // [V, Q, Dq]
    const [qp, qln] = params.qformer_proj!;
    parts.push(layerNorm(qln, linear(qp, q)));
  }
  parts.push(vis);
  const start = F.expand(params.start_img, [V, 1, D]), end = F.expand(params.end_img, [V, 1, D]);
  const perViewTokens = F.concat([start, ...parts, end], 1); // [V, perView, D]
  const out: Tensor[] = [];
  let v = 0;
  for (const im of images) {
    const n = im.views.length;
    out.push(F.reshape(F.slice(perViewTokens, 0, v, v + n), [n * perView(cfg), D])); // views in order
    v += n;
  }
  return out;
}

function hooks(cfg: SphinxConfig, _params: SphinxParams, llm: LlamaConfig, _step: HookStep, lm: LlamaParams): SystemHooks {
  const moe = cfg.moe!;
  const losses = new LayerLosses();
  void llm;
  return {
    mlp(layer, h) {
      const p = (lm.model.layers[layer] as MoeLayer).block_sparse_moe;
      const { out, routing } = sparseMoe(p, h, { topK: moe.topK });
      if (isGradEnabled() && moe.auxLossCoef > 0) losses.add(routing.balanceLoss);
      return out;
    },
    auxLoss() {
      return losses.reduce('mean', moe.auxLossCoef); // mean over layers (SPEC §1.8)
    },
  };
}

export const system: VlmSystem<SphinxConfig, SphinxParams> = {
  name: 'sphinx',
  parseConfig,
  info,
  init,
  plan,
  prepare,
  encode,
  hooks(cfg, params, llm, step) {
    return cfg.moe ? hooks(cfg, params, llm, step, params.language_model) : {};
  },
};

// ---- presets ------------------------------------------------------------------------------------

const clipL14 = clipConfig({ hidden: 1024, layers: 24, heads: 16, ffn: 4096, image: 224, patch: 14 });
const evaG = clipConfig({ hidden: 1408, layers: 39, heads: 16, ffn: 6144, image: 224, patch: 14, act: 'gelu' });
const convXXL = (image: number): Record<string, unknown> => convnextConfig({ dims: [384, 768, 1536, 3072], depths: [3, 4, 30, 3], image });
const dinoG = dinoConfig({ hidden: 1536, layers: 40, heads: 24, image: 518, patch: 14, swiglu: true });
const qf = qformerConfig({ vision: evaG, hidden: 768, layers: 12, heads: 12, ffn: 3072, queries: 32 });
const llama13b = llamaConfig({ dim: 5120, layers: 40, heads: 40, ffn: 13824, vocab: 32000, maxPos: 4096 });

// Tiny towers: a 56-px view with 14-px patches (4x4 grid); ConvNeXt stride 32.
const T_VIEW = 56;
const tClip = clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: T_VIEW, patch: 14 });
const tEva = clipConfig({ hidden: 24, layers: 1, heads: 2, ffn: 48, image: T_VIEW, patch: 14, act: 'gelu' });
const tConv = (image: number): Record<string, unknown> => convnextConfig({ dims: [8, 16, 24, 32], depths: [1, 1, 1, 1], image });
const tDino = dinoConfig({ hidden: 32, layers: 2, heads: 2, image: T_VIEW, patch: 14 });
const tQf = qformerConfig({ vision: tEva, hidden: 32, layers: 2, heads: 2, ffn: 64, queries: 4 });

function full(image: number, grid: number, q: Record<string, unknown>, c: Record<string, unknown>, cv: Record<string, unknown>, d: Record<string, unknown>, view: number, cvSize: number): Record<string, unknown> {
  return { image_size: image, view_size: view, grid, qformer: q, clip: c, convnext: cv, dinov2: d, convnext_mode: 'upsample', convnext_size: cvSize };
}
function light(image: number, grid: number, cv: Record<string, unknown>, d: Record<string, unknown>, view: number, cvSize: number): Record<string, unknown> {
  return { image_size: image, view_size: view, grid, convnext: cv, dinov2: d, convnext_mode: 'native', convnext_size: cvSize };
}

const mk = (name: string, real: () => Record<string, unknown>, realText: () => Record<string, unknown>, tiny: () => Record<string, unknown>, tinyText: () => Record<string, unknown> = () => tinyLlama()): PresetDef => ({
  name, system: 'sphinx',
  real: () => ({ system: 'sphinx', vision_config: real(), text_config: realText() }),
  tiny: () => ({ system: 'sphinx', vision_config: tiny(), text_config: tinyText() }),
});

export const presets: PresetDef[] = [
  mk('sphinx', () => full(224, 1, qf, clipL14, convXXL(256), dinoG, 224, 256), () => llama13b,
    () => full(T_VIEW, 1, tQf, tClip, tConv(64), tDino, T_VIEW, 64)),
  mk('sphinx-1k', () => full(448, 2, qf, clipL14, convXXL(256), dinoG, 224, 256), () => llama13b,
    () => full(2 * T_VIEW, 2, tQf, tClip, tConv(64), tDino, T_VIEW, 64)),
  mk('sphinx-2k', () => full(672, 3, qf, clipL14, convXXL(256), dinoG, 224, 256), () => llama13b,
    () => full(3 * T_VIEW, 3, tQf, tClip, tConv(64), tDino, T_VIEW, 64)),
  mk('sphinx-tiny', () => light(512, 1, convXXL(512), dinoG, 224, 512),
    () => llamaConfig({ dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, maxPos: 4096 }),
    () => light(128, 1, tConv(128), tDino, T_VIEW, 128)),
  mk('sphinx-moe', () => ({ ...full(512, 1, qf, clipL14, convXXL(512), dinoG, 224, 512), convnext_mode: 'native', moe: { num_experts: 8, top_k: 2, aux_loss_coef: 0.1 } }),
    () => llamaConfig({ dim: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 32000, maxPos: 32768, theta: 1e6 }),
    () => ({ ...full(128, 1, tQf, tClip, tConv(128), tDino, T_VIEW, 128), convnext_mode: 'native', moe: { num_experts: 4, top_k: 2, aux_loss_coef: 0.1 } })),
];
