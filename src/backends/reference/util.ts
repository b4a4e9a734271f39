// Argument checks and strided addressing shared by the reference kernels.
// Every check throws Error("<kernel>: ...") naming the offending sizes.

export function fail(kernel: string, msg: string): never {
  throw new Error(`${kernel}: ${msg}`);
}

/** v must be a non-negative integer. */
export function checkDim(kernel: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) fail(kernel, `${name} must be a non-negative integer, got ${v}`);
}

/** v must be an integer >= 1. */
export function checkPos(kernel: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) fail(kernel, `${name} must be a positive integer, got ${v}`);
}

export function checkLen(kernel: string, name: string, buf: { readonly length: number }, expected: number): void {
  if (buf.length !== expected) fail(kernel, `${name} has length ${buf.length}, expected ${expected}`);
}

/** Product of the dims of `shape` (each validated). */
export function shapeNumel(kernel: string, shape: readonly number[]): number {
  let n = 1;
  for (let d = 0; d < shape.length; d++) {
    checkDim(kernel, `shape[${d}]`, shape[d]);
    n *= shape[d];
  }
  return n;
}

/**
 * Checks that every address off + sum_d idx_d * strides[d] (idx over `shape`) lies in [0, len).
 * Strides may be negative or 0. Nothing is addressed when the shape is empty.
 */
export function checkStrided(kernel: string, name: string, len: number, off: number, strides: readonly number[], shape: readonly number[]): void {
  if (strides.length !== shape.length) fail(kernel, `${name} has ${strides.length} strides for a rank-${shape.length} shape [${shape.join(', ')}]`);
  if (!Number.isInteger(off)) fail(kernel, `${name} offset must be an integer, got ${off}`);
  let lo = off;
  let hi = off;
  for (let d = 0; d < shape.length; d++) {
    if (!Number.isInteger(strides[d])) fail(kernel, `${name} stride[${d}] must be an integer, got ${strides[d]}`);
    if (shape[d] === 0) return;
    const span = strides[d] * (shape[d] - 1);
    if (span < 0) lo += span;
    else hi += span;
  }
  if (lo < 0 || hi >= len) {
    fail(kernel, `${name} (offset ${off}, strides [${strides.join(', ')}], shape [${shape.join(', ')}]) addresses [${lo}, ${hi}] outside a buffer of length ${len}`);
  }
}

/** Address of every element of `shape` in row-major order: off + sum_d idx_d * strides[d]. */
export function stridedOffsets(off: number, strides: readonly number[], shape: readonly number[]): Float64Array {
  let n = 1;
  for (const d of shape) n *= d;
  const res = new Float64Array(n);
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let o = off;
  for (let i = 0; i < n; i++) {
    res[i] = o;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      o += strides[d];
      if (idx[d] < shape[d]) break;
      o -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return res;
}

/** C pow semantics (as std::pow / PyTorch): pow(1, y) = 1 and pow(x, 0) = 1 even for NaN, pow(-1, +-inf) = 1. */
export function powC(x: number, y: number): number {
  if (x === 1 || y === 0) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return Math.pow(x, y);
}
