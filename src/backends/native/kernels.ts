// Every Backend kernel except gemm on top of the addon (native/src/kernels_register.cc).
// TS does the cheap checks that need JS values (op names, stride counts) and writes scalars,
// shapes, strides and geometries into the addon's params block; the addon checks every value,
// length and index before touching memory and throws Error('<kernel>: ...') like the reference.

import type { AttentionArgs, Backend, BinaryOp, Conv2dGeom, InterpGeom, Pool2dGeom, ReduceOp, UnaryOp } from '../../engine/backend.ts';
import { BinaryOps, UnaryOps } from '../../engine/backend.ts';

type AnyTyped = Float32Array | Int32Array | Uint8Array;

/**
 * Raw kernel functions of the addon. Kernels documented with "params [...]" read those values
 * from `params` (fill it, then call; calls are synchronous): scalars and shapes cost no N-API
 * call that way. Op codes are indices into UnaryOps / BinaryOps.
 */
export interface NativeKernelAddon {
  /** The params block (this JS thread's; at least 8 + 4 * MAX_RANK numbers). */
  readonly params: Float64Array;
  /** Instruction set the kernels run with now ('avx512' | 'avx2' | 'scalar'). */
  kernelIsa(): string;
  /** params [op, p0, p1] */
  unary(x: Float32Array, y: Float32Array): void;
  /** params [op, p0, p1] */
  unaryBackward(x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array): void;
  /** params [op, aOff, bOff, rank, shape..., aStrides..., bStrides...] */
  binary(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** params [cOff, aOff, bOff, rank, shape..., cStrides..., aStrides..., bStrides...] */
  where(cond: Uint8Array, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** params [offset, rank, shape..., strides...]; src and dst of the same typed-array type. */
  copyStrided(src: AnyTyped, dst: AnyTyped): void;
  /** op: 0 sum, 1 max, 2 min. */
  reduce(op: number, x: Float32Array, outer: number, n: number, inner: number, out: Float32Array): void;
  argReduce(isMax: boolean, x: Float32Array, outer: number, n: number, inner: number, out: Int32Array): void;
  sumSquares(x: Float32Array): number;
  softmax(x: Float32Array, y: Float32Array, rows: number, n: number, log: boolean): void;
  softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, n: number, log: boolean): void;
  layerNorm(x: Float32Array, w: Float32Array | null, b: Float32Array | null, y: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void;
  layerNormBackward(x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, gb: Float32Array | null, rows: number, n: number): void;
  rmsNorm(x: Float32Array, w: Float32Array | null, y: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void;
  rmsNormBackward(x: Float32Array, w: Float32Array | null, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, rows: number, n: number): void;
  rope(x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array, N: number, T: number, D: number, rot: number, interleaved: boolean, inverse: boolean): void;
  /** params [B, H, Hkv, Tq, Tk, D, Dv, scale, causal 0/1, maskStrideB, maskStrideH, maskStrideQ] */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, mask: Uint8Array | null, out: Float32Array, lse: Float32Array): void;
  /** params as attention */
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, mask: Uint8Array | null, out: Float32Array, lse: Float32Array, gOut: Float32Array, gq: Float32Array, gk: Float32Array, gv: Float32Array): void;
  /** params [C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo] */
  im2col(x: Float32Array, xOff: number, cols: Float32Array): void;
  /** params as im2col */
  col2im(cols: Float32Array, gx: Float32Array, gxOff: number): void;
  /** params as im2col */
  depthwiseConv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, N: number): void;
  /** params as im2col */
  depthwiseConv2dBackward(x: Float32Array, w: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array, N: number): void;
  /** params [NC, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, countIncludePad 0/1] */
  pool2d(isMax: boolean, x: Float32Array, y: Float32Array, argmax: Int32Array | null): void;
  /** params as pool2d */
  pool2dBackward(isMax: boolean, gy: Float32Array, argmax: Int32Array | null, gx: Float32Array): void;
  /** params [NC, H, W, Ho, Wo, mode (0 nearest, 1 bilinear, 2 bicubic), alignCorners 0/1, scaleH, scaleW] */
  interpolate(x: Float32Array, y: Float32Array): void;
  /** params as interpolate */
  interpolateBackward(gy: Float32Array, gx: Float32Array): void;
  indexSelect(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, inner: number): void;
  indexAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, inner: number): void;
  gather(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, m: number, inner: number): void;
  scatterAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, m: number, inner: number): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, loss: Float32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void;
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, gLoss: Float32Array, glogits: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void;
  cumsum(x: Float32Array, y: Float32Array, outer: number, n: number, inner: number, reverse: boolean): void;
  topk(x: Float32Array, rows: number, n: number, k: number, values: Float32Array, indices: Int32Array): void;
  /** params [lr, beta1, beta2, eps, weightDecay, bc1, bc2] */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array): void;
  sgd(p: Float32Array, g: Float32Array, buf: Float32Array | null, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, first: boolean): void;
}

export type NativeKernels = Omit<Backend, 'name' | 'setThreads' | 'getThreads' | 'gemm'>;

/** Largest tensor rank the addon accepts (kMaxRank in kernels.h). */
export const MAX_RANK = 64;

function codes(names: readonly string[]): Record<string, number> {
  const m = Object.create(null) as Record<string, number>;
  names.forEach((n, i) => (m[n] = i));
  return m;
}

const UNARY = codes(UnaryOps);
const BINARY = codes(BinaryOps);
const REDUCE = codes(['sum', 'max', 'min']);
const INTERP = codes(['nearest', 'bilinear', 'bicubic']);

function fail(kernel: string, msg: string): never {
  throw new Error(`${kernel}: ${msg}`);
}

/** Writes [rank, shape] into P from index `at`; returns the rank. */
function packShape(P: Float64Array, at: number, kernel: string, shape: readonly number[]): number {
  const r = shape.length;
  if (r > MAX_RANK) fail(kernel, `rank ${r} exceeds ${MAX_RANK}`);
  P[at] = r;
  for (let d = 0; d < r; d++) P[at + 1 + d] = shape[d];
  return r;
}

/** Writes operand k's strides after [rank, shape] (packed at `at`) once their count is checked. */
function packStrides(P: Float64Array, at: number, k: number, kernel: string, name: string, shape: readonly number[], strides: readonly number[]): void {
  const r = shape.length;
  if (strides.length !== r) fail(kernel, `${name} has ${strides.length} strides for a rank-${r} shape [${shape.join(', ')}]`);
  const base = at + 1 + r * (k + 1);
  for (let d = 0; d < r; d++) P[base + d] = strides[d];
}

function packAttention(P: Float64Array, a: AttentionArgs): void {
  P[0] = a.B; P[1] = a.H; P[2] = a.Hkv; P[3] = a.Tq; P[4] = a.Tk; P[5] = a.D; P[6] = a.Dv;
  P[7] = a.scale; P[8] = a.causal ? 1 : 0;
  P[9] = a.maskStrideB; P[10] = a.maskStrideH; P[11] = a.maskStrideQ;
}

function packConv(P: Float64Array, g: Conv2dGeom): void {
  P[0] = g.C; P[1] = g.H; P[2] = g.W; P[3] = g.kh; P[4] = g.kw; P[5] = g.sh; P[6] = g.sw;
  P[7] = g.ph; P[8] = g.pw; P[9] = g.dh; P[10] = g.dw; P[11] = g.Ho; P[12] = g.Wo;
}

function packPool(P: Float64Array, g: Pool2dGeom): void {
  P[0] = g.NC; P[1] = g.H; P[2] = g.W; P[3] = g.kh; P[4] = g.kw; P[5] = g.sh; P[6] = g.sw;
  P[7] = g.ph; P[8] = g.pw; P[9] = g.Ho; P[10] = g.Wo; P[11] = g.countIncludePad ? 1 : 0;
}

function packInterp(P: Float64Array, kernel: string, g: InterpGeom): void {
  const mode = INTERP[g.mode];
  if (mode === undefined) fail(kernel, `unknown mode '${g.mode as string}'`);
  P[0] = g.NC; P[1] = g.H; P[2] = g.W; P[3] = g.Ho; P[4] = g.Wo; P[5] = mode;
  P[6] = g.alignCorners ? 1 : 0; P[7] = g.scaleH; P[8] = g.scaleW;
}

function poolKind(kernel: string, kind: 'max' | 'avg'): boolean {
  if (kind !== 'max' && kind !== 'avg') fail(kernel, `unknown kind '${kind as string}'`);
  return kind === 'max';
}

/** The Backend kernels (all but gemm and threads) over the addon. */
export function nativeKernels(addon: NativeKernelAddon): NativeKernels {
  const P = addon.params;
  if (!(P instanceof Float64Array) || P.length < 8 + 4 * MAX_RANK) throw new Error('native addon: missing or short params block (rebuild the addon)');
  return {
    copyStrided<T extends AnyTyped>(src: T, offset: number, shape: readonly number[], strides: readonly number[], dst: T): void {
      P[0] = offset;
      packShape(P, 1, 'copyStrided', shape);
      packStrides(P, 1, 0, 'copyStrided', 'src', shape, strides);
      addon.copyStrided(src, dst);
    },

    unary(op: UnaryOp, x: Float32Array, y: Float32Array, p0: number, p1: number): void {
      const code = UNARY[op];
      if (code === undefined) fail('unary', `unknown op '${op}'`);
      P[0] = code; P[1] = p0; P[2] = p1;
      addon.unary(x, y);
    },

    unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, p0: number, p1: number): void {
      const code = UNARY[op];
      if (code === undefined) fail('unaryBackward', `unknown op '${op}'`);
      P[0] = code; P[1] = p0; P[2] = p1;
      addon.unaryBackward(x, y, gy, gx);
    },

    binary(op: BinaryOp, a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void {
      const code = BINARY[op];
      if (code === undefined) fail('binary', `unknown op '${op}'`);
      P[0] = code; P[1] = aOff; P[2] = bOff;
      packShape(P, 3, 'binary', shape);
      packStrides(P, 3, 0, 'binary', 'a', shape, aStrides);
      packStrides(P, 3, 1, 'binary', 'b', shape, bStrides);
      addon.binary(a, b, out);
    },

    where(cond: Uint8Array, cOff: number, cStrides: readonly number[], a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void {
      P[0] = cOff; P[1] = aOff; P[2] = bOff;
      packShape(P, 3, 'where', shape);
      packStrides(P, 3, 0, 'where', 'cond', shape, cStrides);
      packStrides(P, 3, 1, 'where', 'a', shape, aStrides);
      packStrides(P, 3, 2, 'where', 'b', shape, bStrides);
      addon.where(cond, a, b, out);
    },

    reduce(op: ReduceOp, x: Float32Array, outer: number, n: number, inner: number, out: Float32Array): void {
      const code = REDUCE[op];
      if (code === undefined) fail('reduce', `unknown op '${op as string}'`);
      addon.reduce(code, x, outer, n, inner, out);
    },

    argReduce(op: 'argmax' | 'argmin', x: Float32Array, outer: number, n: number, inner: number, out: Int32Array): void {
      if (op !== 'argmax' && op !== 'argmin') fail('argReduce', `unknown op '${op as string}'`);
      addon.argReduce(op === 'argmax', x, outer, n, inner, out);
    },

    sumSquares(x: Float32Array): number {
      return addon.sumSquares(x);
    },

    softmax(x: Float32Array, y: Float32Array, rows: number, n: number, log: boolean): void {
      addon.softmax(x, y, rows, n, log);
    },

    softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, n: number, log: boolean): void {
      addon.softmaxBackward(y, gy, gx, rows, n, log);
    },

    layerNorm(x, w, b, y, mean, rstd, rows, n, eps): void {
      addon.layerNorm(x, w, b, y, mean, rstd, rows, n, eps);
    },

    layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, n): void {
      addon.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, n);
    },

    rmsNorm(x, w, y, rstd, rows, n, eps): void {
      addon.rmsNorm(x, w, y, rstd, rows, n, eps);
    },

    rmsNormBackward(x, w, rstd, gy, gx, gw, rows, n): void {
      addon.rmsNormBackward(x, w, rstd, gy, gx, gw, rows, n);
    },

    rope(x, y, cos, sin, N, T, D, rot, interleaved, inverse): void {
      addon.rope(x, y, cos, sin, N, T, D, rot, interleaved, inverse);
    },

    attention(args: AttentionArgs, out: Float32Array, lse: Float32Array): void {
      packAttention(P, args);
      addon.attention(args.q, args.k, args.v, args.mask, out, lse);
    },

    attentionBackward(args: AttentionArgs, out, lse, gOut, gq, gk, gv): void {
      packAttention(P, args);
      addon.attentionBackward(args.q, args.k, args.v, args.mask, out, lse, gOut, gq, gk, gv);
    },

    im2col(x: Float32Array, xOff: number, g: Conv2dGeom, cols: Float32Array): void {
      packConv(P, g);
      addon.im2col(x, xOff, cols);
    },

    col2im(cols: Float32Array, g: Conv2dGeom, gx: Float32Array, gxOff: number): void {
      packConv(P, g);
      addon.col2im(cols, gx, gxOff);
    },

    depthwiseConv2d(x, w, bias, y, N, g): void {
      packConv(P, g);
      addon.depthwiseConv2d(x, w, bias, y, N);
    },

    depthwiseConv2dBackward(x, w, gy, gx, gw, N, g): void {
      packConv(P, g);
      addon.depthwiseConv2dBackward(x, w, gy, gx, gw, N);
    },

    pool2d(kind, x, y, argmax, g): void {
      const isMax = poolKind('pool2d', kind);
      packPool(P, g);
      addon.pool2d(isMax, x, y, argmax);
    },

    pool2dBackward(kind, gy, argmax, gx, g): void {
      const isMax = poolKind('pool2dBackward', kind);
      packPool(P, g);
      addon.pool2dBackward(isMax, gy, argmax, gx);
    },

    interpolate(x, y, g): void {
      packInterp(P, 'interpolate', g);
      addon.interpolate(x, y);
    },

    interpolateBackward(gy, gx, g): void {
      packInterp(P, 'interpolateBackward', g);
      addon.interpolateBackward(gy, gx);
    },

    indexSelect(x, idx, y, outer, n, inner): void {
      addon.indexSelect(x, idx, y, outer, n, inner);
    },

    indexAdd(gy, idx, gx, outer, n, inner): void {
      addon.indexAdd(gy, idx, gx, outer, n, inner);
    },

    gather(x, idx, y, outer, n, m, inner): void {
      addon.gather(x, idx, y, outer, n, m, inner);
    },

    scatterAdd(gy, idx, gx, outer, n, m, inner): void {
      addon.scatterAdd(gy, idx, gx, outer, n, m, inner);
    },

    crossEntropy(logits, targets, loss, lse, rows, V, ignoreIndex, smoothing): void {
      addon.crossEntropy(logits, targets, loss, lse, rows, V, ignoreIndex, smoothing);
    },

    crossEntropyBackward(logits, targets, lse, gLoss, glogits, rows, V, ignoreIndex, smoothing): void {
      addon.crossEntropyBackward(logits, targets, lse, gLoss, glogits, rows, V, ignoreIndex, smoothing);
    },

    cumsum(x, y, outer, n, inner, reverse): void {
      addon.cumsum(x, y, outer, n, inner, reverse);
    },

    topk(x, rows, n, k, values, indices): void {
      addon.topk(x, rows, n, k, values, indices);
    },

    adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2): void {
      P[0] = lr; P[1] = beta1; P[2] = beta2; P[3] = eps; P[4] = weightDecay; P[5] = bc1; P[6] = bc2;
      addon.adamw(p, g, m, v);
    },

    sgd(p, g, buf, lr, momentum, dampening, weightDecay, nesterov, first): void {
      addon.sgd(p, g, buf, lr, momentum, dampening, weightDecay, nesterov, first);
    },
  };
}
