// Creation ops, dtype casts and the small helpers every op module uses.

import { backend } from '../backend.ts';
import { fromF32, toF32, type AnyData, type DType } from '../dtype.ts';
import { defaultRng, type Rng } from '../rng.ts';
import { fmt, numel, type Shape } from '../shape.ts';
import { empty, fromData, Tensor } from '../tensor.ts';
import { record } from '../autograd.ts';

export { empty, fromData };

/** Throws unless every tensor is f32 (ops compute in f32 only). */
export function assertF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new Error(`${op}: expected f32 input, got ${t.describe()} (cast it with cast(t, 'f32'))`);
}

/**
 * The elements of t in row-major order as a dense typed array: zero-copy for contiguous
 * tensors, a fresh copy for strided views. The caller must not write to it.
 */
export function denseData(t: Tensor): Float32Array {
  if (t.contiguous) return t.data;
  assertF32('denseData', t);
  const out = new Float32Array(t.size);
  backend().copyStrided(t.buffer() as Float32Array, t.offset, t.shape, t.strides, out);
  return out;
}

export function denseI32(t: Tensor, op = 'index'): Int32Array {
  if (t.dtype !== 'i32') throw new Error(`${op}: expected an i32 index tensor, got ${t.describe()}`);
  if (t.contiguous) return t.i32;
  const out = new Int32Array(t.size);
  backend().copyStrided(t.buffer() as Int32Array, t.offset, t.shape, t.strides, out);
  return out;
}

export function denseU8(t: Tensor, op = 'mask'): Uint8Array {
  if (t.dtype !== 'bool' && t.dtype !== 'u8') throw new Error(`${op}: expected a bool mask, got ${t.describe()}`);
  if (t.contiguous) return t.u8;
  const out = new Uint8Array(t.size);
  backend().copyStrided(t.buffer() as Uint8Array, t.offset, t.shape, t.strides, out);
  return out;
}

export function tensor(values: ArrayLike<number>, shape?: Shape, dtype: DType = 'f32'): Tensor {
  const sh = shape ?? [values.length];
  if (numel(sh) !== values.length) throw new Error(`tensor: ${values.length} values do not fill shape ${fmt(sh)}`);
  const f = values instanceof Float32Array ? new Float32Array(values) : Float32Array.from(values);
  return fromData(dtype === 'f32' ? f : fromF32(dtype, f), sh, dtype);
}

export function scalar(v: number): Tensor {
  return tensor([v], []);
}

export function full(shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(shape, dtype);
  if (value !== 0) (t.buffer() as Float32Array).fill(value);
  return t;
}

export function zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
  return empty(shape, dtype);
}

export function ones(shape: Shape, dtype: DType = 'f32'): Tensor {
  return full(shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return empty(t.shape, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return full(t.shape, 1, t.dtype);
}

/** [start, start+step, ...) below end. */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'f32'): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = empty([n], dtype);
  const d = t.buffer();
  for (let i = 0; i < n; i++) d[i] = start + i * step;
  return t;
}

export function randn(shape: Shape, opts: { mean?: number; std?: number; rng?: Rng } = {}): Tensor {
  const t = empty(shape);
  (opts.rng ?? defaultRng()).fillNormal(t.data, opts.mean ?? 0, opts.std ?? 1);
  return t;
}

export function rand(shape: Shape, opts: { lo?: number; hi?: number; rng?: Rng } = {}): Tensor {
  const t = empty(shape);
  (opts.rng ?? defaultRng()).fillUniform(t.data, opts.lo ?? 0, opts.hi ?? 1);
  return t;
}

export function truncNormal(shape: Shape, opts: { mean?: number; std?: number; a?: number; b?: number; rng?: Rng } = {}): Tensor {
  const t = empty(shape);
  (opts.rng ?? defaultRng()).fillTruncNormal(t.data, opts.mean ?? 0, opts.std ?? 1, opts.a ?? -2, opts.b ?? 2);
  return t;
}

/** Integers uniform in [0, n) as an i32 tensor. */
export function randint(shape: Shape, n: number, rng?: Rng): Tensor {
  const t = empty(shape, 'i32');
  const r = rng ?? defaultRng();
  const d = t.buffer();
  for (let i = 0; i < d.length; i++) d[i] = r.int(n);
  return t;
}

/** A dense copy (gradient flows through). */
export function clone(t: Tensor): Tensor {
  if (t.dtype !== 'f32') {
    const out = empty(t.shape, t.dtype);
    const src = t.buffer();
    if (t.contiguous) (out.buffer() as AnyData).set(src.subarray(t.offset, t.offset + t.size) as never);
    else backend().copyStrided(src as Int32Array, t.offset, t.shape, t.strides, out.buffer() as Int32Array);
    return out;
  }
  const out = empty(t.shape);
  if (t.contiguous) out.data.set(t.data);
  else backend().copyStrided(t.buffer() as Float32Array, t.offset, t.shape, t.strides, out.data);
  return record('clone', [t], out, [], (g) => [g]);
}

/** A contiguous tensor with the same values: a new handle on the same storage when t already is one. */
export function contiguous(t: Tensor): Tensor {
  if (t.contiguous) return record('contiguous', [t], t.share(), [], (g) => [g]);
  return clone(t);
}

/** Same values, cut from the graph. */
export function detach(t: Tensor): Tensor {
  return t.share();
}

/** Converts between dtypes (f32 <-> f16/bf16/i32/i8/u8/bool). Gradient flows only f32 -> f32. */
export function cast(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return clone(t);
  let src: AnyData = t.buffer();
  if (!t.contiguous || t.offset !== 0 || src.length !== t.size) {
    const c = clone(t);
    src = c.buffer();
    c.dispose();
  }
  const f = t.dtype === 'f32' ? (src as Float32Array) : toF32(t.dtype, src);
  return fromData(dtype === 'f32' ? (f === src ? new Float32Array(f) : f) : fromF32(dtype, f), t.shape, dtype);
}

/** Values as a plain nested-free JS array (row-major). */
export function toArray(t: Tensor): number[] {
  if (t.dtype === 'f32') return Array.from(denseData(t));
  const c = cast(t, 'f32');
  const out = Array.from(c.data);
  c.dispose();
  return out;
}

export function item(t: Tensor): number {
  if (t.size !== 1) throw new Error(`item: tensor ${t.describe()} has ${t.size} elements`);
  return (t.buffer() as ArrayLike<number>)[t.offset]!;
}
