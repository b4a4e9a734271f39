// Views and layout ops: reshape, permute, slice, expand (zero-copy where the layout allows),
// concat, split, stack, index_select, gather (copies).

import { backend } from '../backend.ts';
import { record } from '../autograd.ts';
import { contiguousStrides, fmt, normAxis, numel, shapeEq, type Shape } from '../shape.ts';
import { empty, Tensor } from '../tensor.ts';
import { assertF32, clone, denseData, denseI32, zeros } from './core.ts';
import { sumTo } from './elementwise.ts'; // a cycle (elementwise imports this module), used only at run time

function view(t: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  t.storage.retain();
  return new Tensor(t.storage, shape, strides, offset);
}

/** Resolves one -1 in a target shape. */
function resolveShape(op: string, size: number, shape: Shape): number[] {
  const out = shape.slice();
  const neg = out.indexOf(-1);
  if (neg !== out.lastIndexOf(-1)) throw new Error(`${op}: at most one -1 in ${fmt(shape)}`);
  if (neg >= 0) {
    const rest = numel(out.filter((_, i) => i !== neg));
    if (rest === 0 || size % rest !== 0) throw new Error(`${op}: cannot infer -1 in ${fmt(shape)} for ${size} elements`);
    out[neg] = size / rest;
  }
  for (const d of out) if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: invalid shape ${fmt(shape)}`);
  if (numel(out) !== size) throw new Error(`${op}: cannot reshape ${size} elements into ${fmt(shape)}`);
  return out;
}

/** Reshape; a view when the input is contiguous, a copy otherwise. */
export function reshape(t: Tensor, shape: Shape): Tensor {
  const target = resolveShape('reshape', t.size, shape);
  const src = t.contiguous ? t : clone(t);
  const out = view(src, target, contiguousStrides(target), src.offset);
  if (src !== t) src.dispose();
  return record('reshape', [t], out, [], (g) => [reshape(g, t.shape)]);
}

export function flatten(t: Tensor, start = 0, end = -1): Tensor {
  if (t.ndim === 0) return reshape(t, [1]);
  const s = normAxis('flatten', start, t.ndim), e = normAxis('flatten', end, t.ndim);
  return reshape(t, [...t.shape.slice(0, s), numel(t.shape.slice(s, e + 1)), ...t.shape.slice(e + 1)]);
}

export function unsqueeze(t: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, t.ndim + 1);
  const shape = t.shape.slice(), strides = t.strides.slice();
  shape.splice(a, 0, 1);
  strides.splice(a, 0, a < t.ndim ? t.strides[a]! * t.shape[a]! : 1);
  return record('unsqueeze', [t], view(t, shape, strides, t.offset), [], (g) => [reshape(g, t.shape)]);
}

export function squeeze(t: Tensor, axis?: number): Tensor {
  const keep = t.shape.map((d, i) => (axis === undefined ? d !== 1 : i !== normAxis('squeeze', axis, t.ndim) || d !== 1));
  const shape = t.shape.filter((_, i) => keep[i]);
  const strides = t.strides.filter((_, i) => keep[i]);
  return record('squeeze', [t], view(t, shape, strides, t.offset), [], (g) => [reshape(g, t.shape)]);
}

export function permute(t: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== t.ndim) throw new Error(`permute: ${axes.length} axes for a tensor of rank ${t.ndim}`);
  const ax = axes.map((a) => normAxis('permute', a, t.ndim));
  if (new Set(ax).size !== ax.length) throw new Error(`permute: repeated axis in [${axes.join(', ')}]`);
  const inv = new Array<number>(ax.length);
  ax.forEach((a, i) => (inv[a] = i));
  const out = view(t, ax.map((a) => t.shape[a]!), ax.map((a) => t.strides[a]!), t.offset);
  return record('permute', [t], out, [], (g) => [permute(g, inv)]);
}

export function transpose(t: Tensor, a = -2, b = -1): Tensor {
  const axes = t.shape.map((_, i) => i);
  const i = normAxis('transpose', a, t.ndim), j = normAxis('transpose', b, t.ndim);
  [axes[i], axes[j]] = [axes[j]!, axes[i]!];
  return permute(t, axes);
}

/** Elements start, start+step, ... below end along axis (negative start/end count from the end). */
export function slice(t: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis('slice', axis, t.ndim);
  const n = t.shape[a]!;
  if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const s = clampIdx(start), e = end === undefined ? n : clampIdx(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = t.shape.slice(), strides = t.strides.slice();
  shape[a] = len;
  strides[a] = t.strides[a]! * step;
  const out = view(t, shape, strides, t.offset + (len > 0 ? s * t.strides[a]! : 0));
  return record('slice', [t], out, [], (g) => {
    const gx = zeros(t.shape);
    const gxs = gx.strides.slice();
    gxs[a] = gx.strides[a]! * step;
    const target = new Tensor(gx.storage, shape, gxs, len > 0 ? s * gx.strides[a]! : 0);
    gx.storage.retain();
    copyInto(target, g);
    target.dispose();
    return [gx];
  });
}

/** Writes src's values into the (possibly strided) view dst of equal shape. */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (!shapeEq(dst.shape, src.shape)) throw new Error(`copyInto: shape ${fmt(src.shape)} into ${fmt(dst.shape)}`);
  assertF32('copyInto', dst, src);
  scatterStrided(dst, denseData(src));
}

// Strided write: dst view <- dense values (TS loop over the outer dims, contiguous inner runs).
function scatterStrided(dst: Tensor, vals: Float32Array): void {
  const buf = dst.buffer() as Float32Array;
  const shape = dst.shape, strides = dst.strides, rank = shape.length;
  if (rank === 0) { buf[dst.offset] = vals[0]!; return; }
  const idx = new Array<number>(rank).fill(0);
  const inner = shape[rank - 1]!, istr = strides[rank - 1]!;
  const rows = dst.size / Math.max(1, inner);
  let v = 0;
  for (let r = 0; r < rows && inner > 0; r++) {
    let off = dst.offset;
    for (let d = 0; d < rank - 1; d++) off += idx[d]! * strides[d]!;
    if (istr === 1) { buf.set(vals.subarray(v, v + inner), off); v += inner; }
    else for (let i = 0; i < inner; i++) buf[off + i * istr] = vals[v++]!;
    for (let d = rank - 2; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

/** Broadcast view to `shape` (stride 0 on expanded dims). */
export function expand(t: Tensor, shape: Shape): Tensor {
  if (shape.length < t.ndim) throw new Error(`expand: cannot expand ${fmt(t.shape)} to ${fmt(shape)}`);
  const off = shape.length - t.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= off ? t.shape[i - off]! : d));
  const strides = target.map((d, i) => {
    if (i < off) return 0;
    const sd = t.shape[i - off]!;
    if (sd === d) return t.strides[i - off]!;
    if (sd === 1) return 0;
    throw new Error(`expand: cannot expand ${fmt(t.shape)} to ${fmt(shape)}`);
  });
  return record('expand', [t], view(t, target, strides, t.offset), [], (g) => [sumTo(g, t.shape)]);
}

/** Joins tensors along an existing axis. */
export function concat(ts: readonly Tensor[], axis = 0): Tensor {
  if (ts.length === 0) throw new Error('concat: no tensors');
  const first = ts[0]!;
  const a = normAxis('concat', axis, first.ndim);
  for (const t of ts) {
    assertF32('concat', t);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`concat: shapes ${ts.map((x) => fmt(x.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  const shape = first.shape.slice();
  shape[a] = ts.reduce((s, t) => s + t.shape[a]!, 0);
  const out = empty(shape);
  const outer = numel(shape.slice(0, a)), inner = numel(shape.slice(a + 1));
  const od = out.data;
  let pos = 0;
  for (const t of ts) {
    const d = denseData(t);
    const n = t.shape[a]! * inner;
    for (let o = 0; o < outer; o++) od.set(d.subarray(o * n, o * n + n), o * shape[a]! * inner + pos * inner);
    pos += t.shape[a]!;
  }
  const sizes = ts.map((t) => t.shape[a]!);
  return record('concat', ts, out, [], (g) => split(g, sizes, a));
}

/** Splits along axis into pieces of the given sizes (or `sizes` equal pieces of that length). */
export function split(t: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis('split', axis, t.ndim);
  const n = t.shape[a]!;
  let parts: number[];
  if (typeof sizes === 'number') {
    if (sizes <= 0) throw new Error(`split: size ${sizes} must be positive`);
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else parts = sizes.slice();
  if (parts.reduce((x, y) => x + y, 0) !== n) throw new Error(`split: sizes [${parts.join(', ')}] do not sum to ${n} (axis ${axis} of ${fmt(t.shape)})`);
  const out: Tensor[] = [];
  let s = 0;
  for (const p of parts) {
    out.push(slice(t, a, s, s + p));
    s += p;
  }
  return out;
}

export function chunk(t: Tensor, chunks: number, axis = 0): Tensor[] {
  const n = t.shape[normAxis('chunk', axis, t.ndim)]!;
  return split(t, Math.ceil(n / chunks), axis);
}

export function stack(ts: readonly Tensor[], axis = 0): Tensor {
  if (ts.length === 0) throw new Error('stack: no tensors');
  const a = normAxis('stack', axis, ts[0]!.ndim + 1);
  const us = ts.map((t) => unsqueeze(t, a));
  const out = concat(us, a);
  for (const u of us) u.dispose();
  return out;
}

/** Selects entries along axis by an i32 index tensor [m] -> shape with axis size m. */
export function indexSelect(t: Tensor, axis: number, index: Tensor): Tensor {
  assertF32('indexSelect', t);
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-D, got ${index.describe()}`);
  const a = normAxis('indexSelect', axis, t.ndim);
  const outer = numel(t.shape.slice(0, a)), n = t.shape[a]!, inner = numel(t.shape.slice(a + 1));
  const idx = denseI32(index, 'indexSelect');
  const shape = t.shape.slice();
  shape[a] = idx.length;
  const out = empty(shape);
  backend().indexSelect(denseData(t), idx, out.data, outer, n, inner);
  return record('indexSelect', [t], out, [], (g) => {
    const gx = zeros(t.shape);
    backend().indexAdd(denseData(g), idx, gx.data, outer, n, inner);
    return [gx];
  });
}

/** torch.gather: out[..., i, ...] = t[..., index[..., i, ...], ...] along axis; index has t's rank. */
export function gather(t: Tensor, axis: number, index: Tensor): Tensor {
  assertF32('gather', t);
  const a = normAxis('gather', axis, t.ndim);
  if (index.ndim !== t.ndim || index.shape.some((d, i) => i !== a && d !== t.shape[i])) {
    throw new Error(`gather: index ${fmt(index.shape)} must match input ${fmt(t.shape)} outside axis ${axis}`);
  }
  const outer = numel(t.shape.slice(0, a)), n = t.shape[a]!, m = index.shape[a]!, inner = numel(t.shape.slice(a + 1));
  const idx = denseI32(index, 'gather');
  const out = empty(index.shape);
  backend().gather(denseData(t), idx, out.data, outer, n, m, inner);
  return record('gather', [t], out, [], (g) => {
    const gx = zeros(t.shape);
    backend().scatterAdd(denseData(g), idx, gx.data, outer, n, m, inner);
    return [gx];
  });
}
