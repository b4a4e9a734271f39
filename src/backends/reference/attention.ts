// Scaled-dot-product attention (GQA, bottom-right causal, bool mask) and its backward from lse.

import type { AttentionArgs } from '../../engine/backend.ts';
import { checkDim, checkLen, checkPos, fail } from './util.ts';

function checkArgs(K: string, a: AttentionArgs): void {
  const { B, H, Hkv, Tq, Tk, D, Dv } = a;
  checkDim(K, 'B', B);
  checkPos(K, 'H', H);
  checkPos(K, 'Hkv', Hkv);
  checkDim(K, 'Tq', Tq);
  checkDim(K, 'Tk', Tk);
  checkDim(K, 'D', D);
  checkDim(K, 'Dv', Dv);
  if (H % Hkv !== 0) fail(K, `H = ${H} is not a multiple of Hkv = ${Hkv}`);
  if (!Number.isFinite(a.scale)) fail(K, `scale must be finite, got ${a.scale}`);
  checkLen(K, `q [${B}, ${H}, ${Tq}, ${D}]`, a.q, B * H * Tq * D);
  checkLen(K, `k [${B}, ${Hkv}, ${Tk}, ${D}]`, a.k, B * Hkv * Tk * D);
  checkLen(K, `v [${B}, ${Hkv}, ${Tk}, ${Dv}]`, a.v, B * Hkv * Tk * Dv);
  if (a.mask) {
    checkDim(K, 'maskStrideB', a.maskStrideB);
    checkDim(K, 'maskStrideH', a.maskStrideH);
    checkDim(K, 'maskStrideQ', a.maskStrideQ);
    if (B > 0 && Tq > 0 && Tk > 0) {
      const last = (B - 1) * a.maskStrideB + (H - 1) * a.maskStrideH + (Tq - 1) * a.maskStrideQ + Tk - 1;
      if (last >= a.mask.length) {
        fail(K, `mask (strides B ${a.maskStrideB}, H ${a.maskStrideH}, Q ${a.maskStrideQ}) needs index ${last} for [${B}, ${H}, ${Tq}, ${Tk}] but has length ${a.mask.length}`);
      }
    }
  }
}

/** Whether query i of (b, h) may see key j. */
function visible(a: AttentionArgs, b: number, h: number, i: number, j: number): boolean {
  if (a.causal && j > i + (a.Tk - a.Tq)) return false;
  if (a.mask && a.mask[b * a.maskStrideB + h * a.maskStrideH + i * a.maskStrideQ + j] === 0) return false;
  return true;
}

/** s_j = scale * q_i . k_j and vis_j for every key; returns the number of visible keys. */
function scores(a: AttentionArgs, b: number, h: number, i: number, s: Float64Array, vis: Uint8Array): number {
  const { H, Hkv, Tq, Tk, D } = a;
  const kvh = Math.floor(h / (H / Hkv));
  const qo = ((b * H + h) * Tq + i) * D;
  let count = 0;
  for (let j = 0; j < Tk; j++) {
    vis[j] = visible(a, b, h, i, j) ? 1 : 0;
    if (vis[j] === 0) continue;
    count++;
    const ko = ((b * Hkv + kvh) * Tk + j) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += a.q[qo + d] * a.k[ko + d];
    s[j] = a.scale * dot;
  }
  return count;
}

/** out_i = sum_j softmax_j(s) v_j over visible keys; lse_i = log sum_j exp(s_j). Rows with no visible key: 0, -Infinity. */
export function attention(args: AttentionArgs, out: Float32Array, lse: Float32Array): void {
  const K = 'attention';
  checkArgs(K, args);
  const { B, H, Hkv, Tq, Tk, Dv } = args;
  checkLen(K, `out [${B}, ${H}, ${Tq}, ${Dv}]`, out, B * H * Tq * Dv);
  checkLen(K, `lse [${B}, ${H}, ${Tq}]`, lse, B * H * Tq);
  const s = new Float64Array(Tk);
  const vis = new Uint8Array(Tk);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i;
        if (scores(args, b, h, i, s, vis) === 0) {
          lse[row] = -Infinity;
          out.fill(0, row * Dv, (row + 1) * Dv);
          continue;
        }
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) if (vis[j] !== 0) mx = Math.max(mx, s[j]);
        acc.fill(0);
        let l = 0;
        for (let j = 0; j < Tk; j++) {
          if (vis[j] === 0) continue;
          const p = Math.exp(s[j] - mx);
          l += p;
          const vo = ((b * Hkv + kvh) * Tk + j) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += p * args.v[vo + d];
        }
        lse[row] = mx + Math.log(l);
        for (let d = 0; d < Dv; d++) out[row * Dv + d] = acc[d] / l;
      }
    }
  }
}

/**
 * With P_ij = exp(s_ij - lse_i) on visible keys, dP_ij = gOut_i . v_j, Delta_i = gOut_i . out_i,
 * dS_ij = P_ij (dP_ij - Delta_i): gq_i = scale sum_j dS_ij k_j, gk_j = scale sum_i dS_ij q_i,
 * gv_j = sum_i P_ij gOut_i; gk/gv summed over the query heads that share a kv head.
 */
export function attentionBackward(args: AttentionArgs, out: Float32Array, lse: Float32Array, gOut: Float32Array, gq: Float32Array, gk: Float32Array, gv: Float32Array): void {
  const K = 'attentionBackward';
  checkArgs(K, args);
  const { B, H, Hkv, Tq, Tk, D, Dv, q, k, v, scale } = args;
  checkLen(K, `out [${B}, ${H}, ${Tq}, ${Dv}]`, out, B * H * Tq * Dv);
  checkLen(K, `lse [${B}, ${H}, ${Tq}]`, lse, B * H * Tq);
  checkLen(K, `gOut [${B}, ${H}, ${Tq}, ${Dv}]`, gOut, B * H * Tq * Dv);
  checkLen(K, `gq [${B}, ${H}, ${Tq}, ${D}]`, gq, B * H * Tq * D);
  checkLen(K, `gk [${B}, ${Hkv}, ${Tk}, ${D}]`, gk, B * Hkv * Tk * D);
  checkLen(K, `gv [${B}, ${Hkv}, ${Tk}, ${Dv}]`, gv, B * Hkv * Tk * Dv);
  const gkAcc = new Float64Array(gk.length);
  const gvAcc = new Float64Array(gv.length);
  const gqRow = new Float64Array(D);
  const s = new Float64Array(Tk);
  const vis = new Uint8Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < Tq; i++) {
        const row = (b * H + h) * Tq + i;
        const qo = row * D;
        const oo = row * Dv;
        gqRow.fill(0);
        const L = lse[row];
        if (L !== -Infinity) {
          scores(args, b, h, i, s, vis);
          let delta = 0;
          for (let d = 0; d < Dv; d++) delta += gOut[oo + d] * out[oo + d];
          for (let j = 0; j < Tk; j++) {
            if (vis[j] === 0) continue;
            const p = Math.exp(s[j] - L);
            const ko = ((b * Hkv + kvh) * Tk + j) * D;
            const vo = ((b * Hkv + kvh) * Tk + j) * Dv;
            let dp = 0;
            for (let d = 0; d < Dv; d++) {
              dp += gOut[oo + d] * v[vo + d];
              gvAcc[vo + d] += p * gOut[oo + d];
            }
            const ds = p * (dp - delta);
            for (let d = 0; d < D; d++) {
              gqRow[d] += scale * ds * k[ko + d];
              gkAcc[ko + d] += scale * ds * q[qo + d];
            }
          }
        }
        for (let d = 0; d < D; d++) gq[qo + d] = gqRow[d];
      }
    }
  }
  for (let i = 0; i < gk.length; i++) gk[i] = gkAcc[i];
  for (let i = 0; i < gv.length; i++) gv[i] = gvAcc[i];
}
