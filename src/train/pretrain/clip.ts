// CLIP-style contrastive pre-training of the CLIP vision tower: the tower's pooled output (post-LN
// class token) and a tiny causal text transformer over caption bytes (read at EOS) are projected
// to a shared space, L2-normalised, and scored with a learnable temperature; the loss is the
// symmetric InfoNCE over the batch (image→text and text→image cross-entropy against the diagonal).
//
// Dims: B batch, T text positions, Dv vision width, Dt text width, P projection width.

import * as F from '../../engine/ops/index.ts';
import { noGrad, param } from '../../engine/autograd.ts';
import { fromData, keep, tidy, untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import * as clip from '../../models/clip-vision.ts';
import { initLinear, linear, type Linear } from '../../nn/linear.ts';
import { mergeHeads, splitHeads } from '../../nn/vit.ts';
import { normalInit } from '../../nn/init.ts';
import { initLayerNorm, layerNorm, type LayerNorm } from '../../nn/norm.ts';
import {
  byteTokens, lossTrend, retrievalTop1, rngFor, sampleBatch, scenePool, sphinxViews, TEXT_VOCAB, trainLoop, type PretrainEvent,
} from './common.ts';

export interface TextLayer {
  ln1: LayerNorm;
  qkv: Linear; // [3Dt, Dt]
  out: Linear; // [Dt, Dt]
  ln2: LayerNorm;
  fc1: Linear; // [4Dt, Dt]
  fc2: Linear; // [Dt, 4Dt]
}

export interface ClipTextTower {
  token_embedding: Tensor; // [TEXT_VOCAB, Dt]
  position_embedding: Tensor; // [Tmax, Dt]
  layers: TextLayer[];
  final_ln: LayerNorm;
  text_projection: Tensor; // [P, Dt]
}

export interface ClipHeads {
  visual_projection: Tensor; // [P, Dv]
  logit_scale: Tensor; // [] log(1/τ)
}

export interface ClipPretrainOptions {
  steps?: number;
  seed?: number;
  batch?: number;
  lr?: number;
  /** Scenes in the training pool. */
  poolSize?: number;
  textWidth?: number;
  textLayers?: number;
  projection?: number;
  fashion?: 'auto' | 'subset' | 'full';
  onStep?: ((e: PretrainEvent) => void) | undefined;
}

export interface PretrainResult<P> {
  params: P;
  losses: number[];
  first: number;
  last: number;
  /** Held-out probe: name, value, chance level. */
  probe: { name: string; value: number; chance: number };
  seconds: number;
}

const MAX_TEXT = 72;

function initText(Dt: number, layers: number, P: number, seed: number): ClipTextTower {
  const rng = rngFor(seed, 0x7e47);
  return {
    token_embedding: normalInit([TEXT_VOCAB, Dt], 0.02, rng),
    position_embedding: normalInit([MAX_TEXT, Dt], 0.01, rng),
    layers: Array.from({ length: layers }, () => ({
      ln1: initLayerNorm(Dt), qkv: initLinear(Dt, 3 * Dt, rng), out: initLinear(Dt, Dt, rng),
      ln2: initLayerNorm(Dt), fc1: initLinear(Dt, 4 * Dt, rng), fc2: initLinear(4 * Dt, Dt, rng),
    })),
    final_ln: initLayerNorm(Dt),
    text_projection: normalInit([P, Dt], Dt ** -0.5, rng),
  };
}

/** Caption embeddings [B, P] (not normalised): causal pre-LN transformer read at each caption's EOS. */
export function encodeText(t: ClipTextTower, texts: readonly string[], heads = 2): Tensor {
  const { ids, lengths, T } = byteTokens(texts, MAX_TEXT);
  const B = texts.length;
  let x = F.add(F.embedding(t.token_embedding, fromData(ids, [B, T], 'i32')), F.slice(t.position_embedding, 0, 0, T)); // [B, T, Dt]
  for (const l of t.layers) {
    const a = layerNorm(l.ln1, x);
    const [q, k, v] = F.chunk(linear(l.qkv, a), 3, -1);
    const ctx = mergeHeads(F.attention(splitHeads(q!, heads), splitHeads(k!, heads), splitHeads(v!, heads), { causal: true })); // [B, T, Dt]
    x = F.add(x, linear(l.out, ctx));
    x = F.add(x, linear(l.fc2, F.quickGelu(linear(l.fc1, layerNorm(l.ln2, x)))));
  }
  x = layerNorm(t.final_ln, x);
  const eos = Int32Array.from(lengths.map((n, b) => b * T + n - 1));
  const pooled = F.indexSelect(F.reshape(x, [B * T, -1]), 0, fromData(eos, [B], 'i32')); // [B, Dt]
  return F.linear(pooled, t.text_projection);
}

function l2(x: Tensor): Tensor {
  return F.div(x, F.sqrt(F.addScalar(F.sum(F.square(x), -1, true), 1e-12)));
}

/** Symmetric InfoNCE of paired embeddings a, b [B, P] with logit scale exp(s) (clamped at 100). */
export function infoNce(a: Tensor, b: Tensor, logScale: Tensor): Tensor {
  const B = a.shape[0]!;
  const scale = F.clamp(F.exp(logScale), 0, 100);
  const logits = F.mul(F.matmul(l2(a), F.transpose(l2(b), 0, 1)), scale); // [B, B]
  const y = fromData(Int32Array.from({ length: B }, (_, i) => i), [B], 'i32');
  return F.mul(F.add(F.crossEntropy(logits, y), F.crossEntropy(F.transpose(logits, 0, 1), y)), 0.5);
}

/** Pre-trains a CLIP vision tower (HF clip_vision_model config JSON) contrastively on corpus captions. */
export function pretrainClip(configJson: Record<string, unknown>, o: ClipPretrainOptions = {}): PretrainResult<clip.ClipVisionParams> {
  const t0 = performance.now();
  const cfg = clip.parseConfig(configJson, 'clip tower');
  const seed = o.seed ?? 0, steps = o.steps ?? 300, B = o.batch ?? 32, P = o.projection ?? 32;
  const rng = rngFor(seed, 0xc11b);
  const vision = untracked(() => clip.init(cfg, rng));
  const text = untracked(() => initText(o.textWidth ?? 32, o.textLayers ?? 2, P, seed));
  const heads: ClipHeads = untracked(() => ({
    visual_projection: normalInit([P, cfg.hiddenSize], cfg.hiddenSize ** -0.5, rng),
    logit_scale: keep(param(fromData(new Float32Array([Math.log(1 / 0.07)]), []))),
  }));
  const pool = scenePool({ split: 'train', count: o.poolSize ?? 768, seed, fashion: o.fashion });
  const s = cfg.imageSize;
  const imageEmbed = (x: Tensor): Tensor => F.linear(clip.forwardClipVision(vision, cfg, x).poolerOutput, heads.visual_projection); // [B, P]
  const losses = trainLoop({ vision, text, heads }, { steps, lr: o.lr ?? 2e-3, kind: 'clip', onStep: o.onStep }, () => {
    const idx = sampleBatch(rng, pool.count, B);
    return infoNce(imageEmbed(sphinxViews(pool, idx, s, rng, 0)), encodeText(text, idx.map((i) => pool.captions[i]!)), heads.logit_scale);
  });
  // Held-out retrieval among 64 validation scenes (chance 1/64).
  const val = scenePool({ split: 'val', count: 64, seed, smallShare: 0, fashion: o.fashion });
  const idx = Array.from({ length: val.count }, (_, i) => i);
  const acc = evalRetrieval(() => imageEmbed(sphinxViews(val, idx, s, rng, 0)), () => encodeText(text, val.captions), val.count);
  for (const t of [...leavesOf(text), ...leavesOf(heads)]) t.dispose();
  const { first, last } = lossTrend(losses);
  return { params: vision, losses, first, last, probe: { name: 'val image→text top-1 (64 captions)', value: acc, chance: 1 / val.count }, seconds: (performance.now() - t0) / 1000 };
}

function leavesOf(tree: unknown): Tensor[] {
  return [...flatten<Tensor>(tree).values()];
}

/** Top-1 retrieval accuracy of two embedding producers over N pairs. */
export function evalRetrieval(img: () => Tensor, txt: () => Tensor, N: number): number {
  return noGrad(() => tidy(() => {
    const sim = F.denseData(F.matmul(l2(img()), F.transpose(l2(txt()), 0, 1))); // [N, N]
    return retrievalTop1(sim, N);
  }));
}
