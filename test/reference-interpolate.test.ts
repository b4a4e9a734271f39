import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import type { InterpGeom, InterpMode } from '../src/engine/backend.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

function g(NC: number, H: number, W: number, Ho: number, Wo: number, mode: InterpMode, alignCorners = false, scaleH = 0, scaleW = 0): InterpGeom {
  return { NC, H, W, Ho, Wo, mode, alignCorners, scaleH, scaleW };
}

function resize(x: ArrayLike<number>, geo: InterpGeom): number[] {
  const y = new Float32Array(geo.NC * geo.Ho * geo.Wo);
  R.interpolate(Float32Array.from(x), y, geo);
  return Array.from(y);
}

/** Keys cubic kernel with A = -0.75 in its plain piecewise form. */
function keys(s: number): number {
  const A = -0.75;
  const t = Math.abs(s);
  if (t <= 1) return (A + 2) * t ** 3 - (A + 3) * t ** 2 + 1;
  if (t < 2) return A * t ** 3 - 5 * A * t ** 2 + 8 * A * t - 4 * A;
  return 0;
}

/** 1-D bicubic of the signal [0, 1] (border-clamped) at source coordinate src. */
function cubicOf01(src: number): number {
  const f = Math.floor(src);
  let v = 0;
  for (let tap = f - 1; tap <= f + 2; tap++) v += keys(src - tap) * (Math.min(Math.max(tap, 0), 1) === 1 ? 1 : 0);
  return v;
}

test('bilinear 2x2 -> 4x4 (both align_corners) reproduces the linear ramp', () => {
  // x = 1 + 2r + c on the 2x2 grid; bilinear resampling gives 1 + 2a_i + a_j with a the 1-D weights of pixel 1
  const x = [1, 2, 3, 4];
  const check = (a: number[], ac: boolean): void => {
    const expected: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expected.push(1 + 2 * a[i] + a[j]);
    assertClose(resize(x, g(1, 2, 2, 4, 4, 'bilinear', ac)), expected, `bilinear align_corners=${ac}`, 1e-7);
  };
  check([0, 0.25, 0.75, 1], false); // src = (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge)
  check([0, 1 / 3, 2 / 3, 1], true); // src = d / 3
});

test('bicubic 2x2 -> 4x4 matches the Keys kernel with clamped taps', () => {
  // hand-computed profile of [0, 1] at src = -0.25, 0.25, 0.75, 1.25 (A = -0.75): note the overshoot
  const hand = [-0.10546875, 0.2265625, 0.7734375, 1.10546875];
  assertClose([-0.25, 0.25, 0.75, 1.25].map(cubicOf01), hand, 'hand profile vs kernel', 1e-12, 0);
  const x = [1, 2, 3, 4];
  for (const [ac, srcs] of [[false, [-0.25, 0.25, 0.75, 1.25]], [true, [0, 1 / 3, 2 / 3, 1]]] as const) {
    const a = srcs.map(cubicOf01);
    const expected: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expected.push(1 + 2 * a[i] + a[j]);
    assertClose(resize(x, g(1, 2, 2, 4, 4, 'bicubic', ac)), expected, `bicubic align_corners=${ac}`, 1e-6);
  }
  // identity size is exact
  const r = rng(1);
  const z = rand(2 * 3 * 5, r);
  assertClose(resize(z, g(2, 3, 5, 3, 5, 'bicubic')), Array.from(z), 'bicubic identity', 0, 0);
  assertClose(resize(z, g(2, 3, 5, 3, 5, 'bilinear', true)), Array.from(z), 'bilinear identity', 0, 0);
});

test('nearest uses floor(dst * scale) in f32 as PyTorch, with scale overrides', () => {
  const ramp = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(resize(ramp(3), g(1, 1, 3, 1, 5, 'nearest')), [0, 0, 1, 1, 2]);
  assert.deepEqual(resize(ramp(2), g(1, 2, 1, 4, 1, 'nearest')), [0, 0, 1, 1]);
  // scale_factor 1.5 on 4 -> 6 (scaleW = 1/1.5)
  assert.deepEqual(resize(ramp(4), g(1, 1, 4, 1, 6, 'nearest', false, 0, 1 / 1.5)), [0, 0, 1, 2, 2, 3]);
  // 26 -> 22: f32 scale 26/22 makes output 11 read source 12 (exact arithmetic would give 13)
  assert.equal(resize(ramp(26), g(1, 1, 26, 1, 22, 'nearest'))[11], 12);
  // downsampling clamps to size - 1
  assert.deepEqual(resize(ramp(5), g(1, 1, 5, 1, 2, 'nearest')), [0, 2]);
});

test('bilinear / bicubic honour scale overrides when align_corners is false', () => {
  // 4 -> 6 with scale_factor 1.6 (ratio 0.625) differs from the size ratio 4/6
  const x = [0, 1, 2, 3];
  const viaOverride = resize(x, g(1, 1, 4, 1, 6, 'bilinear', false, 0, 0.625));
  const expected = Array.from({ length: 6 }, (_, d) => Math.min(Math.max(0.625 * (d + 0.5) - 0.5, 0), 3));
  assertClose(viaOverride, expected, 'bilinear override on a ramp', 1e-7);
  // align_corners ignores the override
  assertClose(resize(x, g(1, 1, 4, 1, 6, 'bilinear', true, 0, 0.625)), [0, 0.6, 1.2, 1.8, 2.4, 3], 'align_corners', 1e-6);
});

test('interpolateBackward is the adjoint (FD) for every mode', () => {
  const r = rng(17);
  const cases: InterpGeom[] = [
    g(2, 3, 4, 5, 7, 'bilinear'), g(2, 3, 4, 5, 7, 'bilinear', true), g(1, 5, 6, 3, 4, 'bilinear'),
    g(2, 3, 4, 5, 7, 'bicubic'), g(1, 4, 3, 7, 2, 'bicubic', true), g(1, 6, 5, 4, 3, 'bicubic', false, 1 / 0.7, 1 / 0.7),
    g(2, 3, 4, 5, 7, 'nearest'), g(1, 5, 4, 3, 9, 'nearest'),
  ];
  for (const geo of cases) {
    const x = rand(geo.NC * geo.H * geo.W, r);
    const y = new Float32Array(geo.NC * geo.Ho * geo.Wo);
    const gy = rand(y.length, r);
    const loss = (): number => {
      R.interpolate(x, y, geo);
      return dot(y, gy);
    };
    const gx = new Float32Array(x.length).fill(2);
    R.interpolateBackward(gy, gx, geo);
    fdCheck(`interpolateBackward ${JSON.stringify(geo)}`, [x], [gx.map((v) => v - 2)], loss);
  }
});

test('interpolate validation errors', () => {
  throwsKernel(() => R.interpolate(new Float32Array(3), new Float32Array(16), g(1, 2, 2, 4, 4, 'bilinear')), 'interpolate', /x \[1, 2, 2\] has length 3/);
  throwsKernel(() => R.interpolate(new Float32Array(4), new Float32Array(15), g(1, 2, 2, 4, 4, 'bicubic')), 'interpolate', /y \[1, 4, 4\] has length 15/);
  throwsKernel(() => R.interpolate(new Float32Array(4), new Float32Array(16), g(1, 2, 2, 4, 4, 'nearest', true)), 'interpolate', /alignCorners/);
  throwsKernel(() => R.interpolate(new Float32Array(4), new Float32Array(0), g(1, 2, 2, 0, 4, 'nearest')), 'interpolate', /Ho must be a positive integer/);
  throwsKernel(() => R.interpolate(new Float32Array(4), new Float32Array(16), g(1, 2, 2, 4, 4, 'bilinear', false, -1, 0)), 'interpolate', /scaleH/);
  throwsKernel(() => R.interpolate(new Float32Array(4), new Float32Array(16), g(1, 2, 2, 4, 4, 'area' as InterpMode)), 'interpolate', /unknown mode/);
  throwsKernel(() => R.interpolateBackward(new Float32Array(16), new Float32Array(5), g(1, 2, 2, 4, 4, 'bilinear')), 'interpolateBackward', /gx \[1, 2, 2\] has length 5/);
});
