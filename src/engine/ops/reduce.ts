// Reductions over one or more axes, and arg-reductions.

import { backend, type ReduceOp } from '../backend.ts';
import { record } from '../autograd.ts';
import { normAxis, numel } from '../shape.ts';
import { empty, fromData, Tensor } from '../tensor.ts';
import { assertF32, denseData, zeros } from './core.ts';
import { expand, reshape } from './shape.ts';
import { scale } from './elementwise.ts';

function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(op, a, rank)))];
  return out.sort((x, y) => x - y);
}

/** One axis of a dense array viewed [outer, n, inner]. */
function reduceOne(op: ReduceOp, x: Float32Array, shape: number[], axis: number): Float32Array {
  const outer = numel(shape.slice(0, axis)), n = shape[axis]!, inner = numel(shape.slice(axis + 1));
  const out = new Float32Array(outer * inner);
  backend().reduce(op, x, outer, n, inner, out);
  return out;
}

function reduceRaw(op: ReduceOp, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  assertF32(op, x);
  let data = denseData(x);
  const shape = x.shape.slice();
  // Reduce the highest axis first so lower axis indices stay valid.
  for (let i = axes.length - 1; i >= 0; i--) {
    const a = axes[i]!;
    if (shape[a] === 0 && op !== 'sum') throw new Error(`${op}: cannot reduce an empty axis ${a} of ${x.describe()}`);
    data = reduceOne(op, data, shape, a);
    shape[a] = 1;
  }
  const outShape = keepdim ? shape : shape.filter((_, i) => !axes.includes(i));
  // Each reduction wrote a fresh array; with no axes `data` may still be x's own storage.
  if (axes.length > 0) return fromData(data, outShape);
  const out = empty(outShape);
  out.data.set(data);
  return out;
}

/** Sum over axes (all by default). */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normAxes('sum', axes, x.ndim);
  const out = reduceRaw('sum', x, ax, keepdim);
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  return record('sum', [x], out, [], (g) => {
    const gk = reshape(g, kept);
    const e = expand(gk, x.shape);
    gk.dispose();
    return [e];
  });
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normAxes('mean', axes, x.ndim);
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  const s = sum(x, ax, keepdim);
  const out = scale(s, 1 / n);
  s.dispose();
  return out;
}

/** Max (or min) along one axis; the gradient goes to the first extreme element. */
function extreme(op: 'max' | 'min', x: Tensor, axis: number, keepdim: boolean): Tensor {
  const a = normAxis(op, axis, x.ndim);
  const out = reduceRaw(op, x, [a], keepdim);
  const outer = numel(x.shape.slice(0, a)), n = x.shape[a]!, inner = numel(x.shape.slice(a + 1));
  return record(op, [x], out, [x], (g, [sx]) => {
    const idx = argReduce(op === 'max' ? 'argmax' : 'argmin', sx!, a, true);
    const gx = zeros(x.shape);
    backend().scatterAdd(denseData(g), idx.i32, gx.data, outer, n, 1, inner);
    idx.dispose();
    return [gx];
  });
}

export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  return extreme('max', x, axis, keepdim);
}

export function min(x: Tensor, axis: number, keepdim = false): Tensor {
  return extreme('min', x, axis, keepdim);
}

function argReduce(op: 'argmax' | 'argmin', x: Tensor, axis: number, keepdim: boolean): Tensor {
  assertF32(op, x);
  const a = normAxis(op, axis, x.ndim);
  const outer = numel(x.shape.slice(0, a)), n = x.shape[a]!, inner = numel(x.shape.slice(a + 1));
  if (n === 0) throw new Error(`${op}: axis ${axis} of ${x.describe()} is empty`);
  const shape = keepdim ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  const out = empty(shape, 'i32');
  backend().argReduce(op, denseData(x), outer, n, inner, out.i32);
  return out;
}

/** Index of the first maximum along axis (i32). */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  return argReduce('argmax', x, axis, keepdim);
}

export function argmin(x: Tensor, axis = -1, keepdim = false): Tensor {
  return argReduce('argmin', x, axis, keepdim);
}
