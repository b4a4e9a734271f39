// Attention over a KV cache without copying it: the cache keeps each (row, kv head) as a
// contiguous [C, Dh] block, so the fused kernel runs once per (row, kv head) on zero-copy
// subarrays holding the filled prefix [n, Dh], with that head's query group [G, Tq, Dh].
// Inference only (records no gradient); training and graph-carrying steps use F.attention.
//
// Dims: B batch, H query heads, Hkv kv heads, G = H / Hkv, Tq new queries, C cache capacity,
// n filled slots (keys visible to the step), Dh head dim.

import { isGradEnabled } from '../engine/autograd.ts';
import { backend, type AttentionArgs } from '../engine/backend.ts';
import { denseData } from '../engine/ops/index.ts';
import { empty, type Tensor } from '../engine/tensor.ts';

/** A u8 visibility mask read as mask[b * strideB + i * strideQ + j] (1 = may attend, j < n). */
export interface SlotMask {
  data: Uint8Array;
  strideB: number;
  strideQ: number;
}

export interface CachedAttentionOptions {
  /** Query i (of Tq) sees slot j iff j <= i + n - Tq (the new queries are the last Tq slots). */
  causal: boolean;
  mask?: SlotMask | null;
  /** Default 1/sqrt(Dh). */
  scale?: number;
}

/**
 * q [B, H, Tq, Dh] against slots [0, n) of kBuf, vBuf [B, Hkv, C, Dh] -> [B, H, Tq, Dh].
 * A query with no visible slot returns 0.
 */
export function cachedAttention(q: Tensor, kBuf: Tensor, vBuf: Tensor, n: number, opts: CachedAttentionOptions): Tensor {
  if (isGradEnabled() && q.requiresGrad) throw new Error('cachedAttention: records no gradient; use F.attention (or run under noGrad)');
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const [Bk, Hkv, C, Dk] = kBuf.shape as [number, number, number, number];
  const Dv = vBuf.shape[3]!;
  if (q.ndim !== 4 || kBuf.ndim !== 4 || vBuf.ndim !== 4 || Bk !== B || Dk !== D || Hkv < 1 || H % Hkv !== 0 ||
      vBuf.shape[0] !== B || vBuf.shape[1] !== Hkv || vBuf.shape[2] !== C || !kBuf.contiguous || !vBuf.contiguous) {
    throw new Error(`cachedAttention: q ${q.describe()} does not match dense cache buffers k ${kBuf.describe()}, v ${vBuf.describe()}`);
  }
  if (!Number.isInteger(n) || n < 0 || n > C) throw new Error(`cachedAttention: ${n} filled slots out of range [0, ${C}]`);
  const mask = opts.mask ?? null;
  if (mask !== null) {
    const last = (B - 1) * mask.strideB + (Tq - 1) * mask.strideQ + n - 1;
    if (B > 0 && Tq > 0 && n > 0 && last >= mask.data.length) throw new Error(`cachedAttention: mask of ${mask.data.length} entries is too short for [${B}, ${Tq}, ${n}]`);
  }
  const G = H / Hkv;
  const out = empty([B, H, Tq, Dv]);
  if (out.size === 0) return out;
  const qd = denseData(q), kd = kBuf.data, vd = vBuf.data, od = out.data;
  const lse = new Float32Array(G * Tq);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++) {
    const m = mask === null ? null : mask.data.subarray(b * mask.strideB);
    for (let hk = 0; hk < Hkv; hk++) {
      const qo = (b * H + hk * G) * Tq, kvo = (b * Hkv + hk) * C;
      const args: AttentionArgs = {
        q: qd.subarray(qo * D, (qo + G * Tq) * D),
        k: kd.subarray(kvo * D, (kvo + n) * D),
        v: vd.subarray(kvo * Dv, (kvo + n) * Dv),
        B: 1, H: G, Hkv: 1, Tq, Tk: n, D, Dv, scale, causal: opts.causal,
        mask: m, maskStrideB: 0, maskStrideH: 0, maskStrideQ: mask === null ? 0 : mask.strideQ,
      };
      backend().attention(args, od.subarray(qo * Dv, (qo + G * Tq) * Dv), lse);
    }
  }
  return out;
}
