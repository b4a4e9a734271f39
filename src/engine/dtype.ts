// Storage dtypes. Compute is f32; f16/bf16/i8/u8 are storage formats converted on load;
// i32 holds indices, bool (u8 0/1) holds masks.

export const DTypes = {
  f32: { bytes: 4 },
  f16: { bytes: 2 },
  bf16: { bytes: 2 },
  i32: { bytes: 4 },
  i8: { bytes: 1 },
  u8: { bytes: 1 },
  bool: { bytes: 1 },
} as const;

export type DType = keyof typeof DTypes;

export type DataFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'i32'
    ? Int32Array
    : D extends 'f16' | 'bf16'
      ? Uint16Array
      : D extends 'i8'
        ? Int8Array
        : Uint8Array;

export type AnyData = Float32Array | Int32Array | Uint16Array | Int8Array | Uint8Array;

export function allocData(dtype: DType, n: number): AnyData {
  switch (dtype) {
    case 'f32': return new Float32Array(n);
    case 'i32': return new Int32Array(n);
    case 'f16': case 'bf16': return new Uint16Array(n);
    case 'i8': return new Int8Array(n);
    case 'u8': case 'bool': return new Uint8Array(n);
  }
}

export function isDType(s: string): s is DType {
  return Object.hasOwn(DTypes, s);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits -> f32 (exact). */
export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** f32 -> bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits -> f32 (exact, subnormals included). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 -> IEEE half bits, round to nearest even, overflow to inf. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  let m = b & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let ne = e - 127 + 15;
  if (ne >= 31) return sign | 0x7c00;
  if (ne <= 0) {
    if (ne < -10) return sign;
    m |= 0x800000;
    const shift = 14 - ne;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r;
  }
  let r = m >>> 13;
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; ne++; if (ne >= 31) return sign | 0x7c00; }
  }
  return sign | (ne << 10) | r;
}

/** Converts any storage array to f32 values. */
export function toF32(dtype: DType, src: AnyData): Float32Array {
  const out = new Float32Array(src.length);
  if (dtype === 'f16') for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]!);
  else if (dtype === 'bf16') for (let i = 0; i < src.length; i++) out[i] = bf16ToF32(src[i]!);
  else out.set(src as ArrayLike<number>);
  return out;
}

/** Converts f32 values to a storage dtype (ints truncate toward zero, like a C cast). */
export function fromF32(dtype: DType, src: Float32Array): AnyData {
  const out = allocData(dtype, src.length);
  if (dtype === 'f16') for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]!);
  else if (dtype === 'bf16') for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]!);
  else if (dtype === 'bool') for (let i = 0; i < src.length; i++) out[i] = src[i] !== 0 ? 1 : 0;
  else out.set(src);
  return out;
}
