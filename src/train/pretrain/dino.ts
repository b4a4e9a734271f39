// DINO-style self-distillation of the DINOv2 tower: a student and an EMA teacher (same
// architecture, each with a projection head ending in a weight-normalised prototype layer).
// Multi-crop: 2 global crops at the tower's resolution and a few local crops at half of it; the
// teacher sees only the global crops. Teacher outputs are centred (running mean of its logits)
// and sharpened (low temperature); the student's log-softmax at a higher temperature is trained to
// match them for every (teacher crop, other student crop) pair. The teacher's backbone is the
// tower that is kept, as DINO does.
//
// Dims: B batch, Bc crops·B, D width, H head hidden, Kb bottleneck, K prototypes.

import { noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import { fromData, untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import * as dinov2 from '../../models/dinov2.ts';
import { initLinear, linear, type Linear } from '../../nn/linear.ts';
import { normalInit } from '../../nn/init.ts';
import {
  centroidProbe, gatherRows, lossTrend, OBJECT_CLASSES, poolFeatures, randomResizedCrops, rngFor, sampleBatch, scenePool, trainLoop, type PretrainEvent,
} from './common.ts';
import type { PretrainResult } from './clip.ts';

export interface DinoHead {
  fc1: Linear; // [H, D]
  fc2: Linear; // [Kb, H]
  prototypes: Tensor; // [K, Kb], rows normalised in the forward (weight norm with g = 1)
}

export interface DinoPretrainOptions {
  steps?: number;
  seed?: number;
  batch?: number;
  lr?: number;
  poolSize?: number;
  localCrops?: number;
  prototypes?: number;
  studentTemp?: number;
  teacherTemp?: number;
  fashion?: 'auto' | 'subset' | 'full';
  onStep?: ((e: PretrainEvent) => void) | undefined;
}

function l2rows(x: Tensor): Tensor {
  return F.div(x, F.sqrt(F.addScalar(F.sum(F.square(x), -1, true), 1e-12)));
}

function headForward(h: DinoHead, x: Tensor): Tensor {
  const z = l2rows(linear(h.fc2, F.gelu(linear(h.fc1, x)))); // [Bc, Kb]
  return F.linear(z, l2rows(h.prototypes)); // [Bc, K]
}

/** Self-distills a DINOv2 tower (HF dinov2 config JSON) on corpus scenes. */
export function pretrainDino(configJson: Record<string, unknown>, o: DinoPretrainOptions = {}): PretrainResult<dinov2.Dinov2Params> {
  const t0 = performance.now();
  const cfg = dinov2.parseConfig(configJson, 'dinov2 tower');
  const seed = o.seed ?? 0, steps = o.steps ?? 300, B = o.batch ?? 24, K = o.prototypes ?? 128, nLocal = o.localCrops ?? 4;
  const tS = o.studentTemp ?? 0.1, tT = o.teacherTemp ?? 0.04;
  const rng = rngFor(seed, 0xd170);
  const D = cfg.hiddenSize, Hh = 4 * D, Kb = Math.max(16, D);
  const mk = (): { backbone: dinov2.Dinov2Params; head: DinoHead } => untracked(() => ({
    backbone: dinov2.init(cfg, rngFor(seed, 0xd171)),
    head: { fc1: initLinear(D, Hh, rngFor(seed, 0xd172)), fc2: initLinear(Hh, Kb, rngFor(seed, 0xd173)), prototypes: normalInit([K, Kb], 1, rngFor(seed, 0xd174)) },
  }));
  const student = mk(), teacher = mk();
  const sLeaves = [...flatten<Tensor>(student).entries()], tLeaves = flatten<Tensor>(teacher);
  for (const [k, t] of sLeaves) { const u = tLeaves.get(k)!; u.data.set(t.data); u.requiresGrad = false; }
  const center = new Float32Array(K);
  const pool = scenePool({ split: 'train', count: o.poolSize ?? 768, seed, fashion: o.fashion });
  const g = cfg.imageSize, l = Math.max(cfg.patchSize, Math.round(g / 2 / cfg.patchSize) * cfg.patchSize);
  const cls = (p: dinov2.Dinov2Params, x: Tensor): Tensor => dinov2.forwardDinov2(p, cfg, x).poolerOutput; // [Bc, D]
  const losses = trainLoop(student, {
    steps, lr: o.lr ?? 1e-3, kind: 'dino', onStep: o.onStep,
    after: (step) => {
      // EMA momentum: cosine from 0.99 to 1 over the run.
      const m = 1 - 0.01 * (Math.cos((Math.PI * step) / steps) + 1) / 2;
      for (const [k, t] of sLeaves) {
        const dst = tLeaves.get(k)!.data, src = t.data;
        for (let i = 0; i < dst.length; i++) dst[i] = m * dst[i]! + (1 - m) * src[i]!;
      }
    },
  }, () => {
    const idx = sampleBatch(rng, pool.count, B);
    const x = gatherRows(pool, idx); // [B, 3, S, S]
    const globals = [randomResizedCrops(x, g, 0.35, 1, rng), randomResizedCrops(x, g, 0.35, 1, rng)];
    const locals = Array.from({ length: nLocal }, () => randomResizedCrops(x, l, 0.08, 0.35, rng));
    // Teacher: centred, sharpened targets on the global crops.
    const targets = noGrad(() => globals.map((v) => {
      const z = headForward(teacher.head, cls(teacher.backbone, v)); // [B, K]
      const zd = F.denseData(z);
      const mean = new Float32Array(K);
      for (let b = 0; b < B; b++) for (let k = 0; k < K; k++) mean[k]! += zd[b * K + k]! / B;
      const tgt = F.softmax(F.scale(F.sub(z, fromData(Float32Array.from(center), [1, K])), 1 / tT), -1);
      for (let k = 0; k < K; k++) center[k] = 0.9 * center[k]! + 0.1 * mean[k]! / 2; // two global views per step
      return tgt;
    }));
    const sGlobal = F.chunk(headForward(student.head, cls(student.backbone, F.concat(globals, 0))), 2, 0);
    const sLocal = nLocal > 0 ? F.chunk(headForward(student.head, cls(student.backbone, F.concat(locals, 0))), nLocal, 0) : [];
    const studentOut = [...sGlobal, ...sLocal].map((s) => F.logSoftmax(F.scale(s, 1 / tS), -1)); // each [B, K]
    let total: Tensor | null = null, n = 0;
    targets.forEach((t, i) => studentOut.forEach((s, j) => {
      if (i === j) return;
      const ce = F.neg(F.mean(F.sum(F.mul(t, s), -1)));
      total = total === null ? ce : F.add(total, ce);
      n++;
    }));
    return F.scale(total!, 1 / n);
  });
  for (const [k, t] of flatten<Tensor>(teacher.head)) { void k; t.dispose(); }
  for (const t of flatten<Tensor>(student).values()) t.dispose();
  for (const t of flatten<Tensor>(teacher.backbone).values()) t.requiresGrad = false;
  const probe = probeTower((x) => cls(teacher.backbone, F.interpolate(x, { size: [g, g], mode: 'bicubic', alignCorners: false })), seed, o.fashion);
  const { first, last } = lossTrend(losses);
  return { params: teacher.backbone, losses, first, last, probe, seconds: (performance.now() - t0) / 1000 };
}

/** Nearest-centroid accuracy on the main object's class, features from train scenes, tested on validation scenes. */
export function probeTower(featureOf: (x: Tensor) => Tensor, seed: number, fashion?: 'auto' | 'subset' | 'full'): { name: string; value: number; chance: number } {
  const train = scenePool({ split: 'train', count: 384, seed: seed + 17, smallShare: 0, fashion });
  const val = scenePool({ split: 'val', count: 192, seed, smallShare: 0, fashion });
  const acc = centroidProbe(poolFeatures(train, featureOf), train.main, poolFeatures(val, featureOf), val.main, OBJECT_CLASSES.length);
  const freq = new Array<number>(OBJECT_CLASSES.length).fill(0);
  for (const c of val.main) freq[c]!++;
  return { name: `val nearest-centroid accuracy, main object class (${OBJECT_CLASSES.length} classes; chance = majority class)`, value: acc, chance: Math.max(...freq) / val.count };
}
