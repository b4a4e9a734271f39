// Autograd gradients of every differentiable op against central finite differences, on the
// reference backend. Each case draws seeded inputs (values kept off kinks and ties), runs
// L = sum(out * W) for random W, and compares d L / d input elementwise (see util.gradcheck).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../src/engine/backend.ts';
import { referenceBackend } from '../src/backends/reference/index.ts';
import { backward, noGrad, param, record } from '../src/engine/autograd.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import * as F from '../src/engine/ops/index.ts';
import {
  allclose, constant, describeInputs, gen, gradcheck, input, intTensor, randInts, randMask, Rng, seedOf,
  type Gen, type GradcheckOptions, type Input, type Layout, type OpFn,
} from './util.ts';

setBackend(referenceBackend);

interface Built { inputs: Input[]; fn: OpFn; opts?: GradcheckOptions }

/** Registers one gradcheck; the Rng is seeded from the name so cases are independent. */
function gc(name: string, build: (r: Rng) => Built, testOpts: { todo?: string } = {}): void {
  test(name, testOpts, () => {
    const b = build(new Rng(seedOf(name)));
    try {
      gradcheck(b.fn, b.inputs, b.opts);
    } catch (e) {
      if (e instanceof Error) e.message = `${name} (${describeInputs(b.inputs)}): ${e.message}`;
      throw e;
    }
  });
}

const N = gen.normal;

// ---- elementwise binary with broadcasting -------------------------------------------------

const binaryOps: [string, (a: Tensor, b: Tensor) => Tensor, Gen, Gen][] = [
  ['add', F.add, N(), N()],
  ['sub', F.sub, N(), N()],
  ['mul', F.mul, N(), N()],
  ['div', F.div, N(), gen.awayFromZero(0.5, 1.5)],
  ['pow', F.pow, gen.uniform(0.5, 2), gen.uniform(-1.5, 1.5)],
  // Two grids offset by half a step: |a - b| >= 0.1 everywhere, so no tie within eps.
  ['maximum', F.maximum, gen.grid(0.2, 0), gen.grid(0.2, 0.1)],
  ['minimum', F.minimum, gen.grid(0.2, 0), gen.grid(0.2, 0.1)],
];

const broadcastPairs: [number[], number[], Layout, Layout][] = [
  [[3, 4], [3, 4], 'dense', 'dense'],
  [[3, 4], [4], 'transposed', 'dense'],
  [[2, 1, 4], [3, 1], 'strided', 'offset'],
  [[2, 3], [1], 'dense', 'dense'],
  [[2, 3], [], 'offset', 'dense'],
  [[4], [2, 3, 4], 'dense', 'expanded'],
  [[2, 3, 4], [2, 3, 4], 'expanded', 'transposed'],
];

for (const [name, op, ga, gb] of binaryOps) {
  for (const [sa, sb, la, lb] of broadcastPairs) {
    gc(`${name} ${JSON.stringify(sa)}:${la} ${JSON.stringify(sb)}:${lb}`, (r) => ({
      inputs: [input(r, sa, { layout: la, gen: ga }), input(r, sb, { layout: lb, gen: gb })],
      fn: (a, b) => op(a!, b!),
    }));
  }
}

gc('add/sub/mul/div with a number operand', (r) => ({
  inputs: [input(r, [2, 3], { gen: gen.awayFromZero(0.5, 1.5) })],
  fn: (x) => [F.add(x!, 2.5), F.sub(1, x!), F.mul(x!, -1.5), F.div(2, x!), F.div(x!, 4)],
}));
gc('pow with number base and exponent', (r) => ({
  inputs: [input(r, [2, 3], { gen: gen.uniform(0.5, 2) })],
  fn: (x) => [F.pow(1.7, x!), F.pow(x!, 3), F.pow(x!, -0.5)],
}));
gc('maximum/minimum with ties split the gradient', (r) => ({
  // Same grid for both: many exact ties, where the central difference is exactly 1/2.
  inputs: [input(r, [4, 5], { gen: gen.grid(0.25, 0, 2) }), input(r, [4, 5], { gen: gen.grid(0.25, 0, 2) })],
  fn: (a, b) => [F.maximum(a!, b!), F.minimum(a!, b!)],
}));

// ---- unary ------------------------------------------------------------------------------------

const pos = gen.uniform(0.5, 2);
const unaryOps: [string, (x: Tensor) => Tensor, Gen][] = [
  ['neg', F.neg, N()],
  ['abs', F.abs, gen.awayFromZero()],
  ['exp', F.exp, gen.uniform(-2, 1.5)],
  ['log', F.log, pos],
  ['sqrt', F.sqrt, pos],
  ['rsqrt', F.rsqrt, pos],
  ['square', F.square, N()],
  ['reciprocal', F.reciprocal, gen.awayFromZero(0.5, 2)],
  ['sin', F.sin, N(1.5)],
  ['cos', F.cos, N(1.5)],
  ['tanh', F.tanh, N()],
  ['sigmoid', F.sigmoid, N(2)],
  ['relu', F.relu, gen.awayFromZero()],
  ['gelu', F.gelu, N(1.5)],
  ['geluTanh', F.geluTanh, N(1.5)],
  ['quickGelu', F.quickGelu, N(1.5)],
  ['silu', F.silu, N(1.5)],
  ['scale', (x) => F.scale(x, -1.7), N()],
  ['addScalar', (x) => F.addScalar(x, 0.3), N()],
  ['powScalar 3', (x) => F.powScalar(x, 3), N()],
  ['powScalar 2', (x) => F.powScalar(x, 2), N()],
  ['powScalar 0.5', (x) => F.powScalar(x, 0.5), pos],
  ['powScalar -1.5', (x) => F.powScalar(x, -1.5), pos],
  ['clamp', (x) => F.clamp(x, -0.5, 0.7), gen.avoiding([-0.5, 0.7])],
  ['clamp min only', (x) => F.clamp(x, -0.2), gen.avoiding([-0.2])],
  ['clamp max only', (x) => F.clamp(x, undefined, 0.4), gen.avoiding([0.4])],
  ['dropout (eval) is identity', (x) => F.dropout(x, 0.5, false), N()],
];
for (const [name, op, g] of unaryOps) {
  for (const layout of ['dense', 'transposed', 'strided'] as const) {
    gc(`${name} ${layout}`, (r) => ({ inputs: [input(r, [3, 5], { layout, gen: g })], fn: (x) => op(x!) }));
  }
}

// ---- selection --------------------------------------------------------------------------------

gc('where broadcast cond/a/b', (r) => {
  const cond = randMask(r, [3, 1, 4], 0.5);
  return { inputs: [input(r, [2, 4], { layout: 'transposed' }), input(r, [3, 2, 1])], fn: (a, b) => F.where(cond, a!, b!) };
});
gc('where with number operands', (r) => {
  const cond = randMask(r, [3, 4], 0.5);
  return { inputs: [input(r, [3, 4], { layout: 'strided' })], fn: (a) => [F.where(cond, a!, 0.5), F.where(cond, -2, a!)] };
});
gc('where with a strided condition', (r) => {
  const cond = F.transpose(randMask(r, [4, 3], 0.5));
  return { inputs: [input(r, [3, 4]), input(r, [4])], fn: (a, b) => F.where(cond, a!, b!) };
});
gc('maskedFill broadcast mask', (r) => {
  const mask = randMask(r, [1, 4], 0.5);
  return { inputs: [input(r, [3, 4], { layout: 'transposed' })], fn: (x) => F.maskedFill(x!, mask, -1) };
});

// ---- reductions -------------------------------------------------------------------------------

for (const [name, op] of [['sum', F.sum], ['mean', F.mean]] as const) {
  gc(`${name} all`, (r) => ({ inputs: [input(r, [2, 3, 4], { layout: 'transposed' })], fn: (x) => op(x!) }));
  gc(`${name} axis 1`, (r) => ({ inputs: [input(r, [2, 3, 4])], fn: (x) => op(x!, 1) }));
  gc(`${name} axes [0, 2] keepdim`, (r) => ({ inputs: [input(r, [2, 3, 4], { layout: 'strided' })], fn: (x) => op(x!, [0, 2], true) }));
  gc(`${name} axis -1 of expanded`, (r) => ({ inputs: [input(r, [3, 4], { layout: 'expanded' })], fn: (x) => op(x!, -1) }));
  gc(`${name} axis 0 keepdim of offset view`, (r) => ({ inputs: [input(r, [3, 4], { layout: 'offset' })], fn: (x) => op(x!, 0, true) }));
}
for (const [name, op] of [['max', F.max], ['min', F.min]] as const) {
  gc(`${name} axis 1`, (r) => ({ inputs: [input(r, [2, 5, 3], { gen: gen.distinct(0.1) })], fn: (x) => op(x!, 1) }));
  gc(`${name} axis 0 keepdim transposed`, (r) => ({ inputs: [input(r, [4, 3], { layout: 'transposed', gen: gen.distinct(0.1) })], fn: (x) => op(x!, 0, true) }));
  gc(`${name} axis -1 strided`, (r) => ({ inputs: [input(r, [3, 6], { layout: 'strided', gen: gen.distinct(0.1) })], fn: (x) => op(x!, -1) }));
}

// ---- matmul / linear --------------------------------------------------------------------------

const matmulCases: [number[], number[], Layout, Layout][] = [
  [[3, 4], [4, 5], 'dense', 'dense'],
  [[2, 3, 4], [2, 4, 5], 'dense', 'dense'],
  [[2, 1, 3, 4], [3, 4, 5], 'dense', 'dense'], // batch broadcast -> [2, 3]
  [[2, 3, 4], [4, 5], 'dense', 'dense'], // tall GEMM path
  [[2, 3, 4], [4, 5], 'dense', 'transposed'],
  [[3, 4], [2, 4, 5], 'dense', 'dense'], // 2-D left, batched right
  [[3, 4], [4, 5], 'transposed', 'transposed'],
  [[2, 3, 4], [2, 4, 5], 'transposed', 'transposed'],
  [[3, 4], [4, 5], 'strided', 'offset'], // strided rows: copy path
  [[2, 3, 4], [2, 4, 5], 'expanded', 'strided'], // stride-0 batch
  [[4], [4, 5], 'dense', 'dense'],
  [[3, 4], [4], 'dense', 'dense'],
  [[4], [4], 'dense', 'dense'],
  [[2, 3, 4], [4], 'transposed', 'strided'],
  [[4], [2, 4, 3], 'dense', 'transposed'],
  [[1, 4], [4, 1], 'dense', 'dense'],
];
for (const [sa, sb, la, lb] of matmulCases) {
  gc(`matmul ${JSON.stringify(sa)}:${la} @ ${JSON.stringify(sb)}:${lb}`, (r) => ({
    inputs: [input(r, sa, { layout: la }), input(r, sb, { layout: lb })],
    fn: (a, b) => F.matmul(a!, b!),
  }));
}
gc('linear with bias', (r) => ({ inputs: [input(r, [2, 3, 4]), input(r, [5, 4]), input(r, [5])], fn: (x, w, b) => F.linear(x!, w!, b!) }));
gc('linear without bias, non-contiguous', (r) => ({ inputs: [input(r, [3, 4], { layout: 'transposed' }), input(r, [5, 4], { layout: 'strided' })], fn: (x, w) => F.linear(x!, w!) }));
gc('linear with constant input', (r) => ({ inputs: [constant(r, [2, 3, 4]), input(r, [2, 4]), input(r, [2])], fn: (x, w, b) => F.linear(x!, w!, b!) }));
gc('matmul with one constant operand', (r) => ({ inputs: [constant(r, [2, 3, 4]), input(r, [4, 5])], fn: (a, b) => [F.matmul(a!, b!), F.matmul(F.transpose(b!), F.transpose(a!))] }));
gc('linear with constant weight', (r) => ({ inputs: [input(r, [3, 4]), constant(r, [2, 4]), input(r, [2])], fn: (x, w, b) => F.linear(x!, w!, b!) }));

// ---- softmax / norms ------------------------------------------------------------------------

for (const [name, op] of [['softmax', F.softmax], ['logSoftmax', F.logSoftmax]] as const) {
  gc(`${name} last axis`, (r) => ({ inputs: [input(r, [3, 5], { gen: N(1.5) })], fn: (x) => op(x!) }));
  // A non-last axis goes through alongLast (permute, kernel, permute back; intermediates disposed).
  gc(`${name} middle axis`, (r) => ({ inputs: [input(r, [2, 4, 3], { gen: N(1.5) })], fn: (x) => op(x!, 1) }));
  gc(`${name} first axis, transposed`, (r) => ({ inputs: [input(r, [4, 3], { layout: 'transposed', gen: N(1.5) })], fn: (x) => op(x!, 0) }));
}
gc('layerNorm affine', (r) => ({ inputs: [input(r, [3, 6]), input(r, [6]), input(r, [6])], fn: (x, w, b) => F.layerNorm(x!, w!, b!) }));
gc('layerNorm no affine, transposed', (r) => ({ inputs: [input(r, [2, 2, 5], { layout: 'transposed' })], fn: (x) => F.layerNorm(x!, null, null) }));
gc('layerNorm weight only', (r) => ({ inputs: [input(r, [3, 4]), input(r, [4])], fn: (x, w) => F.layerNorm(x!, w!, null, 1e-3) }));
gc('layerNorm bias only', (r) => ({ inputs: [input(r, [3, 4], { layout: 'strided' }), input(r, [4])], fn: (x, b) => F.layerNorm(x!, null, b!) }));
gc('rmsNorm weight', (r) => ({ inputs: [input(r, [3, 6]), input(r, [6])], fn: (x, w) => F.rmsNorm(x!, w!) }));
gc('rmsNorm no weight, offset view', (r) => ({ inputs: [input(r, [2, 3, 5], { layout: 'offset' })], fn: (x) => F.rmsNorm(x!, null, 1e-5) }));

// ---- rope -------------------------------------------------------------------------------------

/** cos/sin [T, half] for positions start.. with the usual inverse-frequency ladder. */
function ropeTables(T: number, half: number, start = 0): [Tensor, Tensor] {
  const c = new Float32Array(T * half), s = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = (start + t) * Math.pow(100, -i / half);
      c[t * half + i] = Math.cos(a);
      s[t * half + i] = Math.sin(a);
    }
  }
  return [fromData(c, [T, half]), fromData(s, [T, half])];
}
for (const interleaved of [false, true]) {
  gc(`rope full rotary interleaved=${interleaved}`, (r) => {
    const [c, s] = ropeTables(5, 4, 3);
    return { inputs: [input(r, [2, 2, 5, 8])], fn: (x) => F.rope(x!, c, s, { interleaved }) };
  });
  gc(`rope partial rotary interleaved=${interleaved}, transposed`, (r) => {
    const [c, s] = ropeTables(4, 2);
    return { inputs: [input(r, [3, 4, 6], { layout: 'transposed' })], fn: (x) => F.rope(x!, c, s, { interleaved }) };
  });
}

// ---- attention --------------------------------------------------------------------------------

gc('attention causal Tq < Tk', (r) => ({
  inputs: [input(r, [1, 2, 3, 4]), input(r, [1, 2, 5, 4]), input(r, [1, 2, 5, 3])],
  fn: (q, k, v) => F.attention(q!, k!, v!, { causal: true }),
}));
gc('attention bool mask [Tq, Tk] broadcast, non-contiguous q/k', (r) => {
  const m = randMask(r, [3, 5], 0.6);
  for (let i = 0; i < 3; i++) m.u8[i * 5 + i] = 1; // every row sees a key
  return {
    inputs: [input(r, [1, 2, 3, 4], { layout: 'transposed' }), input(r, [1, 2, 5, 4], { layout: 'strided' }), input(r, [1, 2, 5, 3])],
    fn: (q, k, v) => F.attention(q!, k!, v!, { mask: m }),
  };
});
gc('attention GQA with key-padding mask and explicit scale', (r) => {
  const m = fromData(Uint8Array.from([1, 1, 1, 0, 1, 1, 0, 0]), [2, 1, 1, 4], 'bool');
  return {
    inputs: [input(r, [2, 4, 3, 3]), input(r, [2, 2, 4, 3]), input(r, [2, 2, 4, 2])],
    fn: (q, k, v) => F.attention(q!, k!, v!, { mask: m, scale: 0.7 }),
  };
});
gc('attention causal + mask, Tq = Tk, a fully masked row', (r) => {
  const m = fromData(Uint8Array.from([1, 0, 1, 1]), [4, 1], 'bool'); // query 1 sees nothing
  return {
    inputs: [input(r, [1, 1, 4, 3]), input(r, [1, 1, 4, 3]), input(r, [1, 1, 4, 3], { layout: 'offset' })],
    fn: (q, k, v) => F.attention(q!, k!, v!, { causal: true, mask: m }),
  };
});
gc('attention GQA causal Tq = 1 (decode step)', (r) => ({
  inputs: [input(r, [1, 4, 1, 4]), input(r, [1, 1, 6, 4]), input(r, [1, 1, 6, 4])],
  fn: (q, k, v) => F.attention(q!, k!, v!, { causal: true }),
}));

// ---- losses / lookup --------------------------------------------------------------------------

const ceTargets = (): Tensor => intTensor([1, -100, 4, 0, 2, 3], [2, 3]);
for (const reduction of ['mean', 'sum', 'none'] as const) {
  gc(`crossEntropy reduction=${reduction} with ignore index`, (r) => ({
    inputs: [input(r, [2, 3, 5], { gen: N(1.5) })],
    fn: (x) => F.crossEntropy(x!, ceTargets(), { reduction }),
  }));
  gc(`crossEntropy reduction=${reduction} label smoothing 0.1`, (r) => ({
    inputs: [input(r, [2, 3, 5], { layout: 'transposed', gen: N(1.5) })],
    fn: (x) => F.crossEntropy(x!, ceTargets(), { reduction, labelSmoothing: 0.1 }),
  }));
}
gc('crossEntropy custom ignoreIndex 2, smoothing 0.3', (r) => ({
  inputs: [input(r, [6, 4], { layout: 'strided' })],
  fn: (x) => F.crossEntropy(x!, intTensor([2, 0, 3, 2, 1, 1], [6]), { ignoreIndex: 2, labelSmoothing: 0.3 }),
}));
gc('embedding with repeated ids', (r) => ({
  inputs: [input(r, [6, 3], { layout: 'offset' })],
  fn: (w) => F.embedding(w!, intTensor([0, 5, 2, 2, 5, 5, 1, 0], [2, 4])),
}));
gc('embedding with non-contiguous ids', (r) => {
  const ids = F.transpose(randInts(r, [3, 2], 5));
  return { inputs: [input(r, [5, 4])], fn: (w) => F.embedding(w!, ids) };
});

// ---- cumsum / topk ----------------------------------------------------------------------------

for (const reverse of [false, true]) {
  gc(`cumsum axis 0 reverse=${reverse}`, (r) => ({ inputs: [input(r, [4, 3])], fn: (x) => F.cumsum(x!, 0, reverse) }));
  gc(`cumsum axis -1 reverse=${reverse}`, (r) => ({ inputs: [input(r, [3, 5], { layout: 'strided' })], fn: (x) => F.cumsum(x!, -1, reverse) }));
  gc(`cumsum middle axis reverse=${reverse}, transposed`, (r) => ({ inputs: [input(r, [2, 4, 3], { layout: 'transposed' })], fn: (x) => F.cumsum(x!, 1, reverse) }));
}
gc('topk k=3', (r) => ({
  inputs: [input(r, [3, 6], { gen: gen.distinct(0.1) })],
  fn: (x) => { const t = F.topk(x!, 3); return [t.values, t.indices]; },
}));
gc('topk k=n (full sort) of a transposed view', (r) => ({
  inputs: [input(r, [2, 3, 4], { layout: 'transposed', gen: gen.distinct(0.1) })],
  fn: (x) => { const t = F.topk(x!, 4); return [t.values, t.indices]; },
}));
gc('topk k=1', (r) => ({ inputs: [input(r, [4, 5], { gen: gen.distinct(0.1) })], fn: (x) => F.topk(x!, 1).values }));

// ---- conv / pool / interpolate ----------------------------------------------------------------

interface ConvCase { x: number[]; w: number[]; bias: boolean; opts: F.Conv2dOptions; layout?: Layout }
const convCases: [string, ConvCase][] = [
  ['basic with bias', { x: [1, 2, 5, 5], w: [3, 2, 3, 3], bias: true, opts: {} }],
  ['stride 2 padding 1', { x: [2, 2, 6, 5], w: [3, 2, 3, 3], bias: false, opts: { stride: 2, padding: 1 } }],
  ['dilation 2 padding 2', { x: [1, 2, 7, 6], w: [2, 2, 3, 3], bias: true, opts: { dilation: 2, padding: 2 } }],
  ['groups 2', { x: [1, 4, 5, 4], w: [6, 2, 3, 3], bias: true, opts: { groups: 2, padding: 1 } }],
  ['depthwise with bias', { x: [2, 3, 5, 5], w: [3, 1, 3, 3], bias: true, opts: { groups: 3, padding: 1 } }],
  ['depthwise stride 2 dilation 2', { x: [1, 3, 7, 6], w: [3, 1, 3, 3], bias: false, opts: { groups: 3, stride: 2, dilation: 2, padding: 2 } }],
  ['grouped channel multiplier (groups = C, Cout = 2C)', { x: [1, 2, 4, 4], w: [4, 1, 3, 3], bias: true, opts: { groups: 2, padding: 1 } }],
  ['asymmetric kernel/stride/padding', { x: [1, 2, 5, 7], w: [2, 2, 2, 3], bias: true, opts: { stride: [1, 2], padding: [1, 0], dilation: [2, 1] } }],
  ['1x1', { x: [2, 3, 3, 4], w: [2, 3, 1, 1], bias: true, opts: {} }],
  ['non-contiguous input', { x: [1, 2, 5, 6], w: [2, 2, 3, 3], bias: false, opts: { padding: 1 }, layout: 'transposed' }],
];
for (const [name, c] of convCases) {
  gc(`conv2d ${name}`, (r) => ({
    inputs: [input(r, c.x, { layout: c.layout ?? 'dense' }), input(r, c.w, { gen: N(0.5) }), ...(c.bias ? [input(r, [c.w[0]!])] : [])],
    fn: (x, w, b) => F.conv2d(x!, w!, b ?? null, c.opts),
  }));
}
gc('conv2d with constant input (weight and bias grads only)', (r) => ({
  inputs: [constant(r, [2, 2, 4, 4]), input(r, [3, 2, 3, 3]), input(r, [3])],
  fn: (x, w, b) => F.conv2d(x!, w!, b!, { stride: 2, padding: 1 }),
}));
gc('depthwise conv2d with constant input', (r) => ({
  inputs: [constant(r, [1, 3, 4, 4]), input(r, [3, 1, 3, 3])],
  fn: (x, w) => F.conv2d(x!, w!, null, { groups: 3 }),
}));
gc('conv2d with constant weight (input grad only)', (r) => ({
  inputs: [input(r, [1, 2, 4, 4]), constant(r, [3, 2, 3, 3])],
  fn: (x, w) => F.conv2d(x!, w!, null, { padding: 1 }),
}));

const poolCases: [string, number[], number | [number, number], F.Pool2dOptions, Layout][] = [
  ['kernel 2', [1, 2, 4, 6], 2, {}, 'dense'],
  ['kernel 3 stride 2 padding 1', [1, 2, 5, 6], 3, { stride: 2, padding: 1 }, 'dense'],
  ['kernel [2, 3] stride [2, 1]', [2, 1, 5, 5], [2, 3], { stride: [2, 1] }, 'transposed'],
  ['kernel 2 stride 1 padding 1 (overlapping)', [1, 1, 4, 5], 2, { stride: 1, padding: 1 }, 'strided'],
];
for (const [name, shape, k, opts, layout] of poolCases) {
  gc(`maxPool2d ${name}`, (r) => ({ inputs: [input(r, shape, { layout, gen: gen.distinct(0.05) })], fn: (x) => F.maxPool2d(x!, k, opts) }));
  gc(`avgPool2d ${name}`, (r) => ({ inputs: [input(r, shape, { layout })], fn: (x) => F.avgPool2d(x!, k, opts) }));
  if (opts.padding) {
    gc(`avgPool2d ${name} countIncludePad=false`, (r) => ({ inputs: [input(r, shape, { layout })], fn: (x) => F.avgPool2d(x!, k, { ...opts, countIncludePad: false }) }));
  }
}

const interpCases: [string, number[], F.InterpolateOptions][] = [
  ['nearest up', [1, 2, 3, 4], { size: [7, 5] }],
  ['nearest down', [1, 2, 5, 6], { size: [2, 4] }],
  ['nearest scaleFactor 2', [1, 1, 3, 3], { scaleFactor: 2 }],
  ['nearest scaleFactor 1.5', [1, 2, 3, 4], { scaleFactor: 1.5 }],
  ['bilinear up', [1, 2, 3, 4], { mode: 'bilinear', size: [5, 7] }],
  ['bilinear up alignCorners', [1, 2, 3, 4], { mode: 'bilinear', size: [5, 7], alignCorners: true }],
  ['bilinear down', [1, 2, 5, 6], { mode: 'bilinear', size: [2, 4] }],
  ['bilinear down alignCorners', [1, 2, 5, 6], { mode: 'bilinear', size: [3, 4], alignCorners: true }],
  ['bilinear scaleFactor 1.5', [2, 1, 3, 4], { mode: 'bilinear', scaleFactor: 1.5 }],
  ['bicubic up', [1, 2, 4, 4], { mode: 'bicubic', size: [6, 7] }],
  ['bicubic up alignCorners', [1, 2, 4, 4], { mode: 'bicubic', size: [6, 7], alignCorners: true }],
  ['bicubic down', [1, 1, 6, 7], { mode: 'bicubic', size: [3, 4] }],
  ['bicubic scaleFactor [2, 1.5]', [1, 1, 3, 4], { mode: 'bicubic', scaleFactor: [2, 1.5] }],
  ['bicubic scaleFactor 0.5 alignCorners', [1, 1, 6, 6], { mode: 'bicubic', scaleFactor: 0.5, alignCorners: true }],
];
for (const [name, shape, opts] of interpCases) {
  gc(`interpolate ${name}`, (r) => ({ inputs: [input(r, shape)], fn: (x) => F.interpolate(x!, opts) }));
}
gc('interpolate bilinear of a transposed view', (r) => ({
  inputs: [input(r, [1, 2, 4, 3], { layout: 'transposed' })],
  fn: (x) => F.interpolate(x!, { mode: 'bilinear', size: [6, 5] }),
}));

// ---- layout ops -------------------------------------------------------------------------------

const layoutCases: [string, number[], Layout, (x: Tensor) => Tensor | Tensor[]][] = [
  ['reshape', [2, 3, 4], 'dense', (x) => F.reshape(x, [4, 6])],
  ['reshape of a transposed view (copy)', [2, 3, 4], 'transposed', (x) => F.reshape(x, [6, -1])],
  ['flatten', [2, 3, 4], 'strided', (x) => F.flatten(x, 1)],
  ['permute', [2, 3, 4], 'dense', (x) => F.permute(x, [2, 0, 1])],
  ['permute of a strided view', [2, 3, 4], 'strided', (x) => F.permute(x, [1, 2, 0])],
  ['transpose', [2, 3, 4], 'offset', (x) => F.transpose(x, 0, 2)],
  ['slice with step', [5, 6], 'dense', (x) => F.slice(x, 1, 1, 6, 2)],
  ['slice negative start, step 3', [7, 3], 'transposed', (x) => F.slice(x, 0, -6, undefined, 3)],
  ['slice of a slice', [6, 5], 'strided', (x) => F.slice(F.slice(x, 0, 1, 5), 1, 0, 4, 2)],
  ['expand', [3, 1], 'dense', (x) => F.expand(x, [2, 3, 4])],
  ['expand with -1', [1, 4], 'offset', (x) => F.expand(x, [3, -1])],
  ['squeeze', [3, 1, 4], 'dense', (x) => F.squeeze(x)],
  ['squeeze axis', [1, 3, 1], 'strided', (x) => F.squeeze(x, 0)],
  ['unsqueeze', [3, 4], 'transposed', (x) => F.unsqueeze(x, 1)],
  ['unsqueeze last', [3, 4], 'dense', (x) => F.unsqueeze(x, -1)],
  ['split sizes', [2, 6], 'dense', (x) => F.split(x, [1, 3, 2], 1)],
  ['split equal', [5, 3], 'transposed', (x) => F.split(x, 2, 0)],
  ['chunk', [2, 7], 'strided', (x) => F.chunk(x, 3, 1)],
  ['indexSelect with repeats', [3, 5], 'dense', (x) => F.indexSelect(x, 1, intTensor([3, 0, 3, 1], [4]))],
  ['indexSelect axis 0 of a transposed view', [4, 3], 'transposed', (x) => F.indexSelect(x, 0, intTensor([2, 2, 0], [3]))],
  ['clone', [3, 4], 'transposed', (x) => F.clone(x)],
  ['contiguous', [3, 4], 'strided', (x) => F.contiguous(x)],
  ['contiguous of a dense tensor', [3, 4], 'dense', (x) => F.contiguous(x)],
];
for (const [name, shape, layout, op] of layoutCases) {
  gc(name, (r) => ({ inputs: [input(r, shape, { layout })], fn: (x) => op(x!) }));
}
gc('concat along axis 1, mixed layouts', (r) => ({
  inputs: [input(r, [2, 3], { layout: 'transposed' }), input(r, [2, 2]), input(r, [2, 1], { layout: 'strided' })],
  fn: (a, b, c) => F.concat([a!, b!, c!], 1),
}));
gc('concat along axis 0', (r) => ({ inputs: [input(r, [1, 3]), input(r, [2, 3], { layout: 'offset' })], fn: (a, b) => F.concat([a!, b!], 0) }));
gc('stack along axis 1', (r) => ({
  inputs: [input(r, [2, 3]), input(r, [2, 3], { layout: 'expanded' }), input(r, [2, 3], { layout: 'transposed' })],
  fn: (a, b, c) => F.stack([a!, b!, c!], 1),
})); // stack disposes its unsqueezed views: their grad nodes must survive
gc('gather along axis 1', (r) => {
  const idx = randInts(r, [3, 5, 2], 4);
  return { inputs: [input(r, [3, 4, 2])], fn: (x) => F.gather(x!, 1, idx) };
});
gc('gather along last axis of a transposed view', (r) => {
  const idx = randInts(r, [4, 2], 3);
  return { inputs: [input(r, [4, 3], { layout: 'transposed' })], fn: (x) => F.gather(x!, -1, idx) };
});

// ---- graph structure and accumulation ---------------------------------------------------------

gc('an input used by two ops', (r) => ({ inputs: [input(r, [3, 4])], fn: (x) => F.add(F.mul(x!, x!), F.sin(x!)) }));
gc('diamond: an intermediate used twice', (r) => ({
  inputs: [input(r, [3, 4], { gen: gen.uniform(-1, 1) }), input(r, [4])],
  fn: (x, w) => { const a = F.exp(F.mul(x!, w!)); return F.add(F.mul(a, x!), F.tanh(a)); },
}));
gc('same tensor as both operands', (r) => ({ inputs: [input(r, [5])], fn: (x) => [F.add(x!, x!), F.mul(x!, x!), F.sub(x!, x!)] }));
gc('same tensor as both matmul operands', (r) => ({ inputs: [input(r, [3, 3])], fn: (x) => F.matmul(x!, x!) }));
gc('several outputs sharing a subgraph', (r) => ({
  inputs: [input(r, [2, 3, 4])],
  fn: (x) => { const s = F.softmax(x!); return [F.sum(s, -1), F.max(s, 1), F.mul(s, x!)]; },
}));

test('explicit: x used twice gets both contributions', () => {
  const x = param(F.tensor([0.5, -1, 2], [3]));
  const y = F.sum(F.add(F.mul(x, x), F.sin(x)));
  backward(y);
  allclose(F.toArray(x.grad!), [0.5, -1, 2].map((v) => 2 * v + Math.cos(v)), { rtol: 1e-6, atol: 1e-6, what: 'd/dx sum(x*x + sin x)' });
});

test('leaf .grad accumulates across two backward calls', () => {
  const x = param(F.tensor([0.5, -1, 2, 3], [2, 2]));
  const w = F.tensor([1, 2, 3, 4], [2, 2]);
  backward(F.sum(F.mul(x, w)));
  allclose(F.toArray(x.grad!), [1, 2, 3, 4], { rtol: 0, atol: 0, what: 'first backward' });
  backward(F.sum(F.square(x)));
  allclose(F.toArray(x.grad!), [1 + 1, 2 - 2, 3 + 4, 4 + 6], { rtol: 1e-6, atol: 0, what: 'accumulated grad' });
  // A third pass through a non-contiguous view of x also accumulates into the dense .grad.
  backward(F.sum(F.transpose(x)));
  allclose(F.toArray(x.grad!), [3, 1, 8, 11], { rtol: 1e-6, atol: 0, what: 'accumulated through a view' });
});

test('backward twice through one graph throws', () => {
  const x = param(F.tensor([1, 2, 3], [3]));
  const y = F.sum(F.exp(x));
  backward(y);
  assert.throws(() => backward(y), /already used|does not require grad/);
});

test('detach blocks the gradient', () => {
  const x = param(F.tensor([0.5, -1, 2], [3]));
  backward(F.sum(F.add(F.mul(F.detach(x), x), x)));
  allclose(F.toArray(x.grad!), [1.5, 0, 3], { rtol: 1e-6, atol: 0, what: 'd/dx sum(detach(x) * x + x)' });
});

test('a constant input gets no gradient', () => {
  const x = param(F.tensor([1, 2], [2]));
  const c = F.tensor([3, 4], [2]);
  backward(F.sum(F.mul(x, c)));
  assert.equal(c.grad, null);
  allclose(F.toArray(x.grad!), [3, 4], { rtol: 0, atol: 0, what: 'x.grad' });
});


test('gradcheck itself rejects a wrong or missing gradient', () => {
  const r = new Rng(7);
  // d/dx x^2 = 2x; a vjp 5% off must fail, a vjp that returns null must fail.
  const off = (x: Tensor): Tensor => record('square5', [x], noGrad(() => F.square(x)), [x], (g, [sx]) => [F.mul(g, F.scale(sx!, 2.1))]);
  const none = (x: Tensor): Tensor => record('squareNone', [x], noGrad(() => F.square(x)), [], () => [null]);
  assert.throws(() => gradcheck(off, [input(r, [3, 4], { gen: gen.awayFromZero(0.5, 1.5) })]), /gradcheck failed/);
  assert.throws(() => gradcheck(none, [input(r, [3])]), /no gradient reached the leaf|gradcheck failed/);
  // ... and a correct one passes.
  const ok = (x: Tensor): Tensor => record('square', [x], noGrad(() => F.square(x)), [x], (g, [sx]) => [F.mul(g, F.scale(sx!, 2))]);
  gradcheck(ok, [input(r, [3, 4])]);
});
