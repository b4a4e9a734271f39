// Elementwise kernels: unary (+ backward), binary with broadcasting strides, where.

import type { BinaryOp, UnaryOp } from '../../engine/backend.ts';
import { UnaryOps, BinaryOps } from '../../engine/backend.ts';
import { erf, erfc, normalCdf, normalPdf } from './special.ts';
import { checkLen, checkStrided, fail, powC, shapeNumel, stridedOffsets } from './util.ts';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_TANH_C = 0.044715;

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** gelu(x) = 0.5 x (1 + erf(x / sqrt 2)); the x < 0 branch uses erfc to keep relative accuracy. */
function gelu(x: number): number {
  if (x >= 0) return 0.5 * x * (1 + erf(x * Math.SQRT1_2));
  return 0.5 * x * erfc(-x * Math.SQRT1_2);
}

/** z = sqrt(2/pi) (x + 0.044715 x^3), the tanh argument of gelu_tanh. */
function geluTanhArg(x: number): number {
  return SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
}

function unaryScalar(op: UnaryOp, x: number, p0: number, p1: number): number {
  switch (op) {
    case 'neg': return -x;
    case 'abs': return Math.abs(x);
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'square': return x * x;
    case 'reciprocal': return 1 / x;
    case 'sin': return Math.sin(x);
    case 'cos': return Math.cos(x);
    case 'tanh': return Math.tanh(x);
    case 'sigmoid': return sigmoid(x);
    case 'relu': return x < 0 ? 0 : x;
    case 'gelu': return gelu(x);
    case 'gelu_tanh': return x * sigmoid(2 * geluTanhArg(x)); // 0.5 (1 + tanh z) = sigmoid(2z), exact in the tail
    case 'quick_gelu': return x * sigmoid(1.702 * x);
    case 'silu': return x * sigmoid(x);
    case 'scale': return x * p0;
    case 'add_scalar': return x + p0;
    case 'pow_scalar': return powC(x, p0);
    case 'clamp': return Math.min(Math.max(x, p0), p1);
    case 'sign': return x > 0 ? 1 : x < 0 ? -1 : 0; // NaN -> 0 as PyTorch
  }
}

/** Ops whose backward reads y = f(x) instead of x (the other buffer is not read or checked). */
const BACKWARD_USES_Y: ReadonlySet<UnaryOp> = new Set<UnaryOp>(['exp', 'sqrt', 'rsqrt', 'reciprocal', 'tanh', 'sigmoid', 'relu']);

/** d f / d x at x (or from y for the ops in BACKWARD_USES_Y). */
function unaryDeriv(op: UnaryOp, x: number, y: number, p0: number, p1: number): number {
  switch (op) {
    case 'neg': return -1;
    case 'abs': return x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / y;
    case 'rsqrt': return -0.5 * y * y * y;
    case 'square': return 2 * x;
    case 'reciprocal': return -y * y;
    case 'sin': return Math.cos(x);
    case 'cos': return -Math.sin(x);
    case 'tanh': return 1 - y * y;
    case 'sigmoid': return y * (1 - y);
    case 'relu': return y > 0 ? 1 : 0;
    case 'gelu': return normalCdf(x) + x * normalPdf(x);
    case 'gelu_tanh': {
      // with h = 0.5 (1 + tanh z) = sigmoid(2z): d/dx [x h] = h + x * 2 h (1 - h) * dz/dx
      const h = sigmoid(2 * geluTanhArg(x));
      return h + 2 * x * h * (1 - h) * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_C * x * x);
    }
    case 'quick_gelu': {
      const s = sigmoid(1.702 * x);
      return s + 1.702 * x * s * (1 - s);
    }
    case 'silu': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case 'scale': return p0;
    case 'add_scalar': return 1;
    case 'pow_scalar': return p0 === 0 ? 0 : p0 * powC(x, p0 - 1);
    case 'clamp': return x >= p0 && x <= p1 ? 1 : 0;
    case 'sign': return fail('unaryBackward', "'sign' has no gradient");
  }
}

function checkUnaryOp(kernel: string, op: UnaryOp): void {
  if (!(UnaryOps as readonly string[]).includes(op)) fail(kernel, `unknown op '${op}'`);
}

export function unary(op: UnaryOp, x: Float32Array, y: Float32Array, p0: number, p1: number): void {
  checkUnaryOp('unary', op);
  checkLen('unary', 'y', y, x.length);
  for (let i = 0; i < x.length; i++) y[i] = unaryScalar(op, x[i], p0, p1);
}

export function unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, p0: number, p1: number): void {
  const K = 'unaryBackward';
  checkUnaryOp(K, op);
  if (op === 'sign') fail(K, "'sign' has no gradient");
  const n = gy.length;
  checkLen(K, 'gx', gx, n);
  const useY = BACKWARD_USES_Y.has(op);
  if (useY) checkLen(K, `y (read by '${op}')`, y, n);
  else checkLen(K, `x (read by '${op}')`, x, n);
  for (let i = 0; i < n; i++) {
    const d = useY ? unaryDeriv(op, 0, y[i], p0, p1) : unaryDeriv(op, x[i], 0, p0, p1);
    gx[i] = gy[i] * d;
  }
}

function binaryScalar(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'pow': return powC(a, b);
    case 'max': return Math.max(a, b);
    case 'min': return Math.min(a, b);
    case 'eq': return a === b ? 1 : 0;
    case 'ne': return a !== b ? 1 : 0;
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
    case 'ge': return a >= b ? 1 : 0;
  }
}

export function binary(op: BinaryOp, a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void {
  const K = 'binary';
  if (!(BinaryOps as readonly string[]).includes(op)) fail(K, `unknown op '${op}'`);
  const n = shapeNumel(K, shape);
  checkLen(K, 'out', out, n);
  checkStrided(K, 'a', a.length, aOff, aStrides, shape);
  checkStrided(K, 'b', b.length, bOff, bStrides, shape);
  const ao = stridedOffsets(aOff, aStrides, shape);
  const bo = stridedOffsets(bOff, bStrides, shape);
  for (let i = 0; i < n; i++) out[i] = binaryScalar(op, a[ao[i]], b[bo[i]]);
}

export function where(cond: Uint8Array, cOff: number, cStrides: readonly number[], a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void {
  const K = 'where';
  const n = shapeNumel(K, shape);
  checkLen(K, 'out', out, n);
  checkStrided(K, 'cond', cond.length, cOff, cStrides, shape);
  checkStrided(K, 'a', a.length, aOff, aStrides, shape);
  checkStrided(K, 'b', b.length, bOff, bStrides, shape);
  const co = stridedOffsets(cOff, cStrides, shape);
  const ao = stridedOffsets(aOff, aStrides, shape);
  const bo = stridedOffsets(bOff, bStrides, shape);
  for (let i = 0; i < n; i++) out[i] = cond[co[i]] !== 0 ? a[ao[i]] : b[bo[i]];
}
