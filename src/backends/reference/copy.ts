// Strided gather into a dense buffer (any element type).

import { checkLen, checkStrided, fail, shapeNumel, stridedOffsets } from './util.ts';

type Buf = Float32Array | Int32Array | Uint8Array;

/** dst[i] = src[offset + sum_d idx_d * strides[d]] over `shape` in row-major order. */
export function copyStrided<T extends Buf>(src: T, offset: number, shape: readonly number[], strides: readonly number[], dst: T): void {
  const K = 'copyStrided';
  if (Object.getPrototypeOf(src) !== Object.getPrototypeOf(dst)) {
    fail(K, `src (${src.constructor.name}) and dst (${dst.constructor.name}) element types differ`);
  }
  const n = shapeNumel(K, shape);
  checkLen(K, 'dst', dst, n);
  checkStrided(K, 'src', src.length, offset, strides, shape);
  const offs = stridedOffsets(offset, strides, shape);
  const s: Buf = src;
  const d: Buf = dst;
  for (let i = 0; i < n; i++) d[i] = s[offs[i]];
}
