import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { assertClose, throwsKernel } from './reference-helpers.ts';

test('adamw follows torch.optim.AdamW over two steps', () => {
  const lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
  const p = Float32Array.of(1, -2), m = new Float32Array(2), v = new Float32Array(2);
  const grads = [Float32Array.of(0.5, -1), Float32Array.of(-0.25, 3)];
  // expected, written out from the update rule
  let ep = [1, -2], em = [0, 0], ev = [0, 0];
  for (let step = 1; step <= 2; step++) {
    const g = grads[step - 1];
    const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
    R.adamw(p, g, m, v, lr, b1, b2, eps, wd, bc1, bc2);
    em = em.map((mi, i) => Math.fround(b1 * mi + (1 - b1) * g[i]));
    ev = ev.map((vi, i) => Math.fround(b2 * vi + (1 - b2) * g[i] * g[i]));
    ep = ep.map((pi, i) => pi * (1 - lr * wd) - (lr * (em[i] / bc1)) / (Math.sqrt(ev[i] / bc2) + eps));
    assertClose(m, em, `m step ${step}`, 1e-7);
    assertClose(v, ev, `v step ${step}`, 1e-7);
    assertClose(p, ep, `p step ${step}`, 1e-6);
  }
  // the first step moves each parameter by about lr (after decay)
  assertClose([1 * (1 - lr * wd) - 0.1], [Math.fround(0.899)], 'first step size', 1e-6);
});

test('sgd: plain, momentum, dampening, nesterov, weight decay', () => {
  const p = Float32Array.of(1);
  R.sgd(p, Float32Array.of(0.5), null, 0.1, 0, 0, 0.1, false, true);
  assertClose(p, [1 - 0.1 * 0.6], 'plain with wd', 1e-7);

  const q = Float32Array.of(1), buf = new Float32Array(1);
  R.sgd(q, Float32Array.of(0.5), buf, 0.1, 0.9, 0, 0.1, false, true);
  assertClose(buf, [0.6], 'first buf = g\'', 1e-7);
  assertClose(q, [0.94], 'momentum step 1', 1e-7);
  R.sgd(q, Float32Array.of(0.5), buf, 0.1, 0.9, 0, 0.1, false, false);
  assertClose(buf, [0.9 * 0.6 + 0.594], 'buf step 2', 1e-6);
  assertClose(q, [0.94 - 0.1 * (0.54 + 0.594)], 'momentum step 2', 1e-6);

  // dampening 0.5 (not applied on the first step), nesterov
  const s = Float32Array.of(2), b2 = new Float32Array(1);
  R.sgd(s, Float32Array.of(1), b2, 0.1, 0.5, 0.5, 0, true, true);
  assertClose(b2, [1], 'first buf ignores dampening', 0);
  assertClose(s, [2 - 0.1 * (1 + 0.5 * 1)], 'nesterov step 1', 1e-7);
  R.sgd(s, Float32Array.of(1), b2, 0.1, 0.5, 0.5, 0, true, false);
  assertClose(b2, [0.5 + 0.5], 'dampened buf', 1e-7);
  assertClose(s, [1.85 - 0.1 * (1 + 0.5 * 1)], 'nesterov step 2', 1e-6);
});

test('optimizer validation errors', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  throwsKernel(() => R.adamw(f(3), f(3), f(2), f(3), 0.1, 0.9, 0.999, 1e-8, 0, 0.1, 0.001), 'adamw', /m has length 2, expected 3/);
  throwsKernel(() => R.adamw(f(3), f(3), f(3), f(3), 0.1, 0.9, 0.999, 1e-8, 0, 0, 0.001), 'adamw', /bias corrections/);
  throwsKernel(() => R.sgd(f(3), f(3), null, 0.1, 0.9, 0, 0, false, true), 'sgd', /momentum buffer/);
  throwsKernel(() => R.sgd(f(3), f(2), null, 0.1, 0, 0, 0, false, true), 'sgd', /g has length 2/);
  assert.ok(true);
});
