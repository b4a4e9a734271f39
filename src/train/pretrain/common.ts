// Shared pieces of encoder pre-training on the built-in corpus: a pool of rendered scenes with
// their captions and labels (as CLIP-normalised pixel tensors), view sampling (global views,
// SPHINX-style quadrant crops, DINO's random resized crops), a small AdamW loop, and the probes
// that show a tower learned something (retrieval, nearest-centroid classification).
//
// Dims: N scenes, B batch, S canvas side, s view side, D feature width, K classes.

import { backward, noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import { Rng } from '../../engine/rng.ts';
import { fromData, keep, tidy, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import { makeSample, COLOR_NAMES, SHAPES } from '../../data/corpus.ts';
import { FASHION_CLASSES } from '../../data/fashion.ts';
import type { Split } from '../../data/types.ts';
import { normalize } from '../../vision/preprocess.ts';
import { AdamW, clipGradNorm, paramsOf } from '../optim.ts';
import { cosineWithWarmup } from '../schedule.ts';

/** Object classes the probes and the supervised head use: the 10 Fashion-MNIST classes, then the shapes. */
export const OBJECT_CLASSES: readonly string[] = [...FASHION_CLASSES, ...SHAPES];
export const NUM_LABELS = OBJECT_CLASSES.length + COLOR_NAMES.length;

export interface ScenePool {
  /** CLIP-normalised pixels [N, 3, S, S]; kept (owned by the pool). */
  pixels: Tensor;
  captions: string[];
  /** Class of the largest object, index into OBJECT_CLASSES. */
  main: Int32Array;
  /** Multi-hot [N, NUM_LABELS]: object classes present, then colours present. */
  labels: Float32Array;
  size: number;
  count: number;
}

export interface PoolOptions {
  split: Split;
  count: number;
  seed?: number | undefined;
  /** Canvas side (the corpus default is 64). */
  size?: number | undefined;
  /** Share of scenes from the small-object split (default 0.25). */
  smallShare?: number | undefined;
  fashion?: 'auto' | 'subset' | 'full' | undefined;
}

const pools = new Map<string, ScenePool>();

/** Renders (or reuses) a pool of caption scenes from both domains. */
export function scenePool(o: PoolOptions): ScenePool {
  const size = o.size ?? 64, seed = o.seed ?? 0, small = o.smallShare ?? 0.25;
  const key = JSON.stringify([o.split, o.count, seed, size, small, o.fashion ?? 'auto']);
  const hit = pools.get(key);
  if (hit && !hit.pixels.isDisposed) return hit;
  const N = o.count, px = new Float32Array(N * 3 * size * size);
  const captions: string[] = [], main = new Int32Array(N), labels = new Float32Array(N * NUM_LABELS);
  const nSmall = Math.round(N * small);
  for (let i = 0; i < N; i++) {
    const smallObjects = i < nSmall;
    const s = makeSample(i, { domain: 'both', split: o.split, seed: seed + (smallObjects ? 7919 : 0), size, smallObjects, tasks: ['caption'], fashion: o.fashion ?? 'auto' });
    px.set(normalize(s.image), i * 3 * size * size);
    captions.push(s.conversations[1]!.value);
    let best = -1, area = -1;
    for (const ob of s.objects) {
      if (ob.kind === 'text') continue;
      const c = OBJECT_CLASSES.indexOf(ob.name);
      if (c < 0) continue;
      labels[i * NUM_LABELS + c] = 1;
      const col = COLOR_NAMES.indexOf(ob.color);
      if (col >= 0) labels[i * NUM_LABELS + OBJECT_CLASSES.length + col] = 1;
      const a = (ob.box[2] - ob.box[0]) * (ob.box[3] - ob.box[1]);
      if (a > area) { area = a; best = c; }
    }
    main[i] = Math.max(0, best);
  }
  const pool: ScenePool = { pixels: keep(fromData(px, [N, 3, size, size])), captions, main, labels, size, count: N };
  pools.set(key, pool);
  return pool;
}

/** Rows `idx` of the pool as [B, 3, S, S]. */
export function gatherRows(pool: ScenePool, idx: readonly number[]): Tensor {
  return F.indexSelect(pool.pixels, 0, fromData(Int32Array.from(idx), [idx.length], 'i32'));
}

function resize(x: Tensor, s: number, mode: 'bicubic' | 'nearest' = 'bicubic'): Tensor {
  if (x.shape[2] === s && x.shape[3] === s) return x;
  return F.interpolate(x, { size: [s, s], mode, ...(mode === 'bicubic' ? { alignCorners: false } : {}) });
}

/**
 * Views as SPHINX feeds the towers: the global view (whole canvas at s) or, with probability
 * `cropShare`, one of the four quadrants of the 2s resize (a sub-image). [B, 3, s, s].
 */
export function sphinxViews(pool: ScenePool, idx: readonly number[], s: number, rng: Rng, cropShare = 0): Tensor {
  const x = gatherRows(pool, idx); // [B, 3, S, S]
  if (cropShare <= 0) return resize(x, s);
  const rows: Tensor[] = [];
  for (let b = 0; b < idx.length; b++) {
    const one = F.slice(x, 0, b, b + 1);
    if (rng.uniform() >= cropShare) { rows.push(resize(one, s)); continue; }
    const big = resize(one, 2 * s), q = rng.int(4), i = q >> 1, j = q & 1;
    rows.push(F.contiguous(F.slice(F.slice(big, 2, i * s, (i + 1) * s), 3, j * s, (j + 1) * s)));
  }
  return F.concat(rows, 0);
}

/** A random resized crop of each row: area share in [lo, hi], aspect in [3/4, 4/3], resized to s. */
export function randomResizedCrops(x: Tensor, s: number, lo: number, hi: number, rng: Rng): Tensor {
  const [B, , H, W] = x.shape as [number, number, number, number];
  const rows: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const area = H * W * (lo + (hi - lo) * rng.uniform());
    const ar = Math.exp(Math.log(3 / 4) + (Math.log(4 / 3) - Math.log(3 / 4)) * rng.uniform());
    const w = Math.max(4, Math.min(W, Math.round(Math.sqrt(area * ar)))), h = Math.max(4, Math.min(H, Math.round(Math.sqrt(area / ar))));
    const x0 = rng.int(W - w + 1), y0 = rng.int(H - h + 1);
    let c = F.slice(F.slice(F.slice(x, 0, b, b + 1), 2, y0, y0 + h), 3, x0, x0 + w);
    if (rng.uniform() < 0.5) c = F.indexSelect(c, 3, fromData(Int32Array.from({ length: w }, (_, k) => w - 1 - k), [w], 'i32')); // horizontal flip
    rows.push(F.interpolate(F.contiguous(c), { size: [s, s], mode: 'bicubic', alignCorners: false }));
  }
  return F.concat(rows, 0);
}

/** Byte tokens of a caption for the tiny text towers: [BOS=256, bytes..., EOS=257], cut to maxLen. */
export const TEXT_VOCAB = 259; // 256 bytes, BOS, EOS, PAD
export const TEXT_BOS = 256, TEXT_EOS = 257, TEXT_PAD = 258;
export function byteTokens(texts: readonly string[], maxLen: number): { ids: Int32Array; lengths: number[]; T: number } {
  const enc = texts.map((t) => {
    const b = Array.from(Buffer.from(t.toLowerCase(), 'utf8')).slice(0, maxLen - 2);
    return [TEXT_BOS, ...b, TEXT_EOS];
  });
  const T = Math.max(...enc.map((e) => e.length));
  const ids = new Int32Array(texts.length * T).fill(TEXT_PAD);
  enc.forEach((e, i) => ids.set(e, i * T));
  return { ids, lengths: enc.map((e) => e.length), T };
}

/** Random distinct indices in [0, n). */
export function sampleBatch(rng: Rng, n: number, B: number): number[] {
  const out = new Set<number>();
  while (out.size < Math.min(B, n)) out.add(rng.int(n));
  return [...out];
}

export interface PretrainEvent {
  kind: string;
  step: number;
  total: number;
  loss: number;
  lr: number;
  seconds: number;
}

export interface LoopOptions {
  steps: number;
  lr: number;
  warmup?: number | undefined;
  weightDecay?: number | undefined;
  clip?: number | undefined;
  kind: string;
  onStep?: ((e: PretrainEvent) => void) | undefined;
  /** Runs after each optimizer step (EMA teachers). */
  after?: ((step: number) => void) | undefined;
}

/** AdamW + cosine-with-warmup over the trainable leaves of `tree`; `lossAt(step)` builds the loss graph. Returns per-step losses. */
export function trainLoop(tree: unknown, o: LoopOptions, lossAt: (step: number) => Tensor): number[] {
  const params = paramsOf(tree);
  const opt = new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay ?? 0.05, betas: [0.9, 0.98] });
  const sched = cosineWithWarmup({ lr: o.lr, warmupSteps: Math.min(o.warmup ?? Math.ceil(o.steps / 10), o.steps), totalSteps: o.steps, minLr: o.lr / 20 });
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 0; step < o.steps; step++) {
    opt.lr = sched(step);
    const loss = tidy(() => {
      const l = lossAt(step);
      backward(l);
      return F.item(l);
    });
    if (!Number.isFinite(loss)) throw new Error(`${o.kind} pre-training: loss is ${loss} at step ${step + 1}`);
    clipGradNorm(params, o.clip ?? 1.0);
    opt.step();
    opt.zeroGrad();
    o.after?.(step);
    losses.push(loss);
    o.onStep?.({ kind: o.kind, step: step + 1, total: o.steps, loss, lr: opt.lr, seconds: (performance.now() - t0) / 1000 });
  }
  return losses;
}

/** Mean of the first and last `k` losses (k = a fifth of the run, at least 1). */
export function lossTrend(losses: readonly number[]): { first: number; last: number } {
  const k = Math.max(1, Math.floor(losses.length / 5));
  const avg = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { first: avg(losses.slice(0, k)), last: avg(losses.slice(-k)) };
}

/** Features [N, D] of a pool, computed in chunks without a graph. */
export function poolFeatures(pool: ScenePool, featureOf: (x: Tensor) => Tensor, chunk = 64): Float32Array[] {
  const out: Float32Array[] = [];
  noGrad(() => {
    for (let i = 0; i < pool.count; i += chunk) {
      const idx = Array.from({ length: Math.min(chunk, pool.count - i) }, (_, k) => i + k);
      tidy(() => {
        const f = featureOf(gatherRows(pool, idx)); // [b, D]
        const d = F.denseData(f), D = f.shape[1]!;
        for (let b = 0; b < idx.length; b++) out.push(d.slice(b * D, (b + 1) * D));
        return null;
      });
    }
  });
  return out;
}

function unit(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n) || 1;
  return v.map((x) => x / n);
}

/**
 * Nearest-centroid probe: class centroids of centred, L2-normalised training features, accuracy of the
 * closest centroid (cosine) on held-out features. Chance is about 1/K.
 */
export function centroidProbe(train0: Float32Array[], trainY: ArrayLike<number>, test0: Float32Array[], testY: ArrayLike<number>, K: number): number {
  const D = train0[0]!.length;
  // Centre on the training mean so a shared offset does not dominate the cosine.
  const mu = new Float32Array(D);
  for (const f of train0) for (let d = 0; d < D; d++) mu[d]! += f[d]! / train0.length;
  const centre = (f: Float32Array): Float32Array => f.map((x, d) => x - mu[d]!);
  const train = train0.map(centre), test = test0.map(centre);
  const cent = Array.from({ length: K }, () => new Float32Array(D));
  const cnt = new Array<number>(K).fill(0);
  train.forEach((f, i) => { const u = unit(f), c = trainY[i]!; cnt[c]!++; for (let d = 0; d < D; d++) cent[c]![d]! += u[d]!; });
  const cu = cent.map((c, k) => (cnt[k]! > 0 ? unit(c) : null));
  let right = 0;
  test.forEach((f, i) => {
    const u = unit(f);
    let best = -1, bs = -Infinity;
    cu.forEach((c, k) => {
      if (c === null) return;
      let s = 0;
      for (let d = 0; d < D; d++) s += u[d]! * c[d]!;
      if (s > bs) { bs = s; best = k; }
    });
    if (best === testY[i]) right++;
  });
  return right / test.length;
}

/** Image→text top-1 retrieval accuracy from similarity rows [N, N] (diagonal = match). */
export function retrievalTop1(sim: Float32Array, N: number): number {
  let right = 0;
  for (let i = 0; i < N; i++) {
    let best = 0;
    for (let j = 1; j < N; j++) if (sim[i * N + j]! > sim[i * N + best]!) best = j;
    if (best === i) right++;
  }
  return right / N;
}

/** Copies every leaf of `src` into the same path of `dst` (shapes must agree). */
export function copyLeaves(dst: unknown, src: unknown, what: string): void {
  const d = flatten<Tensor>(dst), s = flatten<Tensor>(src);
  for (const [k, t] of s) {
    const to = d.get(k);
    if (to === undefined) throw new Error(`${what}: no parameter '${k}' to load into`);
    if (to.size !== t.size) throw new Error(`${what}: '${k}' has shape [${t.shape}] but the target is [${to.shape}]`);
    to.data.set(F.denseData(t));
  }
  for (const k of d.keys()) if (!s.has(k)) throw new Error(`${what}: '${k}' is missing from the pretrained tower`);
}

/** Seeded generator for a kind (so towers trained in one process do not share streams). */
export function rngFor(seed: number, salt: number): Rng {
  return new Rng(((seed * 1000003) ^ salt) >>> 0);
}
