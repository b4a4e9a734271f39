// Tensor handles over reference-counted storage. A Tensor is a view (shape, strides, offset)
// of a Storage; views share storage. Ownership is explicit: `dispose()` (or `using`, or
// `tidy(fn)`) releases a handle; the storage is freed when its last handle goes.
// Autograd state (requiresGrad, grad, the node that made it) lives here; the tape is in autograd.ts.

import { allocData, type AnyData, type DType } from './dtype.ts';
import { contiguousStrides, fmt, isContiguous, numel, type Shape } from './shape.ts';

export class Storage {
  data: AnyData | null;
  refs = 1;
  readonly dtype: DType;
  constructor(dtype: DType, data: AnyData) {
    this.dtype = dtype;
    this.data = data;
    liveStorages++;
  }
  retain(): void {
    if (this.data === null) throw new Error('use of a released tensor buffer');
    this.refs++;
  }
  release(): void {
    if (this.data === null) return;
    if (--this.refs === 0) {
      this.data = null;
      liveStorages--;
    }
  }
}

let liveStorages = 0;
/** Number of storages not yet released (for leak tests). */
export function liveBuffers(): number {
  return liveStorages;
}

/** Backward node: produced `out` from `inputs`; `vjp` maps the output gradient to input gradients. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  vjp: ((g: Tensor) => (Tensor | null)[]) | null;
  /** Handles kept alive for the backward pass; released after it runs or when the graph is dropped. */
  saved: Tensor[];
  /** Live references: the output handle plus every downstream node that lists the output as input. */
  refs: number;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly storage: Storage;
  requiresGrad = false;
  grad: Tensor | null = null;
  node: GradNode | null = null;
  /** Optional name (parameter path) for error messages. */
  name = '';
  private disposed = false;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    this.storage = storage;
    this.shape = shape.slice();
    this.strides = strides ? strides.slice() : contiguousStrides(shape);
    this.offset = offset;
    trackInScope(this);
  }

  get dtype(): DType { return this.storage.dtype; }
  get ndim(): number { return this.shape.length; }
  get size(): number { return numel(this.shape); }
  get isDisposed(): boolean { return this.disposed; }
  /** Row-major with no gaps (the offset may be non-zero). */
  get contiguous(): boolean { return isContiguous(this.shape, this.strides); }

  /** The raw storage array (any layout). Throws on a released tensor. */
  buffer(): AnyData {
    const d = this.storage.data;
    if (d === null || this.disposed) throw new Error(`tensor ${this.describe()} was disposed`);
    return d;
  }

  /** The f32 values of a contiguous tensor, as a zero-copy view of its storage. */
  get data(): Float32Array {
    if (this.dtype !== 'f32') throw new Error(`tensor ${this.describe()}: expected f32 data, got ${this.dtype}`);
    return this.dense() as Float32Array;
  }

  /** i32 values of a contiguous index tensor. */
  get i32(): Int32Array {
    if (this.dtype !== 'i32') throw new Error(`tensor ${this.describe()}: expected i32 data, got ${this.dtype}`);
    return this.dense() as Int32Array;
  }

  /** u8 values of a contiguous bool/u8 tensor (masks). */
  get u8(): Uint8Array {
    if (this.dtype !== 'bool' && this.dtype !== 'u8') throw new Error(`tensor ${this.describe()}: expected bool data, got ${this.dtype}`);
    return this.dense() as Uint8Array;
  }

  private dense(): AnyData {
    if (!this.contiguous) throw new Error(`tensor ${this.describe()}: expected a contiguous tensor; call contiguous() first`);
    const buf = this.buffer();
    const n = this.size;
    return this.offset === 0 && buf.length === n ? buf : buf.subarray(this.offset, this.offset + n);
  }

  describe(): string {
    return `${this.name ? this.name + ' ' : ''}${fmt(this.shape)} ${this.dtype}`;
  }

  /** A new handle on the same view (shares storage). */
  share(): Tensor {
    this.storage.retain();
    const t = new Tensor(this.storage, this.shape, this.strides, this.offset);
    return t;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
    if (this.node !== null) releaseNode(this.node);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Frees what a node keeps for backward (idempotent); the node stays in the graph. */
export function spendNode(node: GradNode): void {
  for (const s of node.saved) s.dispose();
  node.saved = [];
  node.vjp = null;
}

/**
 * Drops one reference to a node. When none remain (its output was disposed and no live
 * downstream node needs it), its saved tensors go and the release cascades to its inputs.
 */
export function releaseNode(node: GradNode): void {
  if (--node.refs > 0) return;
  spendNode(node);
  for (const inp of node.inputs) if (inp.node !== null) releaseNode(inp.node);
}

/** A new dense tensor owning a fresh buffer. */
export function empty(shape: Shape, dtype: DType = 'f32'): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape ${fmt(shape)}`);
  }
  return new Tensor(new Storage(dtype, allocData(dtype, numel(shape))), shape);
}

/** Wraps an existing array (taking ownership) as a dense tensor. */
export function fromData(data: AnyData, shape: Shape, dtype?: DType): Tensor {
  const dt: DType = dtype ?? (data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'u8' : data instanceof Int8Array ? 'i8' : 'f16');
  if (data.length !== numel(shape)) throw new Error(`fromData: ${data.length} values do not fill shape ${fmt(shape)}`);
  return new Tensor(new Storage(dt, data), shape);
}

// ---- scopes --------------------------------------------------------------------------------

const scopes: Tensor[][] = [];

function trackInScope(t: Tensor): void {
  const s = scopes[scopes.length - 1];
  if (s !== undefined) s.push(t);
}

function collect(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 8 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) { out.add(v); return; }
  if (Array.isArray(v)) { for (const x of v) collect(x, out, depth + 1); return; }
  if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, depth + 1);
}

/**
 * Runs fn and disposes every tensor created inside it except those reachable from its
 * result (arrays and plain objects are searched) and those passed to `keep`. Returned
 * tensors move to the enclosing scope. Run forward and backward inside the same tidy.
 */
export function tidy<T>(fn: () => T): T {
  scopes.push([]);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    const s = scopes.pop()!;
    for (const t of s) if (!kept.has(t)) t.dispose();
    throw e;
  }
  const s = scopes.pop()!;
  const live = new Set<Tensor>();
  collect(result, live);
  const parent = scopes[scopes.length - 1];
  for (const t of s) {
    if (live.has(t) || kept.has(t)) {
      if (parent !== undefined && !kept.has(t)) parent.push(t);
    } else t.dispose();
  }
  return result;
}

const kept = new WeakSet<Tensor>();
/** Exempts a tensor from disposal by enclosing tidy scopes (parameters, caches). */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  return t;
}

/** Runs fn with tensors created inside it untracked by any scope (the caller owns them). */
export function untracked<T>(fn: () => T): T {
  const saved = scopes.splice(0, scopes.length);
  try {
    return fn();
  } finally {
    scopes.push(...saved);
  }
}
