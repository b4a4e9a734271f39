// BLIP-2 stage-1 pre-training of the Q-Former tower (SPEC §8.2) on corpus captions: a frozen,
// already pre-trained image encoder (the CLIP tower, its post_layernorm as ln_vision) feeds the
// Q-Former's learned queries; ITC + ITM + ITG from models/vlm/blip2.ts train the queries, the
// Q-Former (with its text feed-forwards) and the stage-1 heads. Text is the caption's bytes with
// [CLS] = TEXT_BOS and [DEC] = QF_DEC. The kept tower is the queries and the Q-Former without
// its text feed-forwards (the path SPHINX's encoder uses), plus the frozen ViT it was trained on.
//
// Dims: B batch, S ViT tokens, E ViT width, Q queries, Dq Q-Former width, T text length.

import * as F from '../../engine/ops/index.ts';
import { noGrad } from '../../engine/autograd.ts';
import { fromData, tidy, untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import * as qf from '../../models/blip2-qformer.ts';
import * as clip from '../../models/clip-vision.ts';
import { initStage1Heads, itcLoss, stage1Loss, type QFormerStage1 } from '../../models/vlm/blip2.ts';
import { normalInit } from '../../nn/init.ts';
import { byteTokens, lossTrend, retrievalTop1, rngFor, sampleBatch, scenePool, sphinxViews, TEXT_PAD, TEXT_VOCAB, trainLoop, type PretrainEvent } from './common.ts';
import type { PretrainResult } from './clip.ts';

export const QF_DEC = TEXT_VOCAB; // [DEC] id after the byte vocabulary
const QF_VOCAB = TEXT_VOCAB + 1;
const MAX_TEXT = 72;

export interface QFormerTowerOut {
  query_tokens: Tensor; // [1, Q, Dq]
  qformer: qf.Blip2QFormerParams; // without text feed-forwards
}

export interface QFormerPretrainOptions {
  steps?: number;
  seed?: number;
  batch?: number;
  lr?: number;
  poolSize?: number;
  fashion?: 'auto' | 'subset' | 'full';
  onStep?: ((e: PretrainEvent) => void) | undefined;
}

/**
 * Pre-trains a Q-Former (`qformerJson`: blip_2_qformer config; `numQueries`) over a frozen
 * image encoder (`vision`: clip_vision_model config JSON and its parameters).
 */
export function pretrainQFormer(qformerJson: Record<string, unknown>, numQueries: number, vision: { config: Record<string, unknown>; params: clip.ClipVisionParams }, o: QFormerPretrainOptions = {}): PretrainResult<QFormerTowerOut> {
  const t0 = performance.now();
  const vcfg = clip.parseConfig(vision.config, 'q-former image encoder');
  const cfg = qf.parseConfig({ encoder_hidden_size: vcfg.hiddenSize, ...qformerJson, use_qformer_text_input: true }, 'q-former tower');
  const seed = o.seed ?? 0, steps = o.steps ?? 200, B = o.batch ?? 24;
  const rng = rngFor(seed, 0x9f0e);
  const m: QFormerStage1 = untracked(() => ({
    cfg,
    qformer: qf.init(cfg, rng),
    query_tokens: normalInit([1, numQueries, cfg.hiddenSize], cfg.initializerRange, rng),
    heads: initStage1Heads(cfg, { vocabSize: QF_VOCAB, maxPositions: MAX_TEXT, embedDim: Math.min(256, cfg.hiddenSize) }, rng),
  }));
  for (const t of flatten<Tensor>(vision.params).values()) t.requiresGrad = false;
  const pool = scenePool({ split: 'train', count: o.poolSize ?? 768, seed, fashion: o.fashion });
  const s = vcfg.imageSize;
  const imageFeats = (x: Tensor): Tensor => noGrad(() => clip.postLayerNorm(vision.params, vcfg, clip.forwardClipVision(vision.params, vcfg, x).lastHiddenState)); // [B, S, E]
  const textBatch = (caps: readonly string[]): { ids: Tensor; mask: Tensor } => {
    const { ids, T } = byteTokens(caps, MAX_TEXT);
    const mask = new Float32Array(ids.length);
    ids.forEach((v, i) => { mask[i] = v === TEXT_PAD ? 0 : 1; });
    const safe = ids.map((v) => (v === TEXT_PAD ? 0 : v));
    return { ids: fromData(safe, [caps.length, T], 'i32'), mask: fromData(mask, [caps.length, T]) };
  };
  const trainable = { qformer: m.qformer, query_tokens: m.query_tokens, heads: m.heads };
  const losses = trainLoop(trainable, { steps, lr: o.lr ?? 1e-3, kind: 'qformer', onStep: o.onStep }, () => {
    const idx = sampleBatch(rng, pool.count, B);
    const img = imageFeats(sphinxViews(pool, idx, s, rng, 0));
    return stage1Loss(m, img, textBatch(idx.map((i) => pool.captions[i]!)), { decBosId: QF_DEC, rng }).loss;
  });
  // Held-out ITC retrieval among 64 validation captions.
  const val = scenePool({ split: 'val', count: 64, seed, smallShare: 0, fashion: o.fashion });
  const all = Array.from({ length: val.count }, (_, i) => i);
  const acc = noGrad(() => tidy(() => {
    const img = imageFeats(sphinxViews(val, all, s, rng, 0));
    const c = stage1ItcSim(m, img, textBatch(val.captions));
    return retrievalTop1(F.denseData(c), val.count);
  }));
  // Keep queries + the query path of the Q-Former; drop heads and text feed-forwards.
  for (const t of flatten<Tensor>(m.heads).values()) t.dispose();
  for (const layer of m.qformer.encoder.layer) {
    for (const t of flatten<Tensor>({ a: layer.intermediate, b: layer.output }).values()) t.dispose();
    delete layer.intermediate;
    delete layer.output;
  }
  for (const t of flatten<Tensor>(trainable).values()) t.requiresGrad = false;
  const { first, last } = lossTrend(losses);
  return {
    params: { query_tokens: m.query_tokens, qformer: m.qformer }, losses, first, last,
    probe: { name: 'val image→text top-1 by ITC similarity (64 captions)', value: acc, chance: 1 / val.count },
    seconds: (performance.now() - t0) / 1000,
  };
}

function stage1ItcSim(m: QFormerStage1, img: Tensor, text: { ids: Tensor; mask: Tensor }): Tensor {
  return itcLoss(m, img, text).simI2T; // [N, N]
}
