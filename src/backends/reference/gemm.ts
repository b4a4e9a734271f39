// Batched GEMM: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], f64 dot products.

import type { GemmArgs } from '../../engine/backend.ts';
import { checkDim, fail } from './util.ts';

/** Checks a row-major [rows, cols] matrix per batch at off + b*stride with row stride ld. */
function checkMatrix(name: string, buf: Float32Array, off: number, ld: number, stride: number, rows: number, cols: number, batch: number): void {
  const K = 'gemm';
  const lo = name.toLowerCase();
  checkDim(K, `${lo}Off`, off);
  checkDim(K, `ld${lo}`, ld);
  checkDim(K, `stride${name}`, stride);
  if (batch === 0 || rows === 0 || cols === 0) return;
  if (ld < cols) fail(K, `ld${lo} = ${ld} is smaller than the ${cols} columns of stored ${name} [${rows}, ${cols}]`);
  const last = off + (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  if (last >= buf.length) {
    fail(K, `${name} [${batch} x ${rows}, ${cols}] at offset ${off} (ld ${ld}, batch stride ${stride}) needs index ${last} but has length ${buf.length}`);
  }
}

export function gemm(args: GemmArgs): void {
  const K = 'gemm';
  const { transA, transB, m, n, k, alpha, beta, a, aOff, lda, strideA, b, bOff, ldb, strideB, c, cOff, ldc, strideC, batch } = args;
  checkDim(K, 'm', m);
  checkDim(K, 'n', n);
  checkDim(K, 'k', k);
  checkDim(K, 'batch', batch);
  checkMatrix('A', a, aOff, lda, strideA, transA ? k : m, transA ? m : k, batch);
  checkMatrix('B', b, bOff, ldb, strideB, transB ? n : k, transB ? k : n, batch);
  checkMatrix('C', c, cOff, ldc, strideC, m, n, batch);
  if (strideC === 0 && batch > 1 && m * n > 0) fail(K, `strideC = 0 with batch ${batch} would write every batch into the same C`);
  // element (i, p) of op(A) and (p, j) of op(B)
  const aRow = transA ? 1 : lda;
  const aCol = transA ? lda : 1;
  const bRow = transB ? 1 : ldb;
  const bCol = transB ? ldb : 1;
  for (let bi = 0; bi < batch; bi++) {
    const a0 = aOff + bi * strideA;
    const b0 = bOff + bi * strideB;
    const c0 = cOff + bi * strideC;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[a0 + i * aRow + p * aCol] * b[b0 + p * bRow + j * bCol];
        const ci = c0 + i * ldc + j;
        c[ci] = beta === 0 ? alpha * s : alpha * s + beta * c[ci];
      }
    }
  }
}
