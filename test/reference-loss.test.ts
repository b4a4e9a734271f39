import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

test('cross-entropy on a 2-class case, with smoothing and ignore index', () => {
  const logits = Float32Array.of(0, Math.log(3), 0, Math.log(3), 5, -5); // p = [1/4, 3/4] for rows 0-1
  const targets = Int32Array.of(1, 0, -100);
  const loss = new Float32Array(3), lse = new Float32Array(3);
  R.crossEntropy(logits, targets, loss, lse, 3, 2, -100, 0);
  assertClose(loss, [-Math.log(0.75), -Math.log(0.25), 0], 'nll', 1e-6);
  assertClose(lse.subarray(0, 2), [Math.log(4), Math.log(4)], 'lse', 1e-6);
  const s = 0.1;
  R.crossEntropy(logits, targets, loss, lse, 3, 2, -100, s);
  const smooth = 0.5 * (-Math.log(0.25) - Math.log(0.75)); // mean over V of -logp
  assertClose(loss, [(1 - s) * -Math.log(0.75) + s * smooth, (1 - s) * -Math.log(0.25) + s * smooth, 0], 'smoothed', 1e-6);
  const gl = new Float32Array(6).fill(9);
  R.crossEntropyBackward(logits, targets, lse, Float32Array.of(2, 1, 1), gl, 3, 2, -100, s);
  // p - (1-s) onehot - s/V, times gLoss
  assertClose(gl, [2 * (0.25 - 0.05), 2 * (0.75 - 0.9 - 0.05), 0.25 - 0.9 - 0.05, 0.75 - 0.05, 0, 0], 'grad', 1e-6);
  // an in-range ignoreIndex ignores that class as a target
  R.crossEntropy(logits, Int32Array.of(1, 1, 0), loss, lse, 3, 2, 1, 0);
  assertClose(loss, [0, 0, Math.log1p(Math.exp(-10))], 'in-range ignoreIndex', 1e-6);
  // large logits stay finite
  R.crossEntropy(Float32Array.of(1000, 0), Int32Array.of(1), loss.subarray(0, 1), lse.subarray(0, 1), 1, 2, -100, 0);
  assertClose(loss.subarray(0, 1), [1000], 'stable', 1e-7);
});

test('crossEntropyBackward matches finite differences', () => {
  const r = rng(5);
  const rows = 4, V = 6;
  for (const s of [0, 0.2]) {
    const logits = rand(rows * V, r, 3);
    const targets = Int32Array.of(2, -1, 5, 0);
    const gLoss = rand(rows, r, 1, 1.5);
    const loss = new Float32Array(rows), lse = new Float32Array(rows);
    const f = (): number => {
      R.crossEntropy(logits, targets, loss, lse, rows, V, -1, s);
      return dot(loss, gLoss);
    };
    f();
    const gl = new Float32Array(rows * V);
    R.crossEntropyBackward(logits, targets, lse, gLoss, gl, rows, V, -1, s);
    fdCheck(`crossEntropyBackward s=${s}`, [logits], [gl], f);
  }
});

test('cross-entropy validation errors', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  throwsKernel(() => R.crossEntropy(f(6), Int32Array.of(0, 3), f(2), f(2), 2, 3, -100, 0), 'crossEntropy', /targets\[1\] = 3 outside \[0, 3\)/);
  throwsKernel(() => R.crossEntropy(f(6), Int32Array.of(0, -2), f(2), f(2), 2, 3, -100, 0), 'crossEntropy', /targets\[1\] = -2/);
  throwsKernel(() => R.crossEntropy(f(5), Int32Array.of(0, 0), f(2), f(2), 2, 3, -100, 0), 'crossEntropy', /logits \[2, 3\] has length 5/);
  throwsKernel(() => R.crossEntropy(f(6), Int32Array.of(0, 0), f(2), f(2), 2, 3, -100, 1.5), 'crossEntropy', /smoothing/);
  throwsKernel(() => R.crossEntropyBackward(f(6), Int32Array.of(0, 0), f(2), f(1), f(6), 2, 3, -100, 0), 'crossEntropyBackward', /gLoss \[2\] has length 1/);
  assert.ok(true);
});
