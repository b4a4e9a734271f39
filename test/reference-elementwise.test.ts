import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { erf, erfc } from '../src/backends/reference/special.ts';
import { UnaryOps, type UnaryOp } from '../src/engine/backend.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

function un(op: UnaryOp, xs: number[], p0 = 0, p1 = 0): number[] {
  const x = Float32Array.from(xs);
  const y = new Float32Array(x.length);
  R.unary(op, x, y, p0, p1);
  return Array.from(y);
}

test('erf / erfc against high-precision values', () => {
  // [x, erf(x), erfc(x)] from 30-digit arithmetic
  const table: [number, number, number][] = [
    [0.1, 0.1124629160182849, 0.8875370839817151],
    [1, 0.84270079294971487, 0.15729920705028513],
    [2.9, 0.99995890212190054, 4.1097878099458858e-5],
    [3, 0.99997790950300141, 2.2090496998585441e-5],
    [3.5, 0.99999925690162766, 7.4309837234141275e-7],
    [5, 0.99999999999846254, 1.5374597944280349e-12],
  ];
  for (const [x, e, c] of table) {
    assert.ok(Math.abs(erf(x) - e) <= 1e-15 * e, `erf(${x})`);
    assert.ok(Math.abs(erf(-x) + e) <= 1e-15 * e, `erf(-${x})`);
    assert.ok(Math.abs(erfc(x) - c) <= 1e-9 * c, `erfc(${x}) = ${erfc(x)}`);
    assert.ok(Math.abs(erfc(-x) - (2 - c)) <= 1e-15, `erfc(-${x})`);
  }
  assert.equal(erf(0), 0);
  assert.ok(Number.isNaN(erf(NaN)));
});

test('activation known values (30-digit references)', () => {
  const xs = [1, -1, -3, 0.5, 2.5, -6];
  const gelu = [0.84134474606854295, -0.15865525393145705, -0.0040496940948902836, 0.34573123063700655, 2.4844758366855597, -5.9195258702261888e-9];
  const geluTanh = [0.8411919906082767, -0.1588080093917233, -0.0036373920817730188, 0.34571400982514392, 2.4849157339100014, -8.4396467007622971e-11];
  const quick = [0.84579576593282129, -0.15420423406717871, -0.018071309707785969, 0.35038843660638012, 2.4650138349514299, -0.00022035354978739246];
  const silu = [0.73105857863000488, -0.26894142136999512, -0.14227761953270034, 0.31122966560092728, 2.3103545499468911, -0.014835738939808646];
  // relative accuracy even in the far negative tail (f32 storage is the only rounding)
  assertClose(un('gelu', xs), gelu, 'gelu', 1e-7, 0);
  assertClose(un('gelu_tanh', xs), geluTanh, 'gelu_tanh', 1e-7, 0);
  assertClose(un('quick_gelu', xs), quick, 'quick_gelu', 1e-7, 0);
  assertClose(un('silu', xs), silu, 'silu', 1e-7, 0);
});

test('simple unary ops and parameterised ops', () => {
  assert.deepEqual(un('neg', [1, -2]), [-1, 2]);
  assert.deepEqual(un('abs', [-1.5, 2]), [1.5, 2]);
  assert.deepEqual(un('relu', [-1, 0, 3]), [0, 0, 3]);
  assert.deepEqual(un('square', [3, -2]), [9, 4]);
  assert.deepEqual(un('reciprocal', [4, -0.5]), [0.25, -2]);
  assert.deepEqual(un('sqrt', [4, 9]), [2, 3]);
  assert.deepEqual(un('rsqrt', [4, 16]), [0.5, 0.25]);
  assert.deepEqual(un('sigmoid', [0]), [0.5]);
  assert.deepEqual(un('scale', [1, -2], 3), [3, -6]);
  assert.deepEqual(un('add_scalar', [1, -2], 0.5), [1.5, -1.5]);
  assert.deepEqual(un('pow_scalar', [2, 3, -2], 2), [4, 9, 4]);
  assert.deepEqual(un('pow_scalar', [1, NaN], 0), [1, 1]); // C pow: x^0 = 1
  assert.deepEqual(un('clamp', [-5, 0.5, 5], -1, 1), [-1, 0.5, 1]);
  assert.deepEqual(un('sign', [-3, 0, 2, NaN]), [-1, 0, 1, 0]);
  assert.ok(Number.isNaN(un('relu', [NaN])[0]));
  assert.ok(Number.isNaN(un('clamp', [NaN], 0, 1)[0]));
  assertClose(un('exp', [0, 1]), [1, Math.E], 'exp', 1e-7);
  assertClose(un('log', [1, Math.E]), [0, 1], 'log', 1e-7);
  assertClose(un('tanh', [0, 1]), [0, Math.tanh(1)], 'tanh', 1e-7);
  assertClose(un('sigmoid', [-800, 800]), [0, 1], 'sigmoid saturates without NaN', 0, 0);
  // y may alias x
  const x = Float32Array.of(1, 2, 3);
  R.unary('square', x, x, 0, 0);
  assert.deepEqual(Array.from(x), [1, 4, 9]);
});

test('unaryBackward matches finite differences for every differentiable op', () => {
  const r = rng(7);
  const n = 24;
  const cases: [UnaryOp, number, number, Float32Array][] = [];
  const general = (): Float32Array => Float32Array.from({ length: n }, () => {
    const v = r() * 3;
    return Math.abs(v) < 0.05 ? v + 0.2 : v; // away from 0 (kinks of abs / relu)
  });
  const positive = (): Float32Array => rand(n, r, 0.5, 1); // [0.5, 1.5)
  for (const op of UnaryOps) {
    if (op === 'sign') continue;
    if (op === 'log' || op === 'sqrt' || op === 'rsqrt' || op === 'reciprocal') cases.push([op, 0, 0, positive()]);
    else if (op === 'pow_scalar') cases.push([op, 2.5, 0, positive()], [op, -1.5, 0, positive()], [op, 3, 0, general()]);
    else if (op === 'scale') cases.push([op, -1.7, 0, general()]);
    else if (op === 'add_scalar') cases.push([op, 0.3, 0, general()]);
    else if (op === 'clamp') {
      // keep inputs away from the clamp bounds
      const x = general().map((v) => (Math.abs(Math.abs(v) - 1) < 0.05 ? v * 1.2 : v));
      cases.push([op, -1, 1, x]);
    } else cases.push([op, 0, 0, general()]);
  }
  for (const [op, p0, p1, x] of cases) {
    const gy = rand(n, r);
    const y = new Float32Array(n);
    const loss = (): number => {
      R.unary(op, x, y, p0, p1);
      return dot(y, gy);
    };
    loss();
    const gx = new Float32Array(n);
    R.unaryBackward(op, x, y, gy, gx, p0, p1);
    fdCheck(`unaryBackward ${op}(p0=${p0})`, [x], [gx], loss);
  }
});

test('unaryBackward edge semantics', () => {
  const gy = Float32Array.of(1, 1, 1);
  const gx = new Float32Array(3);
  const x = Float32Array.of(-1, 0, 1);
  const y = new Float32Array(3);
  R.unary('relu', x, y, 0, 0);
  R.unaryBackward('relu', x, y, gy, gx, 0, 0);
  assert.deepEqual(Array.from(gx), [0, 0, 1]);
  R.unaryBackward('abs', x, y, gy, gx, 0, 0);
  assert.deepEqual(Array.from(gx), [-1, 0, 1]);
  // clamp passes the gradient at the bounds (PyTorch: min <= x <= max)
  R.unaryBackward('clamp', x, y, gy, gx, -1, 0);
  assert.deepEqual(Array.from(gx), [1, 1, 0]);
  R.unaryBackward('pow_scalar', x, y, gy, gx, 0, 0);
  assert.deepEqual(Array.from(gx), [0, 0, 0]);
  // ops that read y ignore x (an empty x is fine), the others ignore y
  R.unaryBackward('exp', new Float32Array(0), Float32Array.of(2, 3, 4), gy, gx, 0, 0);
  assert.deepEqual(Array.from(gx), [2, 3, 4]);
  R.unaryBackward('square', x, new Float32Array(0), gy, gx, 0, 0);
  assert.deepEqual(Array.from(gx), [-2, 0, 2]);
  throwsKernel(() => R.unaryBackward('sign', x, y, gy, gx, 0, 0), 'unaryBackward', /sign/);
});

test('binary with broadcasting strides, offsets and comparisons', () => {
  // a [2, 3] dense, b [3] broadcast over rows
  const a = Float32Array.of(1, 2, 3, 4, 5, 6);
  const b = Float32Array.of(9, 10, 20, 30); // b at offset 1
  const out = new Float32Array(6);
  R.binary('add', a, 0, [3, 1], b, 1, [0, 1], [2, 3], out);
  assert.deepEqual(Array.from(out), [11, 22, 33, 14, 25, 36]);
  // transposed read of a: out[i, j] = a[j, i]; b scalar
  const out2 = new Float32Array(6);
  R.binary('mul', a, 0, [1, 3], Float32Array.of(2), 0, [0, 0], [3, 2], out2);
  assert.deepEqual(Array.from(out2), [2, 8, 4, 10, 6, 12]);
  // negative stride (reversed)
  const out3 = new Float32Array(3);
  R.binary('sub', a, 2, [-1], a, 0, [1], [3], out3);
  assert.deepEqual(Array.from(out3), [2, 0, -2]);
  const cmp = (op: Parameters<typeof R.binary>[0], x: number[], y: number[]): number[] => {
    const o = new Float32Array(x.length);
    R.binary(op, Float32Array.from(x), 0, [1], Float32Array.from(y), 0, [1], [x.length], o);
    return Array.from(o);
  };
  assert.deepEqual(cmp('div', [1, -3], [4, 2]), [0.25, -1.5]);
  assert.deepEqual(cmp('pow', [2, 1, -1], [3, NaN, Infinity]), [8, 1, 1]);
  assert.deepEqual(cmp('max', [1, 5], [2, 3]), [2, 5]);
  assert.deepEqual(cmp('min', [1, 5], [2, 3]), [1, 3]);
  assert.ok(Number.isNaN(cmp('max', [NaN], [1])[0]));
  assert.deepEqual(cmp('eq', [1, 2, NaN], [1, 3, NaN]), [1, 0, 0]);
  assert.deepEqual(cmp('ne', [1, 2, NaN], [1, 3, NaN]), [0, 1, 1]);
  assert.deepEqual(cmp('lt', [1, 2, 3], [2, 2, 2]), [1, 0, 0]);
  assert.deepEqual(cmp('le', [1, 2, 3], [2, 2, 2]), [1, 1, 0]);
  assert.deepEqual(cmp('gt', [1, 2, 3], [2, 2, 2]), [0, 0, 1]);
  assert.deepEqual(cmp('ge', [1, 2, 3], [2, 2, 2]), [0, 1, 1]);
  // rank 0 (scalar) and empty shapes
  const s = new Float32Array(1);
  R.binary('add', Float32Array.of(2), 0, [], Float32Array.of(3), 0, [], [], s);
  assert.equal(s[0], 5);
  R.binary('add', new Float32Array(0), 0, [1], new Float32Array(0), 0, [1], [0], new Float32Array(0));
});

test('where and copyStrided', () => {
  const cond = Uint8Array.of(1, 0, 1);
  const out = new Float32Array(6);
  // cond [3] broadcast over 2 rows, a [2, 3], b scalar
  R.where(cond, 0, [0, 1], Float32Array.of(1, 2, 3, 4, 5, 6), 0, [3, 1], Float32Array.of(-1), 0, [0, 0], [2, 3], out);
  assert.deepEqual(Array.from(out), [1, -1, 3, 4, -1, 6]);

  // transpose of a [2, 3] at offset 1, for every element type
  const src = Float32Array.of(99, 1, 2, 3, 4, 5, 6);
  const dst = new Float32Array(6);
  R.copyStrided(src, 1, [3, 2], [1, 3], dst);
  assert.deepEqual(Array.from(dst), [1, 4, 2, 5, 3, 6]);
  const isrc = Int32Array.of(7, 8, 9);
  const idst = new Int32Array(6);
  R.copyStrided(isrc, 0, [2, 3], [0, 1], idst);
  assert.deepEqual(Array.from(idst), [7, 8, 9, 7, 8, 9]);
  const usrc = Uint8Array.of(1, 0, 1, 1);
  const udst = new Uint8Array(2);
  R.copyStrided(usrc, 3, [2], [-3], udst);
  assert.deepEqual(Array.from(udst), [1, 1]);
});

test('elementwise validation errors', () => {
  const x = new Float32Array(4);
  throwsKernel(() => R.unary('exp', x, new Float32Array(3), 0, 0), 'unary', /length 3, expected 4/);
  throwsKernel(() => R.unary('nope' as UnaryOp, x, x, 0, 0), 'unary', /unknown op/);
  throwsKernel(() => R.unaryBackward('tanh', x, new Float32Array(2), x, x, 0, 0), 'unaryBackward', /length 2, expected 4/);
  throwsKernel(() => R.binary('add', x, 0, [1], x, 1, [1], [4], new Float32Array(4)), 'binary', /outside a buffer of length 4/);
  throwsKernel(() => R.binary('add', x, 0, [1], x, 0, [1, 1], [4], new Float32Array(4)), 'binary', /2 strides for a rank-1/);
  throwsKernel(() => R.binary('add', x, 0, [1], x, 0, [1], [4], new Float32Array(5)), 'binary', /out has length 5, expected 4/);
  throwsKernel(() => R.binary('add', x, 0, [1], x, 0, [1], [-1], new Float32Array(0)), 'binary', /shape\[0\]/);
  throwsKernel(() => R.binary('add', x, 0, [1.5], x, 0, [1], [2], new Float32Array(2)), 'binary', /stride\[0\]/);
  throwsKernel(() => R.where(new Uint8Array(2), 0, [1], x, 0, [1], x, 0, [1], [4], new Float32Array(4)), 'where', /cond/);
  throwsKernel(() => R.copyStrided(x, 0, [2, 2], [2, 1], new Float32Array(3)), 'copyStrided', /dst has length 3/);
  throwsKernel(() => R.copyStrided(x, 1, [2, 2], [2, 1], new Float32Array(4)), 'copyStrided', /\[1, 4\] outside a buffer of length 4/);
  throwsKernel(() => R.copyStrided(x as Float32Array | Int32Array, 0, [4], [1], new Int32Array(4)), 'copyStrided', /element types differ/);
});
