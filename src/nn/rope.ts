// Rotary position embeddings: inverse frequencies exactly as Hugging Face's
// _compute_{default,linear_scaling,dynamic_ntk,llama3}_parameters (f32 arithmetic, rounded
// step by step as torch does), and the cos/sin tables F.rope takes.
//
// Dims: T positions, B batch rows, R rotary dim (even, <= head dim), R/2 frequencies.

import { empty, type Tensor } from '../engine/tensor.ts';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface RopeSpec {
  /** rope_theta. */
  theta: number;
  /** Rotated channels per head: int(head_dim * partial_rotary_factor), even. */
  rotaryDim: number;
  /** max_position_embeddings (dynamic NTK rescales past it). */
  maxPositions: number;
  scaling: RopeScaling | null;
}

/** The getters of models/config.ts ConfigReader this module needs (nn cannot import models). */
export interface RopeConfigSource {
  readonly source: string;
  has(key: string): boolean;
  raw(key: string): unknown;
  num(key: string, def?: number, min?: number, max?: number): number;
  int(key: string, def?: number, min?: number, max?: number): number;
}

export const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

/**
 * rope_scaling (or the `rope_type` fields of rope_parameters) as HF reads it: `rope_type`, or the
 * legacy `type`, selects the method; 'default' means none. Unknown types throw naming the key.
 */
export function parseRopeScaling(r: RopeConfigSource): RopeScaling | null {
  const key = r.has('rope_type') ? 'rope_type' : 'type';
  const t = r.raw(key) ?? 'default';
  if (typeof t !== 'string' || !(ROPE_TYPES as readonly string[]).includes(t)) {
    throw new Error(`${r.source}: '${key}' must be one of ${ROPE_TYPES.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(t)} (yarn/longrope scaling is not supported)`);
  }
  if (t === 'default') return null;
  const factor = r.num('factor', undefined, 1);
  if (t === 'linear' || t === 'dynamic') return { type: t, factor };
  const lowFreqFactor = r.num('low_freq_factor', undefined, Number.MIN_VALUE);
  const highFreqFactor = r.num('high_freq_factor', undefined, Number.MIN_VALUE);
  if (!(highFreqFactor > lowFreqFactor)) throw new Error(`${r.source}: 'high_freq_factor' (${highFreqFactor}) must exceed 'low_freq_factor' (${lowFreqFactor})`);
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions: r.int('original_max_position_embeddings') };
}

const f = Math.fround;

/** 1 / theta^(2i / R) for i < R/2, in f32 as torch computes it. */
function defaultInvFreq(theta: number, R: number): Float32Array {
  const out = new Float32Array(R / 2);
  const base = f(theta);
  for (let i = 0; i < R / 2; i++) out[i] = f(1 / f(Math.pow(base, f((2 * i) / R))));
  return out;
}

/**
 * inv_freq [R/2] for a sequence of `seqLen` positions (seqLen only matters for dynamic NTK,
 * which grows the base once seqLen exceeds maxPositions).
 */
export function ropeInvFreq(spec: RopeSpec, seqLen = spec.maxPositions): Float32Array {
  const R = spec.rotaryDim, s = spec.scaling;
  if (!Number.isInteger(R) || R <= 0 || R % 2 !== 0) throw new Error(`rope: rotary dim must be a positive even integer, got ${R}`);
  if (s === null) return defaultInvFreq(spec.theta, R);
  switch (s.type) {
    case 'linear': {
      const inv = defaultInvFreq(spec.theta, R);
      const fac = f(s.factor);
      for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i]! / fac);
      return inv;
    }
    case 'dynamic': {
      const L = Math.max(seqLen, spec.maxPositions);
      const base = spec.theta * Math.pow((s.factor * L) / spec.maxPositions - (s.factor - 1), R / (R - 2));
      return defaultInvFreq(base, R);
    }
    case 'llama3': {
      const inv = defaultInvFreq(spec.theta, R);
      const old = s.originalMaxPositions;
      const lowWavelen = old / s.lowFreqFactor, highWavelen = old / s.highFreqFactor;
      const fac = f(s.factor), twoPi = f(2 * Math.PI), lo = f(s.lowFreqFactor), span = f(s.highFreqFactor - s.lowFreqFactor);
      for (let i = 0; i < inv.length; i++) {
        const x = inv[i]!;
        const wavelen = f(f(1 / x) * twoPi); // torch: 2π / t is reciprocal(t) * 2π
        if (wavelen < highWavelen) continue; // high frequency: unchanged
        if (wavelen > lowWavelen) { inv[i] = f(x / fac); continue; } // low frequency: divided
        const smooth = f(f(f(f(1 / wavelen) * f(old)) - lo) / span);
        inv[i] = f(f(f(f(1 - smooth) * x) / fac) + f(smooth * x));
      }
      return inv;
    }
  }
}

/** cos/sin tables for F.rope: [T, R/2] shared by the batch, or [B, T, R/2] per row. */
export interface RopeTables {
  cos: Tensor;
  sin: Tensor;
}

/**
 * Tables for integer positions: [T] (shape [T]) or per row [B, T] (shape [B, T]). Angles are
 * f32 products pos * inv_freq and cos/sin are rounded to f32, as HF's rotary embedding.
 * `scale` multiplies both (HF attention_scaling; 1 for every supported type).
 */
export function ropeTables(invFreq: Float32Array, positions: ArrayLike<number>, shape: readonly number[], scale = 1): RopeTables {
  const half = invFreq.length;
  const n = shape.reduce((a, b) => a * b, 1);
  if ((shape.length !== 1 && shape.length !== 2) || n !== positions.length) {
    throw new Error(`ropeTables: ${positions.length} positions do not fill shape [${shape.join(', ')}] ([T] or [B, T])`);
  }
  const cos = empty([...shape, half]), sin = empty([...shape, half]);
  const cd = cos.data, sd = sin.data;
  for (let p = 0; p < n; p++) {
    const pos = f(positions[p]!);
    for (let i = 0; i < half; i++) {
      const a = f(pos * invFreq[i]!);
      cd[p * half + i] = f(Math.cos(a)) * scale;
      sd[p * half + i] = f(Math.sin(a)) * scale;
    }
  }
  return { cos, sin };
}
