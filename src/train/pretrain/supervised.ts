// Supervised pre-training of the ConvNeXt tower: multi-label classification of which object
// classes (10 Fashion-MNIST classes + 4 shapes) and which colours appear in a scene, from the
// pooled trunk output (global average + LayerNorm, HF ConvNextModel pooler) through a linear head,
// with binary cross-entropy on logits. Inputs are SPHINX's global views (flipped at random),
// resized (nearest) to the tower's resolution as SPHINX feeds ConvNeXt.
//
// Dims: B batch, C trunk width, L = NUM_LABELS.

import * as F from '../../engine/ops/index.ts';
import { fromData, untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import * as convnext from '../../models/convnext.ts';
import { initLinear, linear } from '../../nn/linear.ts';
import { lossTrend, NUM_LABELS, rngFor, sampleBatch, scenePool, sphinxViews, trainLoop, type PretrainEvent } from './common.ts';
import type { PretrainResult } from './clip.ts';
import { probeTower } from './dino.ts';

export interface SupervisedPretrainOptions {
  steps?: number;
  seed?: number;
  batch?: number;
  lr?: number;
  poolSize?: number;
  /** Side of the ViT view the ConvNeXt input is a nearest resize of (SPHINX 'upsample' mode); default the tower's image_size. */
  viewSize?: number;
  fashion?: 'auto' | 'subset' | 'full';
  onStep?: ((e: PretrainEvent) => void) | undefined;
}

/** Mean binary cross-entropy of logits x against targets y in {0,1}: max(x,0) − x·y + log(1 + e^−|x|). */
export function bceWithLogits(x: Tensor, y: Tensor): Tensor {
  return F.mean(F.add(F.sub(F.relu(x), F.mul(x, y)), F.log(F.addScalar(F.exp(F.neg(F.abs(x))), 1))));
}

/** Pre-trains a ConvNeXt tower (HF convnext config JSON) by multi-label classification of corpus scenes. */
export function pretrainSupervised(configJson: Record<string, unknown>, o: SupervisedPretrainOptions = {}): PretrainResult<convnext.ConvNextParams> {
  const t0 = performance.now();
  const cfg = convnext.parseConfig(configJson, 'convnext tower');
  const seed = o.seed ?? 0, steps = o.steps ?? 300, B = o.batch ?? 32;
  const rng = rngFor(seed, 0x5afe);
  const C = cfg.hiddenSizes[cfg.hiddenSizes.length - 1]!;
  const trunk = untracked(() => convnext.init(cfg, rng));
  const head = untracked(() => initLinear(C, NUM_LABELS, rng));
  const pool = scenePool({ split: 'train', count: o.poolSize ?? 768, seed, fashion: o.fashion });
  const S = Number(configJson['image_size'] ?? 64), v = o.viewSize ?? S;
  const input = (x: Tensor): Tensor => (x.shape[2] === S ? x : F.interpolate(x, { size: [S, S], mode: 'nearest' }));
  const pooled = (x: Tensor): Tensor => convnext.forwardConvNext(trunk, cfg, input(x)).poolerOutput; // [B, C]
  const losses = trainLoop({ trunk, head }, { steps, lr: o.lr ?? 3e-3, kind: 'supervised', onStep: o.onStep }, () => {
    const idx = sampleBatch(rng, pool.count, B);
    const y = new Float32Array(idx.length * NUM_LABELS);
    idx.forEach((i, b) => y.set(pool.labels.subarray(i * NUM_LABELS, (i + 1) * NUM_LABELS), b * NUM_LABELS));
    let x = sphinxViews(pool, idx, v, rng, 0);
    if (rng.uniform() < 0.5) x = F.indexSelect(x, 3, fromData(Int32Array.from({ length: v }, (_, k) => v - 1 - k), [v], 'i32')); // flip: labels unchanged
    return bceWithLogits(linear(head, pooled(x)), fromData(y, [idx.length, NUM_LABELS]));
  });
  for (const t of flatten<Tensor>(head).values()) t.dispose();
  for (const t of flatten<Tensor>(trunk).values()) t.requiresGrad = false;
  const probe = probeTower((x) => pooled(F.interpolate(x, { size: [v, v], mode: 'bicubic', alignCorners: false })), seed, o.fashion);
  const { first, last } = lossTrend(losses);
  return { params: trunk, losses, first, last, probe, seconds: (performance.now() - t0) / 1000 };
}
