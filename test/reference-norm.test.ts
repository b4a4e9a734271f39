import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

test('layerNorm / rmsNorm known values', () => {
  const y = new Float32Array(3), mean = new Float32Array(1), rstd = new Float32Array(1);
  R.layerNorm(Float32Array.of(1, 2, 3), null, null, y, mean, rstd, 1, 3, 0);
  const s = Math.sqrt(1.5); // biased variance 2/3
  assertClose(y, [-s, 0, s], 'layerNorm y', 1e-7);
  assertClose(mean, [2], 'mean', 0);
  assertClose(rstd, [s], 'rstd', 1e-7);
  R.layerNorm(Float32Array.of(1, 2, 3), Float32Array.of(2, 2, 2), Float32Array.of(1, 0, -1), y, mean, rstd, 1, 3, 0);
  assertClose(y, [1 - 2 * s, 0, 2 * s - 1], 'layerNorm affine', 1e-7);
  const y2 = new Float32Array(2), r2 = new Float32Array(1);
  R.rmsNorm(Float32Array.of(3, 4), Float32Array.of(1, 0.5), y2, r2, 1, 2, 0);
  const rs = 1 / Math.sqrt(12.5);
  assertClose(y2, [3 * rs, 2 * rs], 'rmsNorm y', 1e-7);
  assertClose(r2, [rs], 'rmsNorm rstd', 1e-7);
  R.rmsNorm(Float32Array.of(0, 0), null, y2, r2, 1, 2, 1e-6);
  assertClose(r2, [1000], 'rmsNorm eps', 1e-6);
});

test('layerNormBackward / rmsNormBackward match finite differences, gw/gb accumulate', () => {
  const r = rng(21);
  const rows = 3, n = 6;
  for (const affine of [true, false]) {
    const x = rand(rows * n, r, 2, 0.5);
    const w = rand(n, r, 1, 0.2);
    const b = rand(n, r);
    const gy = rand(rows * n, r);
    const y = new Float32Array(rows * n), mean = new Float32Array(rows), rstd = new Float32Array(rows);
    const lnLoss = (): number => {
      R.layerNorm(x, affine ? w : null, affine ? b : null, y, mean, rstd, rows, n, 1e-5);
      return dot(y, gy);
    };
    lnLoss();
    const gx = new Float32Array(rows * n);
    const gw = new Float32Array(n).fill(1), gb = new Float32Array(n).fill(1); // accumulates onto 1
    R.layerNormBackward(x, affine ? w : null, mean, rstd, gy, gx, affine ? gw : null, affine ? gb : null, rows, n);
    if (affine) {
      fdCheck('layerNormBackward', [x, w, b], [gx, gw.map((v) => v - 1), gb.map((v) => v - 1)], lnLoss);
    } else {
      fdCheck('layerNormBackward (no affine)', [x], [gx], lnLoss);
    }

    const r2 = new Float32Array(rows);
    const rmsLoss = (): number => {
      R.rmsNorm(x, affine ? w : null, y, r2, rows, n, 1e-6);
      return dot(y, gy);
    };
    rmsLoss();
    const gx2 = new Float32Array(rows * n), gw2 = new Float32Array(n);
    R.rmsNormBackward(x, affine ? w : null, r2, gy, gx2, affine ? gw2 : null, rows, n);
    if (affine) fdCheck('rmsNormBackward', [x, w], [gx2, gw2], rmsLoss);
    else fdCheck('rmsNormBackward (no weight)', [x], [gx2], rmsLoss);
  }
});

/** HF apply_rotary_pos_emb for one row: x*cat(cos,cos) + rotate_half(x)*cat(sin,sin) on the first rot channels. */
function hfRope(x: number[], cos: number[], sin: number[], rot: number): number[] {
  const h = rot / 2;
  const out = x.slice();
  for (let i = 0; i < rot; i++) {
    const rotated = i < h ? -x[i + h] : x[i - h];
    out[i] = x[i] * cos[i % h] + rotated * sin[i % h];
  }
  return out;
}

/** Interleaved rope as complex multiplication (x[2i] + i x[2i+1]) * (cos + i sin). */
function complexRope(x: number[], cos: number[], sin: number[], rot: number): number[] {
  const out = x.slice();
  for (let i = 0; i < rot / 2; i++) {
    out[2 * i] = x[2 * i] * cos[i] - x[2 * i + 1] * sin[i];
    out[2 * i + 1] = x[2 * i] * sin[i] + x[2 * i + 1] * cos[i];
  }
  return out;
}

test('rope matches the HF rotate_half and complex-multiply definitions; inverse undoes it', () => {
  const r = rng(33);
  const N = 2, T = 3, D = 6, rot = 4;
  const x = rand(N * T * D, r);
  const cos = new Float32Array(T * 2), sin = new Float32Array(T * 2);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < 2; i++) {
      const ang = t * 10000 ** (-i / 2);
      cos[t * 2 + i] = Math.cos(ang);
      sin[t * 2 + i] = Math.sin(ang);
    }
  }
  for (const interleaved of [false, true]) {
    const y = new Float32Array(x.length);
    R.rope(x, y, cos, sin, N, T, D, rot, interleaved, false);
    const expected: number[] = [];
    for (let row = 0; row < N * T; row++) {
      const t = row % T;
      const xr = Array.from(x.subarray(row * D, row * D + D));
      const c = Array.from(cos.subarray(t * 2, t * 2 + 2)), s = Array.from(sin.subarray(t * 2, t * 2 + 2));
      expected.push(...(interleaved ? complexRope(xr, c, s, rot) : hfRope(xr, c, s, rot)));
    }
    assertClose(y, expected, `rope interleaved=${interleaved}`, 1e-6, 1e-7);
    // inverse (in place, y aliases x) restores x
    R.rope(y, y, cos, sin, N, T, D, rot, interleaved, true);
    assertClose(y, x, `rope inverse interleaved=${interleaved}`, 1e-6, 1e-6);
    // the inverse is the backward: d/dx sum(rope(x) * g) = rope_inverse(g)
    const g = rand(x.length, r);
    const out = new Float32Array(x.length);
    const loss = (): number => {
      R.rope(x, out, cos, sin, N, T, D, rot, interleaved, false);
      return dot(out, g);
    };
    const gx = new Float32Array(x.length);
    R.rope(g, gx, cos, sin, N, T, D, rot, interleaved, true);
    fdCheck(`rope backward interleaved=${interleaved}`, [x], [gx], loss);
  }
});

test('norm / rope validation errors', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  throwsKernel(() => R.layerNorm(f(6), null, null, f(6), f(2), f(1), 2, 3, 1e-5), 'layerNorm', /rstd \[2\] has length 1/);
  throwsKernel(() => R.layerNorm(f(6), f(2), null, f(6), f(2), f(2), 2, 3, 1e-5), 'layerNorm', /w \[3\] has length 2/);
  throwsKernel(() => R.layerNorm(f(0), null, null, f(0), f(2), f(2), 2, 0, 1e-5), 'layerNorm', /n must be >= 1/);
  throwsKernel(() => R.layerNormBackward(f(6), null, f(2), f(2), f(6), f(5), null, null, 2, 3), 'layerNormBackward', /gx \[2, 3\]/);
  throwsKernel(() => R.rmsNorm(f(5), null, f(6), f(2), 2, 3, 1e-5), 'rmsNorm', /x \[2, 3\] has length 5/);
  throwsKernel(() => R.rmsNormBackward(f(6), null, f(2), f(6), f(6), f(2), 2, 3), 'rmsNormBackward', /gw \[3\]/);
  throwsKernel(() => R.rope(f(12), f(12), f(2), f(2), 1, 2, 6, 3, false, false), 'rope', /rot must be even/);
  throwsKernel(() => R.rope(f(12), f(12), f(2), f(2), 1, 2, 6, 8, false, false), 'rope', /rot must be even and <= D/);
  throwsKernel(() => R.rope(f(12), f(12), f(3), f(4), 1, 2, 6, 4, false, false), 'rope', /cos \[2, 2\] has length 3/);
  assert.ok(true);
});
