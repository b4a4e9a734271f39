// GEMM entry of the native backend: validates GemmArgs in TS (messages name the operand and its
// shape), then calls the addon, which validates again before touching memory.

import { availableParallelism } from 'node:os';
import type { GemmArgs } from '../../engine/backend.ts';
import type { NativeCoreAddon } from './addon.ts';

function fail(msg: string): never {
  throw new Error(`gemm: ${msg}`);
}

function checkSize(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) fail(`${name} must be a non-negative integer (got ${v})`);
}

/** Stored [rows, cols] matrix at off + b*stride (row stride ld) for b < batch must lie inside buf. */
function checkOperand(name: string, buf: Float32Array, off: number, ld: number, stride: number, rows: number, cols: number, batch: number): void {
  const lo = name.toLowerCase();
  if (!(buf instanceof Float32Array)) fail(`${lo} must be a Float32Array`);
  checkSize(`${lo}Off`, off);
  checkSize(`ld${lo}`, ld);
  checkSize(`stride${name}`, stride);
  if (batch === 0 || rows === 0 || cols === 0) return;
  if (ld < cols) fail(`ld${lo} = ${ld} is smaller than the ${cols} columns of stored ${name} [${rows}, ${cols}]`);
  const last = off + (batch - 1) * stride + (rows - 1) * ld + cols - 1;
  if (!Number.isSafeInteger(last) || last >= buf.length) {
    fail(`${name} [${batch} x ${rows}, ${cols}] at offset ${off} (ld ${ld}, batch stride ${stride}) needs index ${last} but has length ${buf.length}`);
  }
}

export function validateGemm(g: GemmArgs): void {
  checkSize('m', g.m);
  checkSize('n', g.n);
  checkSize('k', g.k);
  checkSize('batch', g.batch);
  if (typeof g.alpha !== 'number' || typeof g.beta !== 'number') fail('alpha and beta must be numbers');
  checkOperand('A', g.a, g.aOff, g.lda, g.strideA, g.transA ? g.k : g.m, g.transA ? g.m : g.k, g.batch);
  checkOperand('B', g.b, g.bOff, g.ldb, g.strideB, g.transB ? g.n : g.k, g.transB ? g.k : g.n, g.batch);
  checkOperand('C', g.c, g.cOff, g.ldc, g.strideC, g.m, g.n, g.batch);
  if (g.strideC === 0 && g.batch > 1 && g.m * g.n > 0) fail(`strideC = 0 with batch ${g.batch} would write every batch into the same C`);
}

/** Backend.gemm on top of the addon. */
export function nativeGemm(addon: NativeCoreAddon): (args: GemmArgs) => void {
  return (g: GemmArgs): void => {
    validateGemm(g);
    addon.gemm(
      g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.beta,
      g.a, g.aOff, g.lda, g.strideA,
      g.b, g.bOff, g.ldb, g.strideB,
      g.c, g.cOff, g.ldc, g.strideC,
      g.batch,
    );
  };
}

/** Sets the addon's thread count (an integer in [1, 256]). */
export function setNativeThreads(addon: NativeCoreAddon, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`setThreads: n must be an integer in [1, 256] (got ${n})`);
  addon.setThreads(n);
}

/** Threads to use by default: the machine's cores, at most `cap`. */
export function defaultThreads(cap = 8): number {
  return Math.max(1, Math.min(cap, availableParallelism()));
}
