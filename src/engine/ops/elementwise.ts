// Elementwise ops with NumPy broadcasting over strided views, and their gradients.

import { backend, type BinaryOp, type UnaryOp } from '../backend.ts';
import { record } from '../autograd.ts';
import { defaultRng, type Rng } from '../rng.ts';
import { broadcastShapes, broadcastStrides, collapseDims, contiguousStrides, fmt, shapeEq, type Shape } from '../shape.ts';
import { empty, Tensor } from '../tensor.ts';
import { assertF32, denseData, scalar } from './core.ts';
import { reshape } from './shape.ts';
import { sum } from './reduce.ts';

type Operand = Tensor | number;

function asTensor(x: Operand): Tensor {
  return typeof x === 'number' ? scalar(x) : x;
}

/** Runs a binary kernel over broadcast operands into a new dense tensor (no graph). */
function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  assertF32(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(shape);
  if (out.size === 0) return out;
  const as = broadcastStrides(a.shape, a.strides, shape);
  const bs = broadcastStrides(b.shape, b.strides, shape);
  const c = collapseDims(shape, [contiguousStrides(shape), as, bs]);
  backend().binary(op, a.buffer() as Float32Array, a.offset, c.strides[1]!, b.buffer() as Float32Array, b.offset, c.strides[2]!, c.shape, out.data);
  return out;
}

/** dst += src in place (dst dense and exclusively owned; src of the same shape, any layout). */
export function addInPlace(dst: Tensor, src: Tensor): void {
  if (!shapeEq(dst.shape, src.shape)) throw new Error(`addInPlace: ${fmt(src.shape)} into ${fmt(dst.shape)}`);
  const d = dst.data;
  backend().binary('add', d, 0, [1], denseData(src), 0, [1], [d.length], d);
}

/** Sums g over broadcast dims so it has `shape` (the adjoint of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapeEq(g.shape, shape)) return g.share();
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = sum(g, axes, true);
  const out = reshape(s, shape);
  s.dispose();
  return out;
}

function binary(op: BinaryOp, x: Operand, y: Operand, vjp: ((g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null]) | null): Tensor {
  const a = asTensor(x), b = asTensor(y);
  const out = binaryRaw(op, a, b);
  const res = vjp === null ? out : record(op, [a, b], out, [a, b, out], (g, [sa, sb, so]) => {
    const [ga, gb] = vjp(g, sa!, sb!, so!);
    const ra = ga === null || shapeEq(ga.shape, a.shape) ? ga : sumTo(ga, a.shape);
    const rb = gb === null || shapeEq(gb.shape, b.shape) ? gb : sumTo(gb, b.shape);
    // Drop replaced temporaries; g itself belongs to the tape.
    if (ga !== null && ra !== ga && ga !== g) ga.dispose();
    if (gb !== null && rb !== gb && gb !== g && gb !== ga) gb.dispose();
    return [ra, rb];
  });
  if (typeof x === 'number') a.dispose();
  if (typeof y === 'number') b.dispose();
  return res;
}

function reduceTo(g: Tensor, shape: Shape): Tensor {
  if (shapeEq(g.shape, shape)) return g;
  const r = sumTo(g, shape);
  g.dispose();
  return r;
}

export function add(a: Operand, b: Operand): Tensor {
  return binary('add', a, b, (g) => [g, g]);
}
export function sub(a: Operand, b: Operand): Tensor {
  return binary('sub', a, b, (g) => [g, neg(g)]);
}
export function mul(a: Operand, b: Operand): Tensor {
  return binary('mul', a, b, (g, sa, sb) => [mul(g, sb), mul(g, sa)]);
}
export function div(a: Operand, b: Operand): Tensor {
  return binary('div', a, b, (g, _sa, sb, out) => {
    const ga = div(g, sb);
    const t = mul(ga, out);
    const gb = neg(t);
    t.dispose();
    return [ga, gb];
  });
}
/** a ** b elementwise (gradient for b uses log(a), defined for a > 0). */
export function pow(a: Operand, b: Operand): Tensor {
  if (typeof b === 'number') return powScalar(a as Tensor, b);
  return binary('pow', a, b, (g, sa, sb, out) => {
    const bm1 = sub(sb, 1), p = binaryRaw('pow', sa, bm1), t = mul(p, sb), ga = mul(g, t);
    const la = unaryRaw('log', sa), t2 = mul(out, la), gb = mul(g, t2);
    for (const x of [bm1, p, t, la, t2]) x.dispose();
    return [ga, gb];
  });
}
/** Elementwise max; ties split the gradient equally (as PyTorch). */
export function maximum(a: Operand, b: Operand): Tensor {
  return binary('max', a, b, (g, sa, sb) => tieGrads(g, sa, sb, 'gt'));
}
export function minimum(a: Operand, b: Operand): Tensor {
  return binary('min', a, b, (g, sa, sb) => tieGrads(g, sa, sb, 'lt'));
}
function tieGrads(g: Tensor, a: Tensor, b: Tensor, win: 'gt' | 'lt'): [Tensor, Tensor] {
  const w = binaryRaw(win, a, b), e = binaryRaw('eq', a, b), h = mul(e, 0.5), wa = add(w, h);
  const wl = binaryRaw(win, b, a), wb = add(wl, h);
  const ga = mul(g, wa), gb = mul(g, wb);
  for (const x of [w, e, h, wa, wl, wb]) x.dispose();
  return [ga, gb];
}

function compare(op: BinaryOp, a: Operand, b: Operand): Tensor {
  const ta = asTensor(a), tb = asTensor(b);
  const f = binaryRaw(op, ta, tb);
  if (typeof a === 'number') ta.dispose();
  if (typeof b === 'number') tb.dispose();
  const out = empty(f.shape, 'bool');
  const d = out.u8, s = f.data;
  for (let i = 0; i < d.length; i++) d[i] = s[i]!;
  f.dispose();
  return out;
}
/** Comparisons return bool tensors (no gradient). */
export const eq = (a: Operand, b: Operand): Tensor => compare('eq', a, b);
export const ne = (a: Operand, b: Operand): Tensor => compare('ne', a, b);
export const lt = (a: Operand, b: Operand): Tensor => compare('lt', a, b);
export const le = (a: Operand, b: Operand): Tensor => compare('le', a, b);
export const gt = (a: Operand, b: Operand): Tensor => compare('gt', a, b);
export const ge = (a: Operand, b: Operand): Tensor => compare('ge', a, b);

// ---- unary -----------------------------------------------------------------------------------

function unaryRaw(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  assertF32(op, x);
  const out = empty(x.shape);
  backend().unary(op, denseData(x), out.data, p0, p1);
  return out;
}

function unary(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  const out = unaryRaw(op, x, p0, p1);
  if (op === 'sign') return out;
  return record(op, [x], out, [x, out], (g, [sx, so]) => {
    const gx = empty(x.shape);
    backend().unaryBackward(op, denseData(sx!), so!.data, denseData(g), gx.data, p0, p1);
    return [gx];
  });
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** Exact GELU (erf). */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
/** GELU with the tanh approximation. */
export const geluTanh = (x: Tensor): Tensor => unary('gelu_tanh', x);
/** x * sigmoid(1.702 x) (OpenAI CLIP). */
export const quickGelu = (x: Tensor): Tensor => unary('quick_gelu', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const scale = (x: Tensor, s: number): Tensor => unary('scale', x, s);
export const addScalar = (x: Tensor, s: number): Tensor => unary('add_scalar', x, s);
export const powScalar = (x: Tensor, p: number): Tensor => unary('pow_scalar', x, p);
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  if (lo > hi) throw new Error(`clamp: min ${lo} > max ${hi}`);
  return unary('clamp', x, lo, hi);
}

// ---- selection -------------------------------------------------------------------------------

/** cond ? a : b with broadcasting; cond is a bool tensor. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (cond.dtype !== 'bool' && cond.dtype !== 'u8') throw new Error(`where: condition must be bool, got ${cond.describe()}`);
  const ta = asTensor(a), tb = asTensor(b);
  assertF32('where', ta, tb);
  const shape = broadcastShapes('where', cond.shape, ta.shape, tb.shape);
  const out = empty(shape);
  if (out.size > 0) {
    const c = collapseDims(shape, [contiguousStrides(shape), broadcastStrides(cond.shape, cond.strides, shape), broadcastStrides(ta.shape, ta.strides, shape), broadcastStrides(tb.shape, tb.strides, shape)]);
    backend().where(cond.buffer() as Uint8Array, cond.offset, c.strides[1]!, ta.buffer() as Float32Array, ta.offset, c.strides[2]!, tb.buffer() as Float32Array, tb.offset, c.strides[3]!, c.shape, out.data);
  }
  const res = record('where', [ta, tb], out, [cond], (g, [sc]) => {
    const z = scalar(0);
    const ga = where(sc!, g, z), gb = where(sc!, z, g);
    z.dispose();
    return [reduceTo(ga, ta.shape), reduceTo(gb, tb.shape)];
  });
  if (typeof a === 'number') ta.dispose();
  if (typeof b === 'number') tb.dispose();
  return res;
}

/** x with `value` where mask is true (mask broadcasts to x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const shape = broadcastShapes('maskedFill', x.shape, mask.shape);
  if (!shapeEq(shape, x.shape)) throw new Error(`maskedFill: mask ${fmt(mask.shape)} does not broadcast to ${fmt(x.shape)}`);
  return where(mask, value, x);
}

/** Inverted dropout: zeroes with probability p and scales survivors by 1/(1-p). Identity when !training or p = 0. */
export function dropout(x: Tensor, p: number, training: boolean, rng?: Rng): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return mul(x, 1);
  const mask = empty(x.shape);
  const r = rng ?? defaultRng();
  const m = mask.data, keepScale = 1 / (1 - p);
  for (let i = 0; i < m.length; i++) m[i] = r.uniform() >= p ? keepScale : 0;
  const out = mul(x, mask);
  mask.dispose();
  return out;
}
