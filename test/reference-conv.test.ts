import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import type { Conv2dGeom, Pool2dGeom } from '../src/engine/backend.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

function geom(C: number, H: number, W: number, kh: number, kw: number, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1): Conv2dGeom {
  const Ho = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  return { C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo };
}

function pgeom(NC: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, countIncludePad = true): Pool2dGeom {
  return { NC, H, W, kh, kw, sh, sw, ph, pw, Ho: Math.floor((H + 2 * ph - kh) / sh) + 1, Wo: Math.floor((W + 2 * pw - kw) / sw) + 1, countIncludePad };
}

/** Direct convolution y [Cout, Ho, Wo] of one image, written from the definition. */
function directConv(x: Float32Array, w: Float32Array, Cout: number, g: Conv2dGeom): number[] {
  const y: number[] = [];
  for (let o = 0; o < Cout; o++) {
    for (let oh = 0; oh < g.Ho; oh++) {
      for (let ow = 0; ow < g.Wo; ow++) {
        let s = 0;
        for (let c = 0; c < g.C; c++) {
          for (let i = 0; i < g.kh; i++) {
            for (let j = 0; j < g.kw; j++) {
              const ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
              if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) s += w[((o * g.C + c) * g.kh + i) * g.kw + j] * x[(c * g.H + ih) * g.W + iw];
            }
          }
        }
        y.push(s);
      }
    }
  }
  return y;
}

test('im2col known layout', () => {
  const x = Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9); // image 1..9 at offset 1
  const g = geom(1, 3, 3, 2, 2);
  const cols = new Float32Array(16);
  R.im2col(x, 1, g, cols);
  assert.deepEqual(Array.from(cols), [1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
  // 1x1 kernel, stride 2, padding 1: reads rows/cols -1, 1, 3 -> only the centre is inside
  const g2 = geom(1, 3, 3, 1, 1, 2, 2, 1, 1);
  assert.deepEqual([g2.Ho, g2.Wo], [3, 3]);
  const c2 = new Float32Array(9);
  R.im2col(x, 1, g2, c2);
  assert.deepEqual(Array.from(c2), [0, 0, 0, 0, 5, 0, 0, 0, 0]);
});

test('im2col + gemm equals direct convolution; col2im is the adjoint of im2col', () => {
  const r = rng(2);
  for (const g of [geom(3, 6, 5, 3, 2, 2, 1, 1, 1, 1, 2), geom(2, 5, 7, 3, 3, 1, 2, 2, 0, 2, 1), geom(1, 4, 4, 4, 4)]) {
    const Cout = 4, P = g.Ho * g.Wo, CK = g.C * g.kh * g.kw;
    const x = rand(g.C * g.H * g.W, r);
    const w = rand(Cout * CK, r);
    const cols = new Float32Array(CK * P);
    R.im2col(x, 0, g, cols);
    const y = new Float32Array(Cout * P);
    R.gemm({ transA: false, transB: false, m: Cout, n: P, k: CK, alpha: 1, beta: 0, a: w, aOff: 0, lda: CK, strideA: 0, b: cols, bOff: 0, ldb: P, strideB: 0, c: y, cOff: 0, ldc: P, strideC: 0, batch: 1 });
    assertClose(y, directConv(x, w, Cout, g), `conv ${JSON.stringify(g)}`, 1e-5, 1e-6);
    // <im2col(x), c> = <x, col2im(c)>, and col2im accumulates onto gx at its offset
    const c = rand(CK * P, r);
    const gx = new Float32Array(2 + x.length).fill(1);
    R.col2im(c, g, gx, 2);
    assert.deepEqual([gx[0], gx[1]], [1, 1]);
    const adj = dot(x, gx.subarray(2)) - dot(x, new Float32Array(x.length).fill(1));
    assert.ok(Math.abs(dot(cols, c) - adj) < 1e-4, `adjoint ${dot(cols, c)} vs ${adj}`);
  }
});

test('depthwise conv known values and finite-difference backward', () => {
  const g = geom(1, 3, 3, 3, 3, 1, 1, 1, 1);
  const y = new Float32Array(9);
  R.depthwiseConv2d(Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9), new Float32Array(9).fill(1), Float32Array.of(0.5), y, 1, g);
  assert.deepEqual(Array.from(y), [12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5]);

  const r = rng(8);
  for (const gg of [geom(3, 5, 6, 3, 2, 2, 1, 1, 1, 1, 2), geom(2, 4, 4, 2, 2, 1, 1, 0, 0)]) {
    const N = 2;
    const x = rand(N * gg.C * gg.H * gg.W, r), w = rand(gg.C * gg.kh * gg.kw, r), b = rand(gg.C, r);
    const out = new Float32Array(N * gg.C * gg.Ho * gg.Wo);
    const gy = rand(out.length, r);
    const loss = (): number => {
      R.depthwiseConv2d(x, w, b, out, N, gg);
      return dot(out, gy);
    };
    loss();
    const gx = new Float32Array(x.length).fill(7); // overwritten
    const gw = new Float32Array(w.length).fill(1); // accumulated
    R.depthwiseConv2dBackward(x, w, gy, gx, gw, N, gg);
    // bias gradient is sum(gy) per channel (checked by FD through the loss)
    const gb = new Float32Array(gg.C);
    for (let n = 0; n < N; n++) for (let c = 0; c < gg.C; c++) for (let p = 0; p < gg.Ho * gg.Wo; p++) gb[c] += gy[(n * gg.C + c) * gg.Ho * gg.Wo + p];
    fdCheck('depthwiseConv2dBackward', [x, w, b], [gx, gw.map((v) => v - 1), gb], loss);
  }
});

test('pool2d known values (max, avg with and without countIncludePad)', () => {
  const x = Float32Array.from({ length: 16 }, (_, i) => i + 1);
  const g = pgeom(1, 4, 4, 2, 2, 2, 2, 0, 0);
  const y = new Float32Array(4), am = new Int32Array(4);
  R.pool2d('max', x, y, am, g);
  assert.deepEqual(Array.from(y), [6, 8, 14, 16]);
  assert.deepEqual(Array.from(am), [5, 7, 13, 15]);
  R.pool2d('avg', x, y, null, g);
  assert.deepEqual(Array.from(y), [3.5, 5.5, 11.5, 13.5]);
  // ones 3x3, kernel 3, stride 2, pad 1: each window covers 4 real pixels of 9
  const ones = new Float32Array(9).fill(1);
  const gi = pgeom(1, 3, 3, 3, 3, 2, 2, 1, 1, true);
  R.pool2d('avg', ones, y, null, gi);
  assertClose(y, [4 / 9, 4 / 9, 4 / 9, 4 / 9], 'countIncludePad', 1e-7);
  R.pool2d('avg', ones, y, null, { ...gi, countIncludePad: false });
  assert.deepEqual(Array.from(y), [1, 1, 1, 1]);
  // max with padding never picks the padding; ties keep the first index; NaN wins
  R.pool2d('max', Float32Array.of(-5, -5, -5, -5, -5, -5, -5, -5, -5), y, am, gi);
  assert.deepEqual(Array.from(y), [-5, -5, -5, -5]);
  assert.deepEqual(Array.from(am), [0, 1, 3, 4]);
  const y1 = new Float32Array(1), am1 = new Int32Array(1);
  R.pool2d('max', Float32Array.of(1, NaN, 3, 2), y1, am1, pgeom(1, 2, 2, 2, 2, 1, 1, 0, 0));
  assert.ok(Number.isNaN(y1[0]));
  assert.equal(am1[0], 1);
});

test('pool2dBackward matches finite differences and accumulates', () => {
  const r = rng(12);
  for (const g of [pgeom(2, 5, 6, 3, 2, 2, 1, 1, 1, true), pgeom(2, 5, 6, 3, 2, 2, 1, 1, 1, false), pgeom(1, 7, 5, 4, 3, 3, 2, 2, 1, false)]) {
    for (const kind of ['max', 'avg'] as const) {
      // distinct values (a shuffled ramp) so max has no ties
      const n = g.NC * g.H * g.W;
      const x = Float32Array.from({ length: n }, (_, i) => ((i * 37) % n) * 0.1 + r() * 0.01);
      const y = new Float32Array(g.NC * g.Ho * g.Wo), am = new Int32Array(y.length);
      const gy = rand(y.length, r);
      const loss = (): number => {
        R.pool2d(kind, x, y, kind === 'max' ? am : null, g);
        return dot(y, gy);
      };
      loss();
      const gx = new Float32Array(n).fill(0.5);
      R.pool2dBackward(kind, gy, kind === 'max' ? am : null, gx, g);
      fdCheck(`pool2dBackward ${kind} ${JSON.stringify(g)}`, [x], [gx.map((v) => v - 0.5)], loss, 1e-3);
    }
  }
});

test('conv / pool validation errors', () => {
  const g = geom(1, 3, 3, 2, 2);
  throwsKernel(() => R.im2col(new Float32Array(9), 1, g, new Float32Array(16)), 'im2col', /x \[1, 3, 3\] at offset 1 needs 10 elements but has 9/);
  throwsKernel(() => R.im2col(new Float32Array(9), 0, g, new Float32Array(15)), 'im2col', /cols \[4, 4\] has length 15/);
  throwsKernel(() => R.im2col(new Float32Array(9), 0, { ...g, Ho: 3 }, new Float32Array(16)), 'im2col', /output 3x2 does not match the geometry, expected 2x2/);
  throwsKernel(() => R.im2col(new Float32Array(9), 0, geom(1, 3, 3, 5, 5), new Float32Array(0)), 'im2col', /does not fit/);
  throwsKernel(() => R.col2im(new Float32Array(16), { ...g, sh: 0 }, new Float32Array(9), 0), 'col2im', /sh must be a positive integer/);
  throwsKernel(() => R.depthwiseConv2d(new Float32Array(9), new Float32Array(3), null, new Float32Array(4), 1, g), 'depthwiseConv2d', /w \[1, 1, 2, 2\] has length 3/);
  throwsKernel(() => R.depthwiseConv2dBackward(new Float32Array(9), new Float32Array(4), new Float32Array(4), new Float32Array(9), new Float32Array(5), 1, g), 'depthwiseConv2dBackward', /gw/);
  const pg = pgeom(1, 4, 4, 2, 2, 2, 2, 0, 0);
  throwsKernel(() => R.pool2d('max', new Float32Array(15), new Float32Array(4), null, pg), 'pool2d', /x \[1, 4, 4\] has length 15/);
  throwsKernel(() => R.pool2d('avg', new Float32Array(16), new Float32Array(4), null, { ...pg, ph: 2, Ho: 4 }), 'pool2d', /padding 2x0 exceeds half the kernel/);
  throwsKernel(() => R.pool2dBackward('max', new Float32Array(4), null, new Float32Array(16), pg), 'pool2dBackward', /needs argmax/);
  throwsKernel(() => R.pool2dBackward('max', new Float32Array(4), Int32Array.of(0, 1, 2, 16), new Float32Array(16), pg), 'pool2dBackward', /argmax\[3\] = 16 outside \[0, 16\)/);
});
