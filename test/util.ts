// Shared helpers for the gradcheck and parity suites: seeded inputs with controlled value
// ranges, non-contiguous views (transpose, slice with step, expand, offset), a forward+backward
// runner, finite-difference gradient checks and allclose with informative failures.

import assert from 'node:assert/strict';
import { backward, noGrad, param } from '../src/engine/autograd.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, tidy, type Tensor } from '../src/engine/tensor.ts';
import * as F from '../src/engine/ops/index.ts';

export { Rng };

/** A 32-bit seed from a case name (FNV-1a), so each case's inputs do not depend on table order. */
export function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

// ---- value generators ----------------------------------------------------------------------

/** Fills n values from a seeded Rng. */
export type Gen = (rng: Rng, n: number) => Float32Array;

export const gen = {
  normal: (std = 1, mean = 0): Gen => (r, n) => r.fillNormal(new Float32Array(n), mean, std),
  uniform: (lo = -1, hi = 1): Gen => (r, n) => r.fillUniform(new Float32Array(n), lo, hi),
  /** |x| in [lo, hi] with a random sign: keeps finite differences off the kink at 0. */
  awayFromZero: (lo = 0.1, hi = 1.5): Gen => (r, n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (r.uniform() < 0.5 ? -1 : 1) * (lo + (hi - lo) * r.uniform());
    return out;
  },
  /** Uniform in [lo, hi], redrawn within `margin` of any of `points` (kinks such as clamp bounds). */
  avoiding: (points: readonly number[], margin = 0.05, lo = -1.5, hi = 1.5): Gen => (r, n) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let v: number;
      do v = lo + (hi - lo) * r.uniform(); while (points.some((p) => Math.abs(v - p) < margin));
      out[i] = v;
    }
    return out;
  },
  /** Pairwise distinct values at least `gap` apart (a shuffled grid plus small jitter): no ties for max/top-k. */
  distinct: (gap = 0.05): Gen => (r, n) => {
    const perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    return Float32Array.from(perm, (p) => (p - n / 2) * gap + (r.uniform() - 0.5) * gap * 0.4);
  },
  /** offset + step * k for integer k in [-range, range]: two grids with offsets 0 and step/2 never tie. */
  grid: (step: number, offset: number, range = 6): Gen => (r, n) => Float32Array.from({ length: n }, () => offset + step * (r.int(2 * range + 1) - range)),
};

// ---- layouts -------------------------------------------------------------------------------

/**
 * How an input reaches the op: 'dense' as is; 'transposed' the transpose of a dense [.., n, m]
 * buffer; 'strided' every other element of a longer last axis (slice with step 2, offset 1);
 * 'expanded' a size-1 axis broadcast by expand (stride 0); 'offset' a contiguous slice that
 * starts one row into its storage.
 */
export type Layout = 'dense' | 'transposed' | 'strided' | 'expanded' | 'offset';
export const LAYOUTS: readonly Layout[] = ['dense', 'transposed', 'strided', 'expanded', 'offset'];

/** One f32 input: its dense base buffer and the view the op sees. */
export interface Input {
  readonly shape: readonly number[]; // what the op sees
  readonly layout: Layout;
  readonly baseShape: readonly number[]; // the leaf tensor that holds the data (and gets .grad)
  readonly data: Float32Array; // base values, row-major
  readonly grad: boolean;
}

/** The layout actually usable for `shape` (falls back to simpler ones for low ranks / size-1 dims). */
export function effectiveLayout(shape: readonly number[], layout: Layout): Layout {
  const r = shape.length;
  if (r === 0 || shape.includes(0)) return 'dense';
  if (layout === 'transposed' && r < 2) return 'strided';
  if (layout === 'expanded' && !shape.some((d) => d > 1)) return 'dense';
  return layout;
}

function baseShapeFor(shape: readonly number[], layout: Layout): number[] {
  const s = shape.slice();
  const r = s.length;
  switch (layout) {
    case 'dense': return s;
    case 'transposed': [s[r - 2], s[r - 1]] = [s[r - 1]!, s[r - 2]!]; return s;
    case 'strided': s[r - 1] = 2 * s[r - 1]! + 1; return s;
    case 'expanded': s[expandAxis(shape)] = 1; return s;
    case 'offset': s[0] = s[0]! + 1; return s;
  }
}

function expandAxis(shape: readonly number[]): number {
  return shape.findIndex((d) => d > 1);
}

/** The view of `base` that an op sees for this input (no-op for 'dense'). */
export function applyLayout(base: Tensor, inp: Input): Tensor {
  const r = inp.shape.length;
  switch (inp.layout) {
    case 'dense': return base;
    case 'transposed': return F.transpose(base, r - 2, r - 1);
    case 'strided': return F.slice(base, r - 1, 1, undefined, 2);
    case 'expanded': return F.expand(base, inp.shape);
    case 'offset': return F.slice(base, 0, 1);
  }
}

export interface InputOptions { layout?: Layout; gen?: Gen; grad?: boolean }

/** A seeded f32 input of the given (view) shape. */
export function input(rng: Rng, shape: readonly number[], opts: InputOptions = {}): Input {
  const layout = effectiveLayout(shape, opts.layout ?? 'dense');
  const baseShape = baseShapeFor(shape, layout);
  const n = baseShape.reduce((a, b) => a * b, 1);
  return { shape: shape.slice(), layout, baseShape, data: (opts.gen ?? gen.normal())(rng, n), grad: opts.grad ?? true };
}

/** A constant (non-differentiated) f32 input. */
export function constant(rng: Rng, shape: readonly number[], opts: Omit<InputOptions, 'grad'> = {}): Input {
  return input(rng, shape, { ...opts, grad: false });
}

/** Describes inputs for test names: "[2, 3]T [3]". */
export function describeInputs(inputs: readonly Input[]): string {
  const tag: Record<Layout, string> = { dense: '', transposed: 'ᵀ', strided: '/2', expanded: '⇱', offset: '+off' };
  return inputs.map((i) => `[${i.shape.join(',')}]${tag[i.layout]}`).join(' ');
}

// ---- seeded index / mask tensors ------------------------------------------------------------

export function intTensor(values: ArrayLike<number>, shape: readonly number[]): Tensor {
  return fromData(Int32Array.from(values), shape, 'i32');
}

export function randInts(rng: Rng, shape: readonly number[], n: number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return intTensor(Array.from({ length: size }, () => rng.int(n)), shape);
}

export function randMask(rng: Rng, shape: readonly number[], pTrue = 0.7): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return fromData(Uint8Array.from({ length: size }, () => (rng.uniform() < pTrue ? 1 : 0)), shape, 'bool');
}

/** A random permutation of [0, n). */
export function permutation(rng: Rng, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

// ---- closeness -----------------------------------------------------------------------------

/** Row-major multi-index of flat index i in shape. */
export function fmtIndex(i: number, shape?: readonly number[]): string {
  if (shape === undefined || shape.length === 0) return `[${i}]`;
  const idx: number[] = [];
  let rest = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx.unshift(n > 0 ? rest % n : 0);
    rest = n > 0 ? Math.floor(rest / n) : 0;
  }
  return `[${idx.join(', ')}]`;
}

export interface CloseOptions {
  rtol?: number;
  atol?: number;
  /** Shape for multi-index reporting. */
  shape?: readonly number[] | undefined;
  what?: string;
}

/**
 * null when |actual - expected| <= atol + rtol * |expected| everywhere (NaN matches NaN, equal
 * infinities match), else a message with the mismatch count, max abs/rel errors and indices.
 */
export function closeReport(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOptions = {}): string | null {
  const rtol = opts.rtol ?? 1e-4, atol = opts.atol ?? 1e-5, what = opts.what ?? 'values';
  if (actual.length !== expected.length) return `${what}: length ${actual.length}, expected ${expected.length}`;
  let bad = 0, firstBad = -1, worst = -1, worstExcess = 0;
  let maxAbs = 0, maxAbsAt = -1, maxRel = 0, maxRelAt = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Object.is(a, e) || a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const abs = Number.isFinite(a) && Number.isFinite(e) ? Math.abs(a - e) : Infinity;
    const rel = abs / Math.max(Math.abs(e), 1e-30);
    if (abs > maxAbs) { maxAbs = abs; maxAbsAt = i; }
    if (rel > maxRel) { maxRel = rel; maxRelAt = i; }
    const excess = abs / (atol + rtol * Math.abs(e));
    if (excess > 1) {
      bad++;
      if (firstBad < 0) firstBad = i;
      if (excess > worstExcess) { worstExcess = excess; worst = i; }
    }
  }
  if (bad === 0) return null;
  const at = (i: number): string => `${fmtIndex(i, opts.shape)} (got ${actual[i]}, expected ${expected[i]})`;
  const shape = opts.shape ? ` of shape [${opts.shape.join(', ')}]` : '';
  return (
    `${what}: ${bad}/${actual.length} elements${shape} differ beyond rtol ${rtol}, atol ${atol}\n` +
    `  max abs err ${maxAbs.toExponential(3)} at ${at(maxAbsAt)}\n` +
    `  max rel err ${maxRel.toExponential(3)} at ${at(maxRelAt)}\n` +
    `  worst vs tolerance (${worstExcess.toFixed(1)}x) at ${at(worst)}; first mismatch at ${at(firstBad)}`
  );
}

export function allclose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOptions = {}): void {
  const r = closeReport(actual, expected, opts);
  if (r !== null) assert.fail(r);
}

// ---- forward + backward --------------------------------------------------------------------

export type OpFn = (...xs: Tensor[]) => Tensor | Tensor[];

export interface RunResult {
  outs: Float32Array[]; // every output's values (i32 outputs converted)
  outShapes: number[][];
  outDtypes: string[];
  weights: (Float64Array | null)[]; // cotangent per output (null: not differentiated)
  grads: (Float32Array | null)[]; // per input, of its base tensor
}

/** Seeded N(0, 1) cotangents, one per output that requires grad. */
function weightsFor(outs: Tensor[], seed: number): (Float64Array | null)[] {
  const rng = new Rng(seed);
  return outs.map((o) => (o.dtype === 'f32' && o.requiresGrad ? Float64Array.from(rng.fillNormal(new Float32Array(o.size))) : null));
}

/**
 * Runs fn on fresh leaves made from the inputs (views applied), then backpropagates
 * L = sum_i sum(out_i * W_i) with seeded weights W_i. Uses the active backend.
 */
export function runCase(fn: OpFn, inputs: readonly Input[], seed = 1234): RunResult {
  return tidy(() => {
    const leaves = inputs.map((inp) => {
      const t = fromData(inp.data.slice(), inp.baseShape);
      return inp.grad ? param(t) : t;
    });
    const views = leaves.map((l, k) => applyLayout(l, inputs[k]!));
    const res = fn(...views);
    const outs = Array.isArray(res) ? res : [res];
    const weights = weightsFor(outs, seed);
    const diff = outs.map((o, k) => [o, weights[k]] as const).filter((p): p is readonly [Tensor, Float64Array] => p[1] !== null);
    if (diff.length === 1) {
      const [o, w] = diff[0]!;
      backward(o, fromData(Float32Array.from(w), o.shape));
    } else if (diff.length > 1) {
      let loss: Tensor | null = null;
      for (const [o, w] of diff) {
        const term = F.sum(F.mul(o, fromData(Float32Array.from(w), o.shape)));
        loss = loss === null ? term : F.add(loss, term);
      }
      backward(loss!);
    }
    const result: RunResult = {
      outs: outs.map((o) => Float32Array.from(F.toArray(o))),
      outShapes: outs.map((o) => o.shape.slice()),
      outDtypes: outs.map((o) => o.dtype),
      weights,
      grads: leaves.map((l) => (l.grad ? Float32Array.from(F.toArray(l.grad)) : null)),
    };
    for (const l of leaves) if (l.grad) { l.grad.dispose(); l.grad = null; }
    return result;
  });
}

export interface GradcheckOptions {
  /** Finite-difference step (applied in f32; the actual step x+ - x- is used). */
  eps?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

/**
 * Compares the autograd gradient of L = sum(out * W) (W seeded N(0, 1)) with central finite
 * differences, for every element of every input with grad: true. The differences of L are
 * accumulated in f64 from the f32 outputs, elementwise, so unaffected outputs cancel exactly.
 * Passes when |num - ana| <= atol + rtol * max(|num|, |ana|). Throws a descriptive error otherwise.
 */
export function gradcheck(fn: OpFn, inputs: readonly Input[], opts: GradcheckOptions = {}): void {
  const eps = opts.eps ?? 1e-2, rtol = opts.rtol ?? 2e-2, atol = opts.atol ?? 2e-3;
  const ana = runCase(fn, inputs, opts.seed);
  assert.ok(ana.weights.some((w) => w !== null), 'gradcheck: no output requires grad');
  const cur = inputs.map((inp) => inp.data.slice());
  const evalOuts = (): Float32Array[] =>
    noGrad(() =>
      tidy(() => {
        const views = inputs.map((inp, k) => applyLayout(fromData(cur[k]!, inp.baseShape), inp));
        const res = fn(...views);
        return (Array.isArray(res) ? res : [res]).map((o) => Float32Array.from(F.toArray(o)));
      }),
    );
  const failures: string[] = [];
  let checked = 0;
  for (let k = 0; k < inputs.length; k++) {
    const inp = inputs[k]!;
    if (!inp.grad) continue;
    const g = ana.grads[k];
    if (g === null || g === undefined) {
      failures.push(`input ${k} ${describeInputs([inp])}: no gradient reached the leaf`);
      continue;
    }
    const x = cur[k]!;
    let worstMsg = '', worstExcess = 0, bad = 0, maxAbs = 0;
    for (let i = 0; i < x.length; i++) {
      const x0 = x[i]!;
      x[i] = x0 + eps;
      const xp = x[i]!;
      const op = evalOuts();
      x[i] = x0 - eps;
      const xm = x[i]!;
      const om = evalOuts();
      x[i] = x0;
      let dl = 0;
      for (let o = 0; o < op.length; o++) {
        const w = ana.weights[o];
        if (w === null || w === undefined) {
          // Discrete outputs (indices) must not change, or the step crossed a tie.
          if (closeReport(op[o]!, om[o]!, { rtol: 0, atol: 0 }) !== null) {
            failures.push(`input ${k} element ${fmtIndex(i, inp.baseShape)}: step ±${eps} changed non-differentiable output ${o} (a tie or kink within eps)`);
          }
          continue;
        }
        const a = op[o]!, b = om[o]!;
        for (let j = 0; j < a.length; j++) dl += (a[j]! - b[j]!) * w[j]!;
      }
      const num = dl / (xp - xm);
      const an = g[i]!;
      const err = Math.abs(num - an);
      maxAbs = Math.max(maxAbs, err);
      const excess = err / (atol + rtol * Math.max(Math.abs(num), Math.abs(an)));
      checked++;
      if (!(excess <= 1)) {
        bad++;
        if (!(excess <= worstExcess)) {
          worstExcess = excess;
          worstMsg = `worst at ${fmtIndex(i, inp.baseShape)}: autograd ${an}, finite difference ${num} (|err| ${err.toExponential(3)}, ${excess.toFixed(1)}x tolerance)`;
        }
      }
    }
    if (bad > 0) {
      failures.push(`input ${k} ${describeInputs([inp])} (base [${inp.baseShape.join(', ')}]): ${bad}/${x.length} gradient elements differ (rtol ${rtol}, atol ${atol}, eps ${eps}); max abs err ${maxAbs.toExponential(3)}; ${worstMsg}`);
    }
  }
  if (failures.length > 0) assert.fail(`gradcheck failed:\n  ${failures.join('\n  ')}`);
  assert.ok(checked > 0, 'gradcheck: no input has grad: true');
}
