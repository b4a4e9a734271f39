// "native equals reference": every op case runs forward + backward on the reference backend
// (the oracle) and on the native backend at 1 and 2 threads; outputs and all input gradients
// must agree. Shapes are drawn from a seeded Rng (odd sizes, broadcasting, non-contiguous
// views); a second table holds large cases that push native kernels onto their blocked /
// vectorised / multi-threaded paths. Also: bad inputs must throw a descriptive Error on both
// backends, never crash the process.
//
// Default tolerance rtol 1e-4, atol 1e-5. Cases that sum many f32 terms in a different order
// (long reductions, GEMM with large K, softmax / attention / cross-entropy normalisers)
// use atol 1e-4: their outputs are O(1)-O(10) sums whose f32 rounding differs by ~n * 2^-24
// relative between accumulation orders, so an element that cancels to ~0 can differ by ~1e-5.
//
// CHIMERA_PARITY_SELFTEST=1 runs the suite with the reference backend standing in for native
// (checks this harness when the addon is not built). CHIMERA_PARITY_TRACE=1 writes each case
// name to stderr before it runs (unbuffered), to find a case that crashes the process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeSync } from 'node:fs';
import { setBackend, type Backend } from '../src/engine/backend.ts';
import { referenceBackend } from '../src/backends/reference/index.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import * as F from '../src/engine/ops/index.ts';
import {
  closeReport, constant, describeInputs, gen, input, intTensor, LAYOUTS, pick, randInts, randMask, Rng, runCase, seedOf,
  type Gen, type Input, type Layout, type OpFn, type RunResult,
} from './util.ts';

// ---- backend under test -----------------------------------------------------------------------

let native: Backend | null = null;
let unavailable = 'native addon not built';
if (process.env['CHIMERA_PARITY_SELFTEST'] === '1') native = referenceBackend;
else {
  try {
    // Dynamic: the backend index imports native/ bindings that may not exist yet.
    const m = await import('../src/backends/index.ts');
    native = m.nativeBackend();
    if (native === null) {
      const why = (await import('../src/backends/native/index.ts')).nativeLoadError();
      if (why !== null) unavailable = why.startsWith(unavailable) ? why : `${unavailable} (${why})`;
    }
  } catch (e) {
    unavailable = `native addon not built (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`;
  }
}

setBackend(referenceBackend);

const trace = process.env['CHIMERA_PARITY_TRACE'] === '1';
function traceCase(name: string): void {
  if (trace) writeSync(2, `parity: ${name}\n`);
}

// ---- case tables --------------------------------------------------------------------------------

interface Tol { rtol?: number; atol?: number }
interface Inst { inputs: Input[]; fn: OpFn; label?: string; tol?: Tol }
interface OpCase {
  name: string;
  /** Number of random draws (default 4). */
  draws?: number;
  make: (r: Rng) => Inst;
  tol?: Tol;
  todo?: string;
}

const LOOSE: Tol = { rtol: 1e-4, atol: 1e-4 };

const DIMS = [1, 2, 3, 7, 16, 33, 65, 130];
function dim(r: Rng, pool: readonly number[] = DIMS): number {
  return pick(r, pool);
}
/** A random shape of the given rank with at most maxSize elements (dims shrunk as needed). */
function shapeOf(r: Rng, rank: number, maxSize = 6000, pool: readonly number[] = DIMS): number[] {
  const s = Array.from({ length: rank }, () => dim(r, pool));
  while (s.reduce((a, b) => a * b, 1) > maxSize) {
    const i = s.indexOf(Math.max(...s));
    s[i] = Math.max(1, Math.floor(s[i]! / 2));
  }
  return s;
}
/** A shape that broadcasts against `s`: some leading dims dropped, some dims set to 1. */
function broadcastPartner(r: Rng, s: readonly number[]): number[] {
  const drop = r.uniform() < 0.4 ? r.int(s.length + 1) : 0;
  return s.slice(drop).map((d) => (r.uniform() < 0.35 ? 1 : d));
}
/** Dense about 40% of the time, else a random non-contiguous layout. */
function layout(r: Rng): Layout {
  return r.uniform() < 0.4 ? 'dense' : pick(r, LAYOUTS);
}

const cases: OpCase[] = [];
const bigCases: OpCase[] = [];

// Elementwise binary with random broadcasting.
const binaryOps: [string, (a: Tensor, b: Tensor) => Tensor, Gen, Gen][] = [
  ['add', F.add, gen.normal(), gen.normal()],
  ['sub', F.sub, gen.normal(), gen.normal()],
  ['mul', F.mul, gen.normal(), gen.normal()],
  ['div', F.div, gen.normal(), gen.awayFromZero(0.5, 2)],
  ['pow', F.pow, gen.uniform(0.5, 2), gen.uniform(-2, 2)],
  ['maximum', F.maximum, gen.normal(), gen.normal()],
  ['minimum', F.minimum, gen.normal(), gen.normal()],
];
for (const [name, op, ga, gb] of binaryOps) {
  cases.push({
    name,
    draws: 5,
    make: (r) => {
      const s = shapeOf(r, 1 + r.int(4));
      const p = broadcastPartner(r, s);
      const [sa, sb] = r.uniform() < 0.5 ? [s, p] : [p, s];
      return { inputs: [input(r, sa, { layout: layout(r), gen: ga }), input(r, sb, { layout: layout(r), gen: gb })], fn: (a, b) => op(a!, b!) };
    },
  });
}
cases.push({
  name: 'comparisons (eq ne lt le gt ge)',
  make: (r) => {
    const s = shapeOf(r, 1 + r.int(3));
    const g = gen.grid(0.5, 0, 2); // many exact ties
    return {
      inputs: [constant(r, s, { layout: layout(r), gen: g }), constant(r, broadcastPartner(r, s), { layout: layout(r), gen: g })],
      fn: (a, b) => [F.eq(a!, b!), F.ne(a!, b!), F.lt(a!, b!), F.le(a!, b!), F.gt(a!, b!), F.ge(a!, b!)],
    };
  },
});

// Unary.
const pos = gen.uniform(0.3, 3);
const unaryOps: [string, (x: Tensor) => Tensor, Gen, Tol?][] = [
  ['neg', F.neg, gen.normal()], ['abs', F.abs, gen.normal()], ['exp', F.exp, gen.normal(2)],
  ['log', F.log, pos], ['sqrt', F.sqrt, pos], ['rsqrt', F.rsqrt, pos], ['square', F.square, gen.normal()],
  ['reciprocal', F.reciprocal, gen.awayFromZero(0.3, 3)], ['sin', F.sin, gen.normal(3)], ['cos', F.cos, gen.normal(3)],
  ['tanh', F.tanh, gen.normal(2)], ['sigmoid', F.sigmoid, gen.normal(4)], ['relu', F.relu, gen.normal()],
  ['gelu', F.gelu, gen.normal(3)], ['geluTanh', F.geluTanh, gen.normal(3)], ['quickGelu', F.quickGelu, gen.normal(3)],
  ['silu', F.silu, gen.normal(4)], ['sign', F.sign, gen.normal()],
  ['scale', (x) => F.scale(x, -1.7), gen.normal()], ['addScalar', (x) => F.addScalar(x, 0.3), gen.normal()],
  ['powScalar 3', (x) => F.powScalar(x, 3), gen.normal()], ['powScalar 2.5', (x) => F.powScalar(x, 2.5), pos],
  ['powScalar -0.5', (x) => F.powScalar(x, -0.5), pos], ['clamp', (x) => F.clamp(x, -0.5, 0.7), gen.normal()],
];
for (const [name, op, g, tol] of unaryOps) {
  cases.push({
    name, draws: 3, ...(tol ? { tol } : {}),
    make: (r) => ({ inputs: [input(r, shapeOf(r, 1 + r.int(3), 5000), { layout: layout(r), gen: g })], fn: (x) => op(x!) }),
  });
}

// Selection.
cases.push({
  name: 'where',
  make: (r) => {
    const s = shapeOf(r, 1 + r.int(3));
    const cond = randMask(r, broadcastPartner(r, s), 0.5);
    return { inputs: [input(r, s, { layout: layout(r) }), input(r, broadcastPartner(r, s), { layout: layout(r) })], fn: (a, b) => [F.where(cond, a!, b!), F.where(cond, 1.5, b!)] };
  },
});
cases.push({
  name: 'maskedFill',
  make: (r) => {
    const s = shapeOf(r, 1 + r.int(3));
    const mask = randMask(r, broadcastPartner(r, s), 0.3);
    return { inputs: [input(r, s, { layout: layout(r) })], fn: (x) => F.maskedFill(x!, mask, -1e4) };
  },
});

// Reductions.
function randAxes(r: Rng, rank: number): number[] {
  const axes = Array.from({ length: rank }, (_, i) => i).filter(() => r.uniform() < 0.5);
  return axes.length > 0 ? axes : [r.int(rank)];
}
cases.push({
  name: 'sum over random axes', draws: 6, tol: LOOSE,
  make: (r) => {
    const rank = 1 + r.int(4), axes = randAxes(r, rank), keep = r.uniform() < 0.5;
    return { label: `axes [${axes}] keepdim=${keep}`, inputs: [input(r, shapeOf(r, rank), { layout: layout(r) })], fn: (x) => F.sum(x!, axes, keep) };
  },
});
cases.push({
  name: 'mean over random axes', tol: LOOSE,
  make: (r) => {
    const rank = 1 + r.int(4), axes = randAxes(r, rank);
    return { label: `axes [${axes}]`, inputs: [input(r, shapeOf(r, rank), { layout: layout(r) })], fn: (x) => F.mean(x!, axes) };
  },
});
for (const [name, op, arg] of [['max', F.max, F.argmax], ['min', F.min, F.argmin]] as const) {
  cases.push({
    name: `${name} / arg${name} along a random axis`, draws: 5,
    make: (r) => {
      const rank = 1 + r.int(3), axis = r.int(rank) - (r.uniform() < 0.5 ? rank : 0), keep = r.uniform() < 0.5;
      return { label: `axis ${axis} keepdim=${keep}`, inputs: [input(r, shapeOf(r, rank), { layout: layout(r) })], fn: (x) => [op(x!, axis, keep), arg(x!, axis, keep)] };
    },
  });
}

// Matmul / linear.
cases.push({
  name: 'matmul', draws: 8, tol: LOOSE,
  make: (r) => {
    const M = dim(r), K = dim(r), N = dim(r);
    const batches: [number[], number[]][] = [[[], []], [[3], [3]], [[2, 1], [3]], [[2], []], [[], [2]], [[1], [2]]];
    const [ba, bb] = pick(r, batches);
    return { inputs: [input(r, [...ba, M, K], { layout: layout(r) }), input(r, [...bb, K, N], { layout: layout(r) })], fn: (a, b) => F.matmul(a!, b!) };
  },
});
cases.push({
  name: 'matmul with 1-D operands', draws: 4, tol: LOOSE,
  make: (r) => {
    const K = dim(r), kind = pick(r, ['vec @ mat', 'mat @ vec', 'vec @ vec', 'vec @ batched'] as const);
    const sa = kind === 'mat @ vec' ? [dim(r), K] : [K];
    const sb = kind === 'vec @ mat' ? [K, dim(r)] : kind === 'vec @ batched' ? [3, K, dim(r)] : [K];
    return { label: kind, inputs: [input(r, sa, { layout: layout(r) }), input(r, sb, { layout: layout(r) })], fn: (a, b) => F.matmul(a!, b!) };
  },
});
cases.push({
  name: 'linear', draws: 5, tol: LOOSE,
  make: (r) => {
    const inF = dim(r), outF = dim(r), lead = shapeOf(r, 1 + r.int(2), 200);
    const bias = r.uniform() < 0.6;
    return {
      label: bias ? 'bias' : 'no bias',
      inputs: [input(r, [...lead, inF], { layout: layout(r) }), input(r, [outF, inF], { layout: layout(r) }), ...(bias ? [input(r, [outF])] : [])],
      fn: (x, w, b) => F.linear(x!, w!, b ?? null),
    };
  },
});

// Softmax / norms.
for (const [name, op] of [['softmax', F.softmax], ['logSoftmax', F.logSoftmax]] as const) {
  cases.push({
    name: `${name} last axis`, draws: 5, tol: LOOSE,
    make: (r) => {
      const n = pick(r, [1, 7, 33, 130, 1000]);
      return { inputs: [input(r, [...shapeOf(r, 1 + r.int(2), 64), n], { layout: layout(r), gen: gen.normal(4) })], fn: (x) => op(x!) };
    },
  });
  cases.push({
    name: `${name} along a non-last axis`, draws: 3, tol: LOOSE,
    make: (r) => {
      const s = shapeOf(r, 2 + r.int(2), 4000), axis = r.int(s.length - 1);
      return { label: `axis ${axis}`, inputs: [input(r, s, { layout: layout(r), gen: gen.normal(3) })], fn: (x) => op(x!, axis) };
    },
  });
  cases.push({
    name: `${name} with -Infinity entries`, draws: 2, tol: LOOSE,
    make: (r) => {
      const n = pick(r, [7, 33, 130]), rows = dim(r, [1, 3, 7]);
      const mask = randMask(r, [rows, n], 0.3);
      for (let i = 0; i < rows; i++) mask.u8[i * n] = 0; // every row keeps a finite entry
      return { inputs: [input(r, [rows, n], { gen: gen.normal(2) })], fn: (x) => op(F.maskedFill(x!, mask, -Infinity)) };
    },
  });
}
cases.push({
  name: 'layerNorm', draws: 6, tol: LOOSE,
  make: (r) => {
    const n = pick(r, [1, 2, 7, 33, 130, 1000]), lead = shapeOf(r, 1 + r.int(2), 64);
    const aff = pick(r, ['both', 'none', 'weight', 'bias'] as const);
    const ins = [input(r, [...lead, n], { layout: layout(r), gen: gen.normal(2, 0.5) })];
    if (aff === 'both' || aff === 'weight') ins.push(input(r, [n]));
    if (aff === 'both' || aff === 'bias') ins.push(input(r, [n]));
    return {
      label: `affine=${aff}`, inputs: ins,
      fn: (x, p, q) => F.layerNorm(x!, aff === 'both' || aff === 'weight' ? p! : null, aff === 'both' ? q! : aff === 'bias' ? p! : null),
    };
  },
});
cases.push({
  name: 'rmsNorm', draws: 5, tol: LOOSE,
  make: (r) => {
    const n = pick(r, [1, 2, 7, 33, 130, 1000]), lead = shapeOf(r, 1 + r.int(2), 64), w = r.uniform() < 0.6;
    return { label: w ? 'weight' : 'no weight', inputs: [input(r, [...lead, n], { layout: layout(r) }), ...(w ? [input(r, [n])] : [])], fn: (x, p) => F.rmsNorm(x!, p ?? null) };
  },
});

// RoPE.
function ropeTables(T: number, half: number, start: number): [Tensor, Tensor] {
  const c = new Float32Array(T * half), s = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = (start + t) * Math.pow(10000, -i / Math.max(half, 1));
      c[t * half + i] = Math.cos(a);
      s[t * half + i] = Math.sin(a);
    }
  }
  return [fromData(c, [T, half]), fromData(s, [T, half])];
}
cases.push({
  name: 'rope', draws: 6,
  make: (r) => {
    const T = dim(r, [1, 7, 33]), D = pick(r, [2, 8, 64, 66]), rot = r.uniform() < 0.5 ? D : 2 * (1 + r.int(D / 2));
    const interleaved = r.uniform() < 0.5;
    const [c, s] = ropeTables(T, rot / 2, r.int(100));
    return {
      label: `rot ${rot} interleaved=${interleaved}`,
      inputs: [input(r, [dim(r, [1, 2]), dim(r, [1, 3]), T, D], { layout: layout(r) })],
      fn: (x) => F.rope(x!, c, s, { interleaved }),
    };
  },
});

// Attention.
type MaskKind = 'none' | 'qk' | 'keypad' | 'full' | 'rows';
function attnMask(r: Rng, kind: MaskKind, B: number, H: number, Tq: number, Tk: number): Tensor | null {
  switch (kind) {
    case 'none': return null;
    case 'qk': return randMask(r, [Tq, Tk], 0.7);
    case 'keypad': return randMask(r, [B, 1, 1, Tk], 0.8);
    case 'full': return randMask(r, [B, H, Tq, Tk], 0.7);
    case 'rows': return randMask(r, [Tq, 1], 0.8); // last dim 1: materialised path, some fully masked rows
  }
}
function attentionCase(r: Rng, sizes: { Tq?: number; Tk?: number; D?: number } = {}): Inst {
  const B = dim(r, [1, 2]), Hkv = dim(r, [1, 2]), H = Hkv * dim(r, [1, 2, 3]);
  const Tq = sizes.Tq ?? dim(r, [1, 7, 33]), Tk = sizes.Tk ?? Tq + pick(r, [0, 0, 5, 32]);
  const D = sizes.D ?? pick(r, [1, 8, 32, 33]), Dv = r.uniform() < 0.7 ? D : pick(r, [4, 16]);
  const causal = r.uniform() < 0.5, kind = pick(r, ['none', 'qk', 'keypad', 'full', 'rows'] as const);
  const scale = r.uniform() < 0.7 ? undefined : 0.3;
  const mask = attnMask(r, kind, B, H, Tq, Tk);
  return {
    label: `B${B} H${H}/${Hkv} Tq${Tq} Tk${Tk} D${D} Dv${Dv} causal=${causal} mask=${kind}${scale ? ' scale=0.3' : ''}`,
    inputs: [input(r, [B, H, Tq, D], { layout: layout(r) }), input(r, [B, Hkv, Tk, D], { layout: layout(r) }), input(r, [B, Hkv, Tk, Dv], { layout: layout(r) })],
    fn: (q, k, v) => F.attention(q!, k!, v!, { causal, mask, ...(scale ? { scale } : {}) }),
  };
}
cases.push({ name: 'attention', draws: 10, tol: LOOSE, make: (r) => attentionCase(r) });
cases.push({ name: 'attention Tq > Tk causal (rows that see nothing)', draws: 2, tol: LOOSE, make: (r) => {
  const c = attentionCase(r, { Tq: 9, Tk: 4 });
  return { ...c, label: `Tq9 Tk4 causal, no mask`, fn: (q, k, v) => F.attention(q!, k!, v!, { causal: true }) };
} });

// Losses / lookup.
cases.push({
  name: 'crossEntropy', draws: 8, tol: LOOSE,
  make: (r) => {
    const lead = shapeOf(r, 1 + r.int(2), 40), V = pick(r, [1, 2, 7, 130, 1000]);
    const rows = lead.reduce((a, b) => a * b, 1);
    const t = intTensor(Array.from({ length: rows }, () => (r.uniform() < 0.2 ? -100 : r.int(V))), lead);
    const smoothing = pick(r, [0, 0, 0.1]), reduction = pick(r, ['mean', 'sum', 'none'] as const);
    return {
      label: `V${V} smoothing=${smoothing} reduction=${reduction}`,
      inputs: [input(r, [...lead, V], { layout: layout(r), gen: gen.normal(3) })],
      fn: (x) => F.crossEntropy(x!, t, { labelSmoothing: smoothing, reduction }),
    };
  },
});
cases.push({
  name: 'embedding', draws: 4,
  make: (r) => {
    const V = dim(r, [1, 7, 33, 130]), D = dim(r), ids = randInts(r, shapeOf(r, 1 + r.int(2), 64), V);
    return { inputs: [input(r, [V, D], { layout: layout(r) })], fn: (w) => F.embedding(w!, ids) };
  },
});

// Scans.
cases.push({
  name: 'cumsum', draws: 6, tol: LOOSE,
  make: (r) => {
    const rank = 1 + r.int(3), axis = r.int(rank), reverse = r.uniform() < 0.5;
    return { label: `axis ${axis} reverse=${reverse}`, inputs: [input(r, shapeOf(r, rank), { layout: layout(r) })], fn: (x) => F.cumsum(x!, axis, reverse) };
  },
});
cases.push({
  name: 'topk', draws: 6,
  make: (r) => {
    const n = dim(r, [1, 7, 33, 130, 1000]), k = pick(r, [1, Math.ceil(n / 3), n]);
    return { label: `k=${k}`, inputs: [input(r, [...shapeOf(r, 1 + r.int(2), 32), n], { layout: layout(r) })], fn: (x) => { const t = F.topk(x!, k); return [t.values, t.indices]; } };
  },
});

// Convolution / pooling / resampling.
cases.push({
  name: 'conv2d', draws: 10, tol: LOOSE,
  make: (r) => {
    const kind = pick(r, ['dense', 'grouped', 'depthwise'] as const);
    const C = kind === 'dense' ? dim(r, [1, 3, 4]) : pick(r, [2, 4, 6]);
    const groups = kind === 'dense' ? 1 : kind === 'depthwise' ? C : 2;
    const Cout = kind === 'depthwise' ? C : groups * dim(r, [1, 2, 3]);
    const k = pick(r, [1, 3, 5]), s = pick(r, [1, 1, 2]), d = k === 1 ? 1 : pick(r, [1, 1, 2]), p = r.int(Math.floor((k * d) / 2) + 1);
    const H = Math.max(dim(r, [5, 7, 9, 16]), d * (k - 1) + 1), W = Math.max(dim(r, [5, 7, 9, 16]), d * (k - 1) + 1);
    const bias = r.uniform() < 0.5;
    return {
      label: `${kind} groups=${groups} k${k} s${s} p${p} d${d}${bias ? ' bias' : ''}`,
      inputs: [input(r, [dim(r, [1, 2]), C, H, W], { layout: layout(r) }), input(r, [Cout, C / groups, k, k], { layout: layout(r), gen: gen.normal(0.5) }), ...(bias ? [input(r, [Cout])] : [])],
      fn: (x, w, b) => F.conv2d(x!, w!, b ?? null, { stride: s, padding: p, dilation: d, groups }),
    };
  },
});
for (const kind of ['max', 'avg'] as const) {
  cases.push({
    name: `${kind}Pool2d`, draws: 6,
    make: (r) => {
      const k = pick(r, [2, 3]), s = pick(r, [1, 2, k]), p = r.int(Math.floor(k / 2) + 1), cip = r.uniform() < 0.5;
      const x = input(r, [dim(r, [1, 2]), dim(r, [1, 3]), dim(r, [4, 7, 16]), dim(r, [4, 7, 16])], { layout: layout(r) });
      const opts = { stride: s, padding: p, countIncludePad: cip };
      return { label: `k${k} s${s} p${p}${kind === 'avg' ? ` countIncludePad=${cip}` : ''}`, inputs: [x], fn: (t) => (kind === 'max' ? F.maxPool2d(t!, k, opts) : F.avgPool2d(t!, k, opts)) };
    },
  });
}
cases.push({
  name: 'interpolate', draws: 12,
  make: (r) => {
    const mode = pick(r, ['nearest', 'bilinear', 'bicubic'] as const);
    const H = dim(r, [1, 3, 7, 16]), W = dim(r, [1, 3, 7, 16]);
    const opts: F.InterpolateOptions = r.uniform() < 0.6
      ? { mode, size: [dim(r, [1, 2, 5, 13, 32]), dim(r, [1, 2, 5, 13, 32])] }
      : { mode, scaleFactor: pick(r, [0.5, 1.5, 2, 3]) };
    const o: F.InterpolateOptions = mode === 'nearest' ? opts : { ...opts, alignCorners: r.uniform() < 0.5 };
    return { label: JSON.stringify(o), inputs: [input(r, [dim(r, [1, 2]), dim(r, [1, 3]), H, W], { layout: layout(r) })], fn: (x) => F.interpolate(x!, o) };
  },
});

// Layout ops (copyStrided, indexSelect/indexAdd, gather/scatterAdd under views).
cases.push({
  name: 'clone / contiguous / reshape of views', draws: 5,
  make: (r) => ({ inputs: [input(r, shapeOf(r, 2 + r.int(3)), { layout: pick(r, LAYOUTS) })], fn: (x) => [F.clone(x!), F.reshape(x!, [-1]), F.contiguous(F.permute(x!, x!.shape.map((_, i) => x!.ndim - 1 - i)))] }),
});
cases.push({
  name: 'slice with step / concat / split', draws: 5,
  make: (r) => {
    const s = shapeOf(r, 2 + r.int(2), 3000), axis = r.int(s.length);
    const other = s.slice(); other[axis] = dim(r, [1, 2, 7]);
    return {
      label: `axis ${axis}`,
      inputs: [input(r, s, { layout: layout(r) }), input(r, other, { layout: layout(r) })],
      fn: (a, b) => {
        const sl = F.slice(a!, axis, 0, undefined, 2);
        const cat = F.concat([sl, b!, a!], axis);
        return F.split(cat, [sl.shape[axis]!, cat.shape[axis]! - sl.shape[axis]!], axis);
      },
    };
  },
});
cases.push({
  name: 'stack', draws: 3,
  make: (r) => {
    const s = shapeOf(r, 1 + r.int(2), 2000), axis = r.int(s.length + 1);
    return { label: `axis ${axis}`, inputs: [input(r, s, { layout: layout(r) }), input(r, s, { layout: layout(r) })], fn: (a, b) => F.stack([a!, b!, a!], axis) };
  },
});
cases.push({
  name: 'indexSelect', draws: 5,
  make: (r) => {
    const rank = 1 + r.int(3), s = shapeOf(r, rank, 3000), axis = r.int(rank);
    const idx = randInts(r, [dim(r, [1, 3, 7, 33])], s[axis]!);
    return { label: `axis ${axis}`, inputs: [input(r, s, { layout: layout(r) })], fn: (x) => F.indexSelect(x!, axis, idx) };
  },
});
cases.push({
  name: 'gather', draws: 5,
  make: (r) => {
    const rank = 1 + r.int(3), s = shapeOf(r, rank, 3000), axis = r.int(rank);
    const is = s.slice(); is[axis] = dim(r, [1, 3, 7]);
    const idx = randInts(r, is, s[axis]!);
    return { label: `axis ${axis}`, inputs: [input(r, s, { layout: layout(r) })], fn: (x) => F.gather(x!, axis, idx) };
  },
});

// Large cases: blocked GEMM, long rows, many keys, multi-threaded splits.
bigCases.push({ name: 'matmul 130x257 @ 257x65', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [130, 257]), input(r, [257, 65])], fn: (a, b) => F.matmul(a!, b!) }) });
bigCases.push({ name: 'matmul 130x257 (transposed) @ 257x65 (transposed)', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [130, 257], { layout: 'transposed' }), input(r, [257, 65], { layout: 'transposed' })], fn: (a, b) => F.matmul(a!, b!) }) });
bigCases.push({ name: 'matmul batched [3, 65, 257] @ [257, 130] (tall path)', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [3, 65, 257]), input(r, [257, 130])], fn: (a, b) => F.matmul(a!, b!) }) });
bigCases.push({ name: 'matmul broadcast batch [2, 1, 33, 130] @ [3, 130, 67]', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [2, 1, 33, 130]), input(r, [3, 130, 67], { layout: 'strided' })], fn: (a, b) => F.matmul(a!, b!) }) });
bigCases.push({ name: 'linear [2, 65, 257] x [130, 257] + bias', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [2, 65, 257]), input(r, [130, 257]), input(r, [130])], fn: (x, w, b) => F.linear(x!, w!, b!) }) });
bigCases.push({ name: 'attention Tk=300', draws: 2, tol: LOOSE, make: (r) => attentionCase(r, { Tq: pick(r, [1, 64, 300]), Tk: 300, D: 64 }) });
bigCases.push({ name: 'softmax rows of 5000', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [6, 5000], { gen: gen.normal(5) })], fn: (x) => [F.softmax(x!)] }) });
bigCases.push({ name: 'logSoftmax rows of 5000', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [6, 5000], { gen: gen.normal(5) })], fn: (x) => F.logSoftmax(x!) }) });
bigCases.push({
  name: 'crossEntropy V=3000', draws: 1, tol: LOOSE,
  make: (r) => {
    const t = intTensor(Array.from({ length: 24 }, (_, i) => (i % 7 === 3 ? -100 : r.int(3000))), [24]);
    return { inputs: [input(r, [24, 3000], { gen: gen.normal(3) })], fn: (x) => [F.crossEntropy(x!, t, { labelSmoothing: 0.1 }), F.crossEntropy(x!, t, { reduction: 'none' })] };
  },
});
bigCases.push({ name: 'layerNorm / rmsNorm rows of 4096', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [8, 4096], { gen: gen.normal(2, 1) }), input(r, [4096]), input(r, [4096])], fn: (x, w, b) => [F.layerNorm(x!, w!, b!), F.rmsNorm(x!, w!)] }) });
bigCases.push({ name: 'sum of 120k elements', draws: 1, tol: { rtol: 1e-4, atol: 1e-3 }, make: (r) => ({ inputs: [input(r, [300, 400])], fn: (x) => [F.sum(x!), F.sum(x!, 0), F.sum(x!, 1)] }) });
bigCases.push({ name: 'unary / binary over 100k elements', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [250, 401]), input(r, [401])], fn: (x, y) => [F.gelu(x!), F.silu(x!), F.exp(x!), F.mul(x!, y!), F.add(F.transpose(x!), 1)] }) });
bigCases.push({ name: 'conv2d [2, 16, 33, 33] * [32, 16, 3, 3] pad 1', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [2, 16, 33, 33]), input(r, [32, 16, 3, 3], { gen: gen.normal(0.2) }), input(r, [32])], fn: (x, w, b) => F.conv2d(x!, w!, b!, { padding: 1 }) }) });
bigCases.push({ name: 'depthwise conv2d [2, 32, 33, 33] stride 2', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [2, 32, 33, 33]), input(r, [32, 1, 3, 3])], fn: (x, w) => F.conv2d(x!, w!, null, { padding: 1, stride: 2, groups: 32 }) }) });
bigCases.push({ name: 'cumsum along 5000', draws: 1, tol: { rtol: 1e-4, atol: 1e-3 }, make: (r) => ({ inputs: [input(r, [4, 5000])], fn: (x) => [F.cumsum(x!, 1), F.cumsum(x!, 1, true)] }) });
bigCases.push({ name: 'topk 50 of 5000', draws: 1, make: (r) => ({ inputs: [input(r, [4, 5000])], fn: (x) => { const t = F.topk(x!, 50); return [t.values, t.indices]; } }) });
bigCases.push({ name: 'interpolate bicubic 64x64 -> 130x97', draws: 1, tol: LOOSE, make: (r) => ({ inputs: [input(r, [1, 3, 64, 64])], fn: (x) => F.interpolate(x!, { mode: 'bicubic', size: [130, 97] }) }) });

// ---- runner -------------------------------------------------------------------------------------

function compareRuns(got: RunResult, ref: RunResult, inputs: readonly Input[], tol: Tol, who: string): string[] {
  const errs: string[] = [];
  if (got.outs.length !== ref.outs.length) return [`${who}: ${got.outs.length} outputs, reference has ${ref.outs.length}`];
  for (let o = 0; o < ref.outs.length; o++) {
    if (got.outShapes[o]!.join() !== ref.outShapes[o]!.join() || got.outDtypes[o] !== ref.outDtypes[o]) {
      errs.push(`${who}: output ${o} is [${got.outShapes[o]}] ${got.outDtypes[o]}, reference [${ref.outShapes[o]}] ${ref.outDtypes[o]}`);
      continue;
    }
    const exact = ref.outDtypes[o] !== 'f32'; // indices / masks must match exactly
    const r = closeReport(got.outs[o]!, ref.outs[o]!, { ...(exact ? { rtol: 0, atol: 0 } : tol), shape: ref.outShapes[o], what: `${who}: output ${o}` });
    if (r !== null) errs.push(r);
  }
  for (let k = 0; k < inputs.length; k++) {
    const g = got.grads[k] ?? null, e = ref.grads[k] ?? null;
    if ((g === null) !== (e === null)) { errs.push(`${who}: input ${k} gradient ${g === null ? 'missing' : 'unexpected'}`); continue; }
    if (g === null || e === null) continue;
    const r = closeReport(g, e, { ...tol, shape: inputs[k]!.baseShape, what: `${who}: grad of input ${k} (${describeInputs([inputs[k]!])})` });
    if (r !== null) errs.push(r);
  }
  return errs;
}

function runOn(b: Backend, inst: Inst): RunResult {
  setBackend(b);
  try {
    return runCase(inst.fn, inst.inputs);
  } finally {
    setBackend(referenceBackend);
  }
}

interface Prepared { name: string; inst: Inst; tol: Tol; todo?: string | undefined; ref?: RunResult }

/** Draws every case once (seeded by name and draw), so both thread passes see the same inputs. */
function prepare(list: OpCase[]): Prepared[] {
  const out: Prepared[] = [];
  for (const c of list) {
    for (let d = 0; d < (c.draws ?? 4); d++) {
      const inst = c.make(new Rng(seedOf(`${c.name}#${d}`)));
      const name = `${c.name} ${inst.label ? inst.label + ' ' : ''}${describeInputs(inst.inputs)}`;
      out.push({ name, inst, tol: inst.tol ?? c.tol ?? {}, todo: c.todo });
    }
  }
  return out;
}

/**
 * One pass over a table at a fixed native thread count. Passes run thread-major (all cases at
 * 2 threads, then all at 1) so setThreads is called once per pass, not twice per case; see the
 * thread-pool test below for why that matters.
 */
function register(group: string, list: Prepared[], threads: number): void {
  test(`parity threads=${threads}: ${group}`, async (t) => {
    if (native === null) { t.skip(unavailable); return; }
    const nb = native;
    nb.setThreads(threads);
    for (const p of list) {
      await t.test(p.name, p.todo ? { todo: p.todo } : {}, () => {
        traceCase(`threads=${threads} ${p.name}`);
        p.ref ??= runOn(referenceBackend, p.inst);
        let got: RunResult;
        try {
          got = runOn(nb, p.inst);
        } catch (e) {
          assert.fail(`${p.name}\nnative threw: ${e instanceof Error ? e.message : String(e)}`);
        }
        const errs = compareRuns(got, p.ref, p.inst.inputs, p.tol, `native threads=${threads}`);
        if (errs.length > 0) assert.fail(`${p.name}\n${errs.join('\n')}`);
      });
    }
  });
}

const preparedCases = prepare(cases), preparedBig = prepare(bigCases);
for (const threads of [2, 1]) {
  register('random shapes', preparedCases, threads);
  register('large cases', preparedBig, threads);
}

test('native thread count can be changed back and forth (child process)', (t) => {
  if (native === null || native === referenceBackend) { t.skip(unavailable); return; }
  // Run in a child so a crash fails this test instead of killing the suite.
  const url = new URL('../src/backends/index.js', import.meta.url).href;
  const script = `
    const { nativeBackend } = await import(${JSON.stringify(url)});
    const b = nativeBackend();
    const x = new Float32Array(1 << 20), y = new Float32Array(1 << 20);
    for (const n of [2, 1, 2, 1, 2, 2, 1]) {
      b.setThreads(n);
      await new Promise((r) => setTimeout(r, 20)); // idle workers between jobs
      b.unary('exp', x, y, 0, 0);
      b.softmax(x, y, 256, 4096, false);
    }
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.signal, null, `child died with ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, `child exited with ${r.status}: ${r.stderr}`);
});



test('parity harness detects a perturbed kernel', () => {
  // One wrong output element and one wrong gradient element must both be reported.
  const bad: Backend = {
    ...referenceBackend,
    softmax(x, y, rows, n, log) { referenceBackend.softmax(x, y, rows, n, log); y[5] = y[5]! * 1.001 + 1e-4; },
    softmaxBackward(y, gy, gx, rows, n, log) { referenceBackend.softmaxBackward(y, gy, gx, rows, n, log); gx[7] = gx[7]! + 2e-4; },
  };
  const r = new Rng(3);
  const inst: Inst = { inputs: [input(r, [4, 9], { layout: 'transposed' })], fn: (x) => F.softmax(x!) };
  const errs = compareRuns(runOn(bad, inst), runOn(referenceBackend, inst), inst.inputs, LOOSE, 'perturbed');
  assert.equal(errs.length, 2, errs.join('\n'));
  assert.match(errs[0]!, /output 0: 1\/36 elements[^]*max abs err [^]* at \[0, 5\]/);
  assert.match(errs[1]!, /grad of input 0 \(\[4,9\]ᵀ\): \d\/36 elements of shape \[9, 4\]/);
});

// ---- bad inputs ---------------------------------------------------------------------------------

const f32 = (shape: number[]): Tensor => F.zeros(shape);
const i32 = (values: number[], shape = [values.length]): Tensor => intTensor(values, shape);

/** [what, call, fragments the message must contain (the op name first)]. */
const badOps: [string, () => unknown, (string | RegExp)[], string?][] = [
  // shape mismatches
  ['add: shapes do not broadcast', () => F.add(f32([2, 3]), f32([4, 3])), ['add', '[2, 3]', '[4, 3]']],
  ['where: shapes do not broadcast', () => F.where(F.gt(f32([2, 3]), 0), f32([2, 3]), f32([3, 2])), ['where', '[2, 3]', '[3, 2]']],
  ['matmul: inner dims differ', () => F.matmul(f32([2, 3]), f32([4, 5])), ['matmul', '[2, 3]', '[4, 5]']],
  ['matmul: batch dims do not broadcast', () => F.matmul(f32([2, 3, 4]), f32([3, 4, 5])), ['matmul', '[2]', '[3]']],
  ['linear: in features differ', () => F.linear(f32([2, 3]), f32([5, 4])), ['linear', '[2, 3]', '[5, 4]']],
  ['linear: bias size', () => F.linear(f32([2, 4]), f32([5, 4]), f32([4])), ['linear', '[4]', '[5, 4]']],
  ['layerNorm: weight size', () => F.layerNorm(f32([2, 4]), f32([3]), null), ['layerNorm', '[3]', '[2, 4]']],
  ['rmsNorm: weight size', () => F.rmsNorm(f32([2, 4]), f32([5])), ['rmsNorm', '[5]', '[2, 4]']],
  ['rope: table shape', () => F.rope(f32([1, 3, 8]), f32([4, 4]), f32([4, 4])), ['rope', '[4, 4]', '[1, 3, 8]']],
  ['attention: k head dim', () => F.attention(f32([1, 2, 3, 4]), f32([1, 2, 5, 3]), f32([1, 2, 5, 4])), ['attention', '[1, 2, 3, 4]', '[1, 2, 5, 3]']],
  ['attention: heads not a multiple of kv heads', () => F.attention(f32([1, 3, 3, 4]), f32([1, 2, 5, 4]), f32([1, 2, 5, 4])), ['attention', '[1, 3, 3, 4]', '[1, 2, 5, 4]']],
  ['attention: mask shape', () => F.attention(f32([1, 2, 3, 4]), f32([1, 2, 5, 4]), f32([1, 2, 5, 4]), { mask: F.gt(f32([3, 4]), 0) }), ['attention', '[3, 4]']],
  ['conv2d: channels', () => F.conv2d(f32([1, 3, 5, 5]), f32([2, 4, 3, 3])), ['conv2d', '3', '[2, 4, 3, 3]']],
  ['conv2d: kernel larger than input', () => F.conv2d(f32([1, 1, 2, 2]), f32([1, 1, 3, 3])), ['conv2d', '[1, 1, 2, 2]']],
  ['maxPool2d: kernel larger than input', () => F.maxPool2d(f32([1, 1, 2, 2]), 3), ['maxPool2d', '[1, 1, 2, 2]']],
  ['crossEntropy: targets shape', () => F.crossEntropy(f32([2, 3, 5]), i32([0, 1, 2], [3])), ['crossEntropy', '[3]', '[2, 3, 5]']],
  ['concat: shapes differ', () => F.concat([f32([2, 3]), f32([3, 3])], 1), ['concat', '[2, 3]', '[3, 3]']],
  ['reshape: element count', () => F.reshape(f32([2, 3]), [4, 2]), ['reshape', '6', '[4, 2]']],
  ['expand: incompatible', () => F.expand(f32([2, 3]), [4, 3]), ['expand', '[2, 3]', '[4, 3]']],
  ['gather: index shape', () => F.gather(f32([2, 3]), 1, i32([0, 1, 2], [3, 1])), ['gather', '[3, 1]', '[2, 3]']],
  ['split: sizes', () => F.split(f32([2, 5]), [2, 2], 1), ['split', '5', '[2, 5]']],
  ['sum: axis out of range', () => F.sum(f32([2, 3]), 2), ['sum', 'axis 2', 'rank 2']],
  // out-of-range indices
  ['embedding: id >= V', () => F.embedding(f32([5, 3]), i32([1, 7])), ['embedding', '7', '5']],
  ['embedding: negative id', () => F.embedding(f32([5, 3]), i32([-1])), ['embedding', '-1', '5']],
  ['indexSelect: index >= n', () => F.indexSelect(f32([3, 4]), 1, i32([0, 9])), ['indexSelect', '9', '4']],
  ['indexSelect: negative index', () => F.indexSelect(f32([3, 4]), 0, i32([-2])), ['indexSelect', '-2', '3']],
  ['gather: index >= n', () => F.gather(f32([2, 3]), 1, i32([0, 3, 1, 2], [2, 2])), ['gather', '3']],
  ['crossEntropy: target >= V', () => F.crossEntropy(f32([2, 5]), i32([1, 5])), ['crossEntropy', '5']],
  ['crossEntropy: negative target that is not ignoreIndex', () => F.crossEntropy(f32([2, 5]), i32([-3, 1])), ['crossEntropy', '-3']],
  ['topk: k > n', () => F.topk(f32([2, 3]), 4), ['topk', '4', '[2, 3]']],
  // wrong dtypes
  ['add: i32 operand', () => F.add(i32([1, 2, 3]), f32([3])), ['add', '[3]', 'i32']],
  ['matmul: i32 operand', () => F.matmul(f32([2, 3]), F.cast(f32([3, 2]), 'i32')), ['matmul', '[3, 2]', 'i32']],
  ['exp: bool input', () => F.exp(F.gt(f32([2]), 0)), ['exp', '[2]', 'bool']],
  ['softmax: i32 input', () => F.softmax(i32([1, 2])), ['softmax', '[2]', 'i32']],
  ['sum: f16 input', () => F.sum(F.cast(f32([4]), 'f16')), ['sum', '[4]', 'f16']],
  ['conv2d: i32 input', () => F.conv2d(F.cast(f32([1, 1, 3, 3]), 'i32'), f32([1, 1, 3, 3])), ['conv2d', '[1, 1, 3, 3]', 'i32']],
  ['where: f32 condition', () => F.where(f32([2]), f32([2]), f32([2])), ['where', '[2]', 'f32']],
  ['attention: f32 mask', () => F.attention(f32([1, 1, 2, 2]), f32([1, 1, 2, 2]), f32([1, 1, 2, 2]), { mask: f32([2, 2]) }), ['attention', 'mask', 'f32']],
  ['embedding: f32 ids', () => F.embedding(f32([5, 3]), f32([2])), ['embedding', '[2]', 'f32']],
  ['indexSelect: f32 index', () => F.indexSelect(f32([3, 4]), 1, f32([2])), ['indexSelect', '[2]', 'f32']],
  ['gather: f32 index', () => F.gather(f32([2, 3]), 1, f32([2, 3])), ['gather', '[2, 3]', 'f32']],
  ['crossEntropy: f32 targets', () => F.crossEntropy(f32([2, 5]), f32([2])), ['crossEntropy', '[2]', 'f32']],
];

function assertDescriptiveThrow(call: () => unknown, must: (string | RegExp)[]): void {
  let thrown: unknown = null;
  try {
    call();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== null, 'did not throw');
  assert.ok(thrown instanceof Error, `threw a non-Error: ${String(thrown)}`);
  for (const m of must) {
    const ok = typeof m === 'string' ? thrown.message.includes(m) : m.test(thrown.message);
    assert.ok(ok, `message ${JSON.stringify(thrown.message)} does not mention ${String(m)}`);
  }
}

const backendsForErrors: [string, Backend | null][] = [['reference', referenceBackend], ['native', native]];
for (const [bname, b] of backendsForErrors) {
  test(`bad inputs throw descriptive errors (${bname})`, async (t) => {
    if (b === null) { t.skip(unavailable); return; }
    for (const [what, call, must, todo] of badOps) {
      await t.test(what, todo ? { todo: `engine: ${todo}` } : {}, () => {
        traceCase(`${bname} bad input: ${what}`);
        setBackend(b);
        try {
          assertDescriptiveThrow(call, must);
        } finally {
          setBackend(referenceBackend);
        }
      });
    }
  });
}

// Direct kernel calls with inconsistent sizes: every backend must validate before touching memory.
const z = (n: number): Float32Array => new Float32Array(n);
const badKernels: [string, keyof Backend, (b: Backend) => void, { backend: string; todo: string }?][] = [
  ['gemm: C too short', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 4, n: 4, k: 4, alpha: 1, beta: 0, a: z(16), aOff: 0, lda: 4, strideA: 0, b: z(16), bOff: 0, ldb: 4, strideB: 0, c: z(15), cOff: 0, ldc: 4, strideC: 0, batch: 1 })],
  ['gemm: A offset past the end', 'gemm', (b) => b.gemm({ transA: true, transB: false, m: 4, n: 4, k: 4, alpha: 1, beta: 0, a: z(16), aOff: 8, lda: 4, strideA: 0, b: z(16), bOff: 0, ldb: 4, strideB: 0, c: z(16), cOff: 0, ldc: 4, strideC: 0, batch: 1 })],
  ['gemm: batch stride past the end', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, beta: 0, a: z(4), aOff: 0, lda: 2, strideA: 4, b: z(4), bOff: 0, ldb: 2, strideB: 0, c: z(8), cOff: 0, ldc: 2, strideC: 4, batch: 2 })],
  ['copyStrided: source strides past the end', 'copyStrided', (b) => b.copyStrided(z(10), 0, [3, 4], [4, 1], z(12))],
  ['copyStrided: dst too short', 'copyStrided', (b) => b.copyStrided(z(12), 0, [3, 4], [4, 1], z(11))],
  ['unary: y length differs', 'unary', (b) => b.unary('exp', z(8), z(7), 0, 0)],
  ['unaryBackward: gx length differs', 'unaryBackward', (b) => b.unaryBackward('tanh', z(8), z(8), z(8), z(5), 0, 0)],
  ['binary: b strides past the end', 'binary', (b) => b.binary('add', z(12), 0, [4, 1], z(4), 0, [1, 1], [3, 4], z(12))],
  ['binary: out too short', 'binary', (b) => b.binary('mul', z(12), 0, [4, 1], z(12), 0, [4, 1], [3, 4], z(10))],
  ['where: cond too short', 'where', (b) => b.where(new Uint8Array(5), 0, [1], z(6), 0, [1], z(6), 0, [1], [6], z(6))],
  ['reduce: x too short', 'reduce', (b) => b.reduce('sum', z(10), 2, 3, 2, z(4))],
  ['argReduce: out too short', 'argReduce', (b) => b.argReduce('argmax', z(12), 2, 3, 2, new Int32Array(3))],
  ['softmax: rows * n exceeds x', 'softmax', (b) => b.softmax(z(10), z(12), 3, 4, false)],
  ['softmaxBackward: gy too short', 'softmaxBackward', (b) => b.softmaxBackward(z(12), z(11), z(12), 3, 4, true)],
  ['layerNorm: mean too short', 'layerNorm', (b) => b.layerNorm(z(12), null, null, z(12), z(2), z(3), 3, 4, 1e-5)],
  ['layerNorm: weight length', 'layerNorm', (b) => b.layerNorm(z(12), z(3), null, z(12), z(3), z(3), 3, 4, 1e-5)],
  ['rmsNorm: y too short', 'rmsNorm', (b) => b.rmsNorm(z(12), null, z(11), z(3), 3, 4, 1e-6)],
  ['rope: odd rot', 'rope', (b) => b.rope(z(16), z(16), z(4), z(4), 1, 2, 8, 3, false, false)],
  ['rope: cos table too short', 'rope', (b) => b.rope(z(16), z(16), z(3), z(4), 1, 2, 8, 4, false, false)],
  ['attention: q too short', 'attention', (b) => b.attention({ q: z(23), k: z(40), v: z(40), B: 1, H: 2, Hkv: 2, Tq: 3, Tk: 5, D: 4, Dv: 4, scale: 0.5, causal: false, mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0 }, z(24), z(6))],
  ['attention: mask too short', 'attention', (b) => b.attention({ q: z(24), k: z(40), v: z(40), B: 1, H: 2, Hkv: 2, Tq: 3, Tk: 5, D: 4, Dv: 4, scale: 0.5, causal: false, mask: new Uint8Array(14), maskStrideB: 0, maskStrideH: 0, maskStrideQ: 5 }, z(24), z(6))],
  ['attention: H not a multiple of Hkv', 'attention', (b) => b.attention({ q: z(36), k: z(40), v: z(40), B: 1, H: 3, Hkv: 2, Tq: 3, Tk: 5, D: 4, Dv: 4, scale: 0.5, causal: false, mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0 }, z(36), z(9))],
  ['im2col: cols too short', 'im2col', (b) => b.im2col(z(50), 0, { C: 2, H: 5, W: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, Ho: 3, Wo: 3 }, z(161))],
  ['im2col: image offset past the end', 'im2col', (b) => b.im2col(z(50), 10, { C: 2, H: 5, W: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, Ho: 3, Wo: 3 }, z(162))],
  ['col2im: wrong Ho', 'col2im', (b) => b.col2im(z(162), { C: 2, H: 5, W: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, Ho: 4, Wo: 3 }, z(50), 0)],
  ['depthwiseConv2d: w too short', 'depthwiseConv2d', (b) => b.depthwiseConv2d(z(50), z(17), null, z(18), 1, { C: 2, H: 5, W: 5, kh: 3, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, Ho: 3, Wo: 3 })],
  ['pool2d: wrong output size', 'pool2d', (b) => b.pool2d('max', z(50), z(18), new Int32Array(18), { NC: 2, H: 5, W: 5, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0, Ho: 3, Wo: 3, countIncludePad: true })],
  ['pool2dBackward: argmax missing for max', 'pool2dBackward', (b) => b.pool2dBackward('max', z(8), null, z(50), { NC: 2, H: 5, W: 5, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0, Ho: 2, Wo: 2, countIncludePad: true })],
  ['interpolate: y too short', 'interpolate', (b) => b.interpolate(z(18), z(49), { NC: 2, H: 3, W: 3, Ho: 5, Wo: 5, mode: 'bilinear', alignCorners: false, scaleH: 0, scaleW: 0 })],
  ['indexSelect: index out of range', 'indexSelect', (b) => b.indexSelect(z(12), Int32Array.from([0, 4]), z(6), 1, 4, 3)],
  ['indexAdd: negative index', 'indexAdd', (b) => b.indexAdd(z(6), Int32Array.from([-1, 0]), z(12), 1, 4, 3)],
  ['gather: index out of range', 'gather', (b) => b.gather(z(12), Int32Array.from([0, 1, 7, 2, 0, 0]), z(6), 2, 3, 1, 2)],
  ['scatterAdd: idx length', 'scatterAdd', (b) => b.scatterAdd(z(6), new Int32Array(5), z(12), 2, 3, 1, 2)],
  ['crossEntropy: target out of range', 'crossEntropy', (b) => b.crossEntropy(z(10), Int32Array.from([1, 5]), z(2), z(2), 2, 5, -100, 0)],
  ['crossEntropyBackward: glogits too short', 'crossEntropyBackward', (b) => b.crossEntropyBackward(z(10), Int32Array.from([1, 2]), z(2), z(2), z(9), 2, 5, -100, 0)],
  ['cumsum: y too short', 'cumsum', (b) => b.cumsum(z(12), z(11), 2, 3, 2, false)],
  ['topk: k > n', 'topk', (b) => b.topk(z(12), 3, 4, 5, z(15), new Int32Array(15))],
  ['adamw: m length', 'adamw', (b) => b.adamw(z(8), z(8), z(7), z(8), 1e-3, 0.9, 0.999, 1e-8, 0, 1, 1)],
  ['sgd: g length', 'sgd', (b) => b.sgd(z(8), z(9), null, 0.1, 0, 0, 0, false, true)],
  ['sgd: momentum buffer too short', 'sgd', (b) => b.sgd(z(8), z(8), z(4), 0.1, 0.9, 0, 0, false, false)],
  // malformed sizes: negative, fractional, NaN, zero where >= 1 is required
  ['gemm: negative offset', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, beta: 0, a: z(8), aOff: -4, lda: 2, strideA: 0, b: z(4), bOff: 0, ldb: 2, strideB: 0, c: z(4), cOff: 0, ldc: 2, strideC: 0, batch: 1 })],
  ['gemm: fractional m', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 2.5, n: 2, k: 2, alpha: 1, beta: 0, a: z(8), aOff: 0, lda: 2, strideA: 0, b: z(4), bOff: 0, ldb: 2, strideB: 0, c: z(8), cOff: 0, ldc: 2, strideC: 0, batch: 1 })],
  ['gemm: lda smaller than the row', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 2, n: 2, k: 4, alpha: 1, beta: 0, a: z(8), aOff: 0, lda: 2, strideA: 0, b: z(8), bOff: 0, ldb: 2, strideB: 0, c: z(4), cOff: 0, ldc: 2, strideC: 0, batch: 1 })],
  ['gemm: batches overlap in C (strideC 0)', 'gemm', (b) => b.gemm({ transA: false, transB: false, m: 2, n: 2, k: 2, alpha: 1, beta: 0, a: z(4), aOff: 0, lda: 2, strideA: 0, b: z(4), bOff: 0, ldb: 2, strideB: 0, c: z(4), cOff: 0, ldc: 2, strideC: 0, batch: 2 })],
  ['copyStrided: negative stride reaching before the buffer', 'copyStrided', (b) => b.copyStrided(z(4), 0, [3], [-1], z(3))],
  ['copyStrided: fewer strides than dims', 'copyStrided', (b) => b.copyStrided(z(12), 0, [3, 4], [4], z(12))],
  ['copyStrided: element types differ', 'copyStrided', (b) => b.copyStrided(z(4), 0, [4], [1], new Int32Array(4) as unknown as Float32Array)],
  ['binary: fewer strides than dims', 'binary', (b) => b.binary('add', z(12), 0, [1], z(12), 0, [4, 1], [3, 4], z(12))],
  ['binary: unknown op', 'binary', (b) => b.binary('bogus' as 'add', z(4), 0, [1], z(4), 0, [1], [4], z(4))],
  ['unary: unknown op', 'unary', (b) => b.unary('bogus' as 'exp', z(4), z(4), 0, 0)],
  ['softmax: fractional n', 'softmax', (b) => b.softmax(z(5), z(5), 2, 2.5, false)],
  ['reduce: negative n', 'reduce', (b) => b.reduce('sum', z(4), 2, -2, -1, z(4))],
  ['cumsum: NaN outer', 'cumsum', (b) => b.cumsum(z(4), z(4), NaN, 2, 2, false)],
  ['attention: negative Tq', 'attention', (b) => b.attention({ q: z(8), k: z(8), v: z(8), B: 1, H: 1, Hkv: 1, Tq: -2, Tk: 2, D: 4, Dv: 4, scale: 1, causal: false, mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0 }, z(8), z(2))],
  ['attention: Hkv 0', 'attention', (b) => b.attention({ q: z(8), k: z(8), v: z(8), B: 1, H: 1, Hkv: 0, Tq: 2, Tk: 2, D: 4, Dv: 4, scale: 1, causal: false, mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0 }, z(8), z(2))],
  ['im2col: stride 0', 'im2col', (b) => b.im2col(z(25), 0, { C: 1, H: 5, W: 5, kh: 3, kw: 3, sh: 0, sw: 1, ph: 0, pw: 0, dh: 1, dw: 1, Ho: 3, Wo: 3 }, z(81))],
  ['pool2d: kernel 0', 'pool2d', (b) => b.pool2d('avg', z(25), z(25), null, { NC: 1, H: 5, W: 5, kh: 0, kw: 1, sh: 1, sw: 1, ph: 0, pw: 0, Ho: 5, Wo: 5, countIncludePad: true })],
  ['interpolate: empty input', 'interpolate', (b) => b.interpolate(z(0), z(4), { NC: 1, H: 0, W: 0, Ho: 2, Wo: 2, mode: 'bilinear', alignCorners: false, scaleH: 0, scaleW: 0 })],
  ['topk: negative k', 'topk', (b) => b.topk(z(12), 3, 4, -1, z(3), new Int32Array(3))],
  ['crossEntropy: V 0', 'crossEntropy', (b) => b.crossEntropy(z(0), Int32Array.from([0]), z(1), z(1), 1, 0, -100, 0)],
  ['rope: rot > D', 'rope', (b) => b.rope(z(16), z(16), z(10), z(10), 1, 2, 8, 10, false, false)],
  ['layerNorm: n 0 with rows', 'layerNorm', (b) => b.layerNorm(z(0), null, null, z(0), z(2), z(2), 2, 0, 1e-5)],
  ['indexSelect: idx is not an Int32Array', 'indexSelect', (b) => b.indexSelect(z(12), Float32Array.from([1.5, 0]) as unknown as Int32Array, z(6), 1, 4, 3)],
];

for (const [bname, b] of backendsForErrors) {
  test(`kernels validate their arguments (${bname})`, async (t) => {
    if (b === null) { t.skip(unavailable); return; }
    for (const [what, kernel, call, known] of badKernels) {
      await t.test(what, known?.backend === b.name ? { todo: known.todo } : {}, () => {
        traceCase(`${bname} kernel: ${what}`);
        assert.throws(() => call(b), (e: unknown) => {
          assert.ok(e instanceof Error, `threw a non-Error: ${String(e)}`);
          assert.ok(e.message.startsWith(`${kernel}: `), `message ${JSON.stringify(e.message)} does not start with "${kernel}: "`);
          return true;
        });
      });
    }
  });
}
