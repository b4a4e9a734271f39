// Shared helpers for the reference-backend tests: seeded inputs, closeness, finite differences.

import assert from 'node:assert/strict';

/** Deterministic uniform generator on [-1, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
}

export function rand(n: number, r: () => number, scale = 1, shift = 0): Float32Array {
  return Float32Array.from({ length: n }, () => r() * scale + shift);
}

/** |a - e| <= atol + rtol * |e| elementwise. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, msg: string, rtol = 1e-6, atol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${msg}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const ok = Math.abs(a - e) <= atol + rtol * Math.abs(e);
    if (!ok) assert.fail(`${msg}: [${i}] got ${a}, expected ${e}`);
  }
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * Central differences of the scalar `loss()` with respect to every element of each input
 * (perturbed in place and restored), compared with `analytic`. The actual f32 step is used.
 */
export function fdCheck(name: string, inputs: Float32Array[], analytic: ArrayLike<number>[], loss: () => number, eps = 1e-3, rtol = 1e-2, atol = 1e-3): void {
  for (let t = 0; t < inputs.length; t++) {
    const x = inputs[t];
    for (let i = 0; i < x.length; i++) {
      const x0 = x[i];
      x[i] = x0 + eps;
      const xp = x[i];
      const lp = loss();
      x[i] = x0 - eps;
      const xm = x[i];
      const lm = loss();
      x[i] = x0;
      const num = (lp - lm) / (xp - xm);
      const ana = analytic[t][i];
      if (!(Math.abs(num - ana) <= atol + rtol * Math.max(Math.abs(num), Math.abs(ana)))) {
        assert.fail(`${name}: input ${t} [${i}] finite difference ${num} vs analytic ${ana}`);
      }
    }
  }
}

/** assert.throws with the message starting "<kernel>: ". */
export function throwsKernel(fn: () => void, kernel: string, detail?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, 'not an Error');
    assert.ok(e.message.startsWith(`${kernel}: `), `message "${e.message}" does not start with "${kernel}: "`);
    if (detail) assert.match(e.message, detail);
    return true;
  });
}
