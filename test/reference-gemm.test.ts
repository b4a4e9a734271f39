import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import type { GemmArgs } from '../src/engine/backend.ts';
import { assertClose, rand, rng, throwsKernel } from './reference-helpers.ts';

function args(over: Partial<GemmArgs>): GemmArgs {
  return {
    transA: false, transB: false, m: 0, n: 0, k: 0, alpha: 1, beta: 0,
    a: new Float32Array(0), aOff: 0, lda: 0, strideA: 0,
    b: new Float32Array(0), bOff: 0, ldb: 0, strideB: 0,
    c: new Float32Array(0), cOff: 0, ldc: 0, strideC: 0, batch: 1, ...over,
  };
}

test('gemm 2x2 known values', () => {
  const c = new Float32Array(4);
  R.gemm(args({ m: 2, n: 2, k: 2, a: Float32Array.of(1, 2, 3, 4), lda: 2, b: Float32Array.of(5, 6, 7, 8), ldb: 2, c, ldc: 2 }));
  assert.deepEqual(Array.from(c), [19, 22, 43, 50]);
  // transA: A stored [K, M] = [[1, 3], [2, 4]] is the same op(A)
  R.gemm(args({ transA: true, m: 2, n: 2, k: 2, a: Float32Array.of(1, 3, 2, 4), lda: 2, b: Float32Array.of(5, 6, 7, 8), ldb: 2, c, ldc: 2 }));
  assert.deepEqual(Array.from(c), [19, 22, 43, 50]);
  // transB: B stored [N, K] = [[5, 7], [6, 8]]; alpha 2, beta 1 accumulates
  R.gemm(args({ transB: true, m: 2, n: 2, k: 2, alpha: 2, beta: 1, a: Float32Array.of(1, 2, 3, 4), lda: 2, b: Float32Array.of(5, 7, 6, 8), ldb: 2, c, ldc: 2 }));
  assert.deepEqual(Array.from(c), [57, 66, 129, 150]);
  // beta 0 ignores NaN in C
  c.fill(NaN);
  R.gemm(args({ m: 2, n: 2, k: 2, a: Float32Array.of(1, 2, 3, 4), lda: 2, b: Float32Array.of(5, 6, 7, 8), ldb: 2, c, ldc: 2 }));
  assert.deepEqual(Array.from(c), [19, 22, 43, 50]);
  // k = 0: C = beta * C
  c.fill(3);
  R.gemm(args({ m: 2, n: 2, k: 0, beta: 0.5, c, ldc: 2 }));
  assert.deepEqual(Array.from(c), [1.5, 1.5, 1.5, 1.5]);
});

test('gemm all transpose combinations, padded leading dims, offsets and batch strides', () => {
  const r = rng(3);
  const M = 5, N = 4, K = 6, batch = 3;
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      // logical op(A)[b] [M, K], op(B)[b] [K, N]
      const opA = Array.from({ length: batch }, () => Array.from({ length: M }, () => Array.from({ length: K }, r)));
      const opB = Array.from({ length: batch }, () => Array.from({ length: K }, () => Array.from({ length: N }, r)));
      const lda = (transA ? M : K) + 2;
      const ldb = (transB ? K : N) + 1;
      const ldc = N + 3;
      const aRows = transA ? K : M, bRows = transB ? N : K;
      const strideA = aRows * lda + 1, strideB = bRows * ldb, strideC = M * ldc + 2;
      const aOff = 3, bOff = 1, cOff = 2;
      const a = new Float32Array(aOff + batch * strideA);
      const b = new Float32Array(bOff + batch * strideB);
      const c = rand(cOff + batch * strideC, r);
      const c0 = c.slice();
      for (let q = 0; q < batch; q++) {
        for (let i = 0; i < M; i++) for (let p = 0; p < K; p++) a[aOff + q * strideA + (transA ? p * lda + i : i * lda + p)] = opA[q][i][p];
        for (let p = 0; p < K; p++) for (let j = 0; j < N; j++) b[bOff + q * strideB + (transB ? j * ldb + p : p * ldb + j)] = opB[q][p][j];
      }
      const alpha = 0.7, beta = -1.3;
      R.gemm({ transA, transB, m: M, n: N, k: K, alpha, beta, a, aOff, lda, strideA, b, bOff, ldb, strideB, c, cOff, ldc, strideC, batch });
      const expected = c0.slice();
      for (let q = 0; q < batch; q++) {
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let p = 0; p < K; p++) s += Math.fround(opA[q][i][p]) * Math.fround(opB[q][p][j]);
            const ci = cOff + q * strideC + i * ldc + j;
            expected[ci] = alpha * s + beta * c0[ci];
          }
        }
      }
      // padding between rows / batches is untouched
      assertClose(c, expected, `gemm transA=${transA} transB=${transB}`, 1e-6, 1e-6);
    }
  }
});

test('gemm broadcast A (strideA 0) and 64^3 timing', () => {
  const r = rng(5);
  const a = rand(4, r);
  const b = rand(2 * 4, r);
  const c = new Float32Array(2 * 2 * 2);
  R.gemm(args({ m: 2, n: 2, k: 2, a, lda: 2, strideA: 0, b, ldb: 2, strideB: 4, c, ldc: 2, strideC: 4, batch: 2 }));
  const c1 = new Float32Array(4);
  R.gemm(args({ m: 2, n: 2, k: 2, a, lda: 2, b: b.subarray(4), ldb: 2, c: c1, ldc: 2 }));
  assert.deepEqual(Array.from(c.subarray(4)), Array.from(c1));
  const n = 64;
  const big = rand(n * n, r);
  const out = new Float32Array(n * n);
  const t0 = performance.now();
  R.gemm(args({ m: n, n, k: n, a: big, lda: n, b: big, ldb: n, c: out, ldc: n }));
  assert.ok(performance.now() - t0 < 2000, '64^3 gemm is not pathologically slow');
});

test('gemm validation errors', () => {
  const a = new Float32Array(6);
  throwsKernel(() => R.gemm(args({ m: 2, n: 2, k: 3, a, lda: 3, b: new Float32Array(5), ldb: 2, c: new Float32Array(4), ldc: 2 })), 'gemm', /B \[1 x 3, 2\].*length 5/);
  throwsKernel(() => R.gemm(args({ m: 2, n: 2, k: 3, a, lda: 2, b: new Float32Array(6), ldb: 2, c: new Float32Array(4), ldc: 2 })), 'gemm', /lda = 2 is smaller than the 3 columns/);
  throwsKernel(() => R.gemm(args({ m: 2, n: 2, k: 3, a, lda: 3, aOff: 1, b: new Float32Array(6), ldb: 2, c: new Float32Array(4), ldc: 2 })), 'gemm', /A \[1 x 2, 3\] at offset 1/);
  throwsKernel(() => R.gemm(args({ m: 2, n: 2, k: 3, a, lda: 3, b: new Float32Array(6), ldb: 2, c: new Float32Array(4), ldc: 2, batch: 2, strideA: 6 })), 'gemm', /A \[2 x 2, 3\]/);
  throwsKernel(() => R.gemm(args({ m: 2, n: 2, k: 3, a, lda: 3, b: new Float32Array(6), ldb: 2, c: new Float32Array(8), ldc: 2, batch: 2 })), 'gemm', /strideC = 0/);
  throwsKernel(() => R.gemm(args({ m: -1 })), 'gemm', /m must be a non-negative integer/);
  throwsKernel(() => R.gemm(args({ m: 1, n: 1, k: 1, a, lda: 1, b: a, ldb: 1, c: new Float32Array(1), ldc: 1, batch: 1.5 })), 'gemm', /batch/);
});
