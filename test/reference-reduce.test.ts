import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

test('reduce sum / max / min over the middle dim', () => {
  // x [2, 3, 2]
  const x = Float32Array.of(1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6);
  const out = new Float32Array(4);
  R.reduce('sum', x, 2, 3, 2, out);
  assert.deepEqual(Array.from(out), [9, 12, -9, -12]);
  R.reduce('max', x, 2, 3, 2, out);
  assert.deepEqual(Array.from(out), [5, 6, -1, -2]);
  R.reduce('min', x, 2, 3, 2, out);
  assert.deepEqual(Array.from(out), [1, 2, -5, -6]);
  const nan = new Float32Array(1);
  R.reduce('max', Float32Array.of(1, NaN, 3), 1, 3, 1, nan);
  assert.ok(Number.isNaN(nan[0]));
  // f64 accumulation: 1 + 1e-8 * 1e4 is not lost
  const small = new Float32Array(10001).fill(1e-8);
  small[0] = 1;
  const s = new Float32Array(1);
  R.reduce('sum', small, 1, small.length, 1, s);
  assert.equal(s[0], Math.fround(1 + 1e-4));
  // n = 0: sum is 0
  R.reduce('sum', new Float32Array(0), 1, 0, 1, s);
  assert.equal(s[0], 0);
});

test('argReduce: first extreme, NaN wins', () => {
  const out = new Int32Array(2);
  R.argReduce('argmax', Float32Array.of(1, 5, 5, 0, 2, 2), 2, 3, 1, out);
  assert.deepEqual(Array.from(out), [1, 1]);
  R.argReduce('argmin', Float32Array.of(1, 5, 1, 0, 2, 0), 2, 3, 1, out);
  assert.deepEqual(Array.from(out), [0, 0]);
  R.argReduce('argmax', Float32Array.of(1, NaN, 7, 0, 2, NaN), 2, 3, 1, out);
  assert.deepEqual(Array.from(out), [1, 2]);
  // inner > 1: x [1, 2, 2]
  R.argReduce('argmax', Float32Array.of(1, 9, 3, 2), 1, 2, 2, out);
  assert.deepEqual(Array.from(out), [1, 0]);
  assert.equal(R.sumSquares(Float32Array.of(3, 4)), 25);
});

test('softmax known values', () => {
  const y = new Float32Array(8);
  R.softmax(Float32Array.of(2, 2, 2, 2, 0, 0, 0, 0), y, 2, 4, false);
  assert.deepEqual(Array.from(y), new Array(8).fill(0.25));
  R.softmax(Float32Array.of(5, 5, 5, 5, 1000, 1000, 1000, 1000), y, 2, 4, true);
  assertClose(y, new Array(8).fill(-Math.log(4)), 'log_softmax of equal values', 1e-7);
  const z = new Float32Array(2);
  R.softmax(Float32Array.of(0, Math.log(3)), z, 1, 2, false);
  assertClose(z, [0.25, 0.75], 'softmax [0, ln 3]', 1e-7);
  // y may alias x
  const x = Float32Array.of(0, Math.log(3));
  R.softmax(x, x, 1, 2, true);
  assertClose(x, [Math.log(0.25), Math.log(0.75)], 'in-place log_softmax', 1e-7);
});

test('softmaxBackward matches finite differences', () => {
  const r = rng(11);
  const rows = 3, n = 5;
  for (const log of [false, true]) {
    const x = rand(rows * n, r, 2);
    const gy = rand(rows * n, r);
    const y = new Float32Array(rows * n);
    const loss = (): number => {
      R.softmax(x, y, rows, n, log);
      return dot(y, gy);
    };
    loss();
    const gx = new Float32Array(rows * n);
    R.softmaxBackward(y, gy, gx, rows, n, log);
    fdCheck(`softmaxBackward log=${log}`, [x], [gx], loss);
  }
});

test('cumsum and topk', () => {
  // x [1, 3, 2]
  const x = Float32Array.of(1, 10, 2, 20, 3, 30);
  const y = new Float32Array(6);
  R.cumsum(x, y, 1, 3, 2, false);
  assert.deepEqual(Array.from(y), [1, 10, 3, 30, 6, 60]);
  R.cumsum(x, y, 1, 3, 2, true);
  assert.deepEqual(Array.from(y), [6, 60, 5, 50, 3, 30]);
  const vals = new Float32Array(6);
  const idx = new Int32Array(6);
  R.topk(Float32Array.of(1, 3, 2, 3, 0, -1, 5, NaN, 5, 4), 2, 5, 3, vals, idx);
  assert.deepEqual(Array.from(vals.subarray(0, 3)), [3, 3, 2]);
  assert.deepEqual(Array.from(idx), [1, 3, 2, 2, 1, 3]);
  assert.ok(Number.isNaN(vals[3]));
  assert.deepEqual(Array.from(vals.subarray(4)), [5, 5]);
});

test('reduce / softmax / scan validation errors', () => {
  throwsKernel(() => R.reduce('sum', new Float32Array(5), 2, 3, 1, new Float32Array(2)), 'reduce', /x \[2, 3, 1\] has length 5, expected 6/);
  throwsKernel(() => R.reduce('sum', new Float32Array(6), 2, 3, 1, new Float32Array(3)), 'reduce', /out \[2, 1\]/);
  throwsKernel(() => R.reduce('max', new Float32Array(0), 2, 0, 1, new Float32Array(2)), 'reduce', /empty/);
  throwsKernel(() => R.argReduce('argmax', new Float32Array(0), 1, 0, 1, new Int32Array(1)), 'argReduce', /empty/);
  throwsKernel(() => R.softmax(new Float32Array(6), new Float32Array(5), 2, 3, false), 'softmax', /y \[2, 3\] has length 5/);
  throwsKernel(() => R.softmaxBackward(new Float32Array(6), new Float32Array(6), new Float32Array(5), 2, 3, false), 'softmaxBackward', /gx/);
  throwsKernel(() => R.cumsum(new Float32Array(6), new Float32Array(6), 1, 3, 1, false), 'cumsum', /x \[1, 3, 1\] has length 6/);
  throwsKernel(() => R.topk(new Float32Array(6), 2, 3, 4, new Float32Array(8), new Int32Array(8)), 'topk', /k = 4 exceeds n = 3/);
  throwsKernel(() => R.topk(new Float32Array(6), 2, 3, 2, new Float32Array(4), new Int32Array(3)), 'topk', /indices \[2, 2\]/);
});
