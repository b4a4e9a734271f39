// Neural-network ops backed by fused kernels: softmax, norms, RoPE, attention, losses,
// embedding lookup, cumsum and top-k.

import { backend, type AttentionArgs } from '../backend.ts';
import { record } from '../autograd.ts';
import { broadcastStrides, fmt, normAxis, numel, shapeEq } from '../shape.ts';
import { empty, Tensor } from '../tensor.ts';
import { assertF32, denseData, denseI32, denseU8, zeros } from './core.ts';
import { permute } from './shape.ts';

/** Applies fn to x with `axis` moved last (and moves it back), for last-axis kernels. */
function alongLast(x: Tensor, axis: number, fn: (t: Tensor) => Tensor): Tensor {
  const a = normAxis('softmax', axis, x.ndim);
  if (a === x.ndim - 1) return fn(x);
  const perm = x.shape.map((_, i) => i);
  perm.splice(a, 1);
  perm.push(a);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  const xt = permute(x, perm);
  const y = fn(xt);
  const out = permute(y, inv);
  xt.dispose();
  y.dispose();
  return out;
}

function softmaxImpl(x: Tensor, log: boolean): Tensor {
  assertF32(log ? 'logSoftmax' : 'softmax', x);
  const n = x.shape[x.ndim - 1] ?? 1;
  const rows = n === 0 ? 0 : x.size / n;
  const out = empty(x.shape);
  backend().softmax(denseData(x), out.data, rows, n, log);
  return record(log ? 'logSoftmax' : 'softmax', [x], out, [out], (g, [y]) => {
    const gx = empty(x.shape);
    backend().softmaxBackward(y!.data, denseData(g), gx.data, rows, n, log);
    return [gx];
  });
}

export function softmax(x: Tensor, axis = -1): Tensor {
  return alongLast(x, axis, (t) => softmaxImpl(t, false));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return alongLast(x, axis, (t) => softmaxImpl(t, true));
}

/** LayerNorm over the last dim; weight/bias [n] optional (biased variance, as PyTorch). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  assertF32('layerNorm', x);
  const n = x.shape[x.ndim - 1]!;
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p !== null && (p.ndim !== 1 || p.shape[0] !== n)) throw new Error(`layerNorm: ${name} ${fmt(p.shape)} does not match last dim of ${fmt(x.shape)}`);
  }
  const rows = x.size / n;
  const out = empty(x.shape);
  const mean = empty([rows]), rstd = empty([rows]);
  backend().layerNorm(denseData(x), weight && denseData(weight), bias && denseData(bias), out.data, mean.data, rstd.data, rows, n, eps);
  const inputs = [x, weight, bias].filter((t): t is Tensor => t !== null);
  const res = record('layerNorm', inputs, out, [x, ...(weight ? [weight] : []), mean, rstd], (g, saved) => {
    const sx = saved[0]!, sw = weight ? saved[1]! : null, sm = saved[weight ? 2 : 1]!, sr = saved[weight ? 3 : 2]!;
    const gx = empty(x.shape);
    const gw = weight ? zeros([n]) : null, gb = bias ? zeros([n]) : null;
    backend().layerNormBackward(denseData(sx), sw && denseData(sw), sm.data, sr.data, denseData(g), gx.data, gw && gw.data, gb && gb.data, rows, n);
    return [gx, ...(gw ? [gw] : []), ...(gb ? [gb] : [])];
  });
  mean.dispose();
  rstd.dispose();
  return res;
}

/** RMSNorm over the last dim (HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  assertF32('rmsNorm', x);
  const n = x.shape[x.ndim - 1]!;
  if (weight !== null && (weight.ndim !== 1 || weight.shape[0] !== n)) throw new Error(`rmsNorm: weight ${fmt(weight.shape)} does not match last dim of ${fmt(x.shape)}`);
  const rows = x.size / n;
  const out = empty(x.shape);
  const rstd = empty([rows]);
  backend().rmsNorm(denseData(x), weight && denseData(weight), out.data, rstd.data, rows, n, eps);
  const inputs = weight ? [x, weight] : [x];
  const res = record('rmsNorm', inputs, out, weight ? [x, weight, rstd] : [x, rstd], (g, saved) => {
    const sx = saved[0]!, sw = weight ? saved[1]! : null, sr = saved[weight ? 2 : 1]!;
    const gx = empty(x.shape);
    const gw = weight ? zeros([n]) : null;
    backend().rmsNormBackward(denseData(sx), sw && denseData(sw), sr.data, denseData(g), gx.data, gw && gw.data, rows, n);
    return gw ? [gx, gw] : [gx];
  });
  rstd.dispose();
  return res;
}

export interface RopeOptions {
  /** Pairs (2i, 2i+1) as Meta's checkpoints; default false = HF rotate_half (i, i + rot/2). */
  interleaved?: boolean;
}

/**
 * Rotary position embedding on x [B, ..., T, D]. cos/sin hold the angles per position: [T, rot/2]
 * shared by the batch, or [B, T, rot/2] per batch row (left-padded batches). rot <= D; channels
 * past rot pass through.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, opts: RopeOptions = {}): Tensor {
  assertF32('rope', x, cos, sin);
  const T = x.shape[x.ndim - 2]!, D = x.shape[x.ndim - 1]!;
  const batched = cos.ndim === 3;
  const Bc = batched ? cos.shape[0]! : 1;
  if ((cos.ndim !== 2 && cos.ndim !== 3) || cos.shape[cos.ndim - 2] !== T || !shapeEq(cos.shape, sin.shape) || (batched && (x.ndim < 3 || x.shape[0] !== Bc))) {
    throw new Error(`rope: cos ${fmt(cos.shape)} / sin ${fmt(sin.shape)} must both be [T=${T}, rot/2] or [B, T, rot/2] for x ${fmt(x.shape)}`);
  }
  const rot = cos.shape[cos.ndim - 1]! * 2;
  if (rot > D) throw new Error(`rope: rotary dim ${rot} exceeds head dim ${D}`);
  const N = x.size / (T * D) / Bc; // rows per table
  const interleaved = opts.interleaved ?? false;
  const cd = denseData(cos), sd = denseData(sin);
  const tab = T * (rot / 2), chunk = N * T * D;
  const apply = (src: Float32Array, dst: Float32Array, inverse: boolean): void => {
    if (!batched) { backend().rope(src, dst, cd, sd, N, T, D, rot, interleaved, inverse); return; }
    for (let b = 0; b < Bc; b++) {
      backend().rope(src.subarray(b * chunk, (b + 1) * chunk), dst.subarray(b * chunk, (b + 1) * chunk), cd.subarray(b * tab, (b + 1) * tab), sd.subarray(b * tab, (b + 1) * tab), N, T, D, rot, interleaved, inverse);
    }
  };
  const out = empty(x.shape);
  apply(denseData(x), out.data, false);
  return record('rope', [x], out, [], (g) => {
    const gx = empty(x.shape);
    apply(denseData(g), gx.data, true);
    return [gx];
  });
}

export interface AttentionOptions {
  causal?: boolean;
  /** Bool mask broadcastable to [B, H, Tq, Tk]; true = may attend. */
  mask?: Tensor | null;
  /** Default 1/sqrt(D). */
  scale?: number;
}

/**
 * Scaled dot-product attention, fused: q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]
 * -> [B, H, Tq, Dv]. Grouped-query when Hkv < H. A query row with no visible key returns 0.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  assertF32('attention', q, k, v);
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new Error(`attention: expected 4-D q/k/v [B, H, T, D], got ${fmt(q.shape)}, ${fmt(k.shape)}, ${fmt(v.shape)}`);
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const [Bk, Hkv, Tk, Dk] = k.shape as [number, number, number, number];
  const Dv = v.shape[3]!;
  if (Bk !== B || Dk !== D || v.shape[0] !== B || v.shape[1] !== Hkv || v.shape[2] !== Tk || Hkv === 0 || H % Hkv !== 0) {
    throw new Error(`attention: incompatible q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`);
  }
  let maskData: Uint8Array | null = null, msb = 0, msh = 0, msq = 0;
  const mask = opts.mask ?? null;
  if (mask !== null) {
    if (mask.dtype !== 'bool' && mask.dtype !== 'u8') throw new Error(`attention: mask must be bool, got ${mask.describe()}`);
    if (mask.ndim > 4 || mask.shape[mask.ndim - 1] !== Tk && mask.shape[mask.ndim - 1] !== 1) throw new Error(`attention: mask ${fmt(mask.shape)} does not broadcast to [${B}, ${H}, ${Tq}, ${Tk}]`);
    const target = [B, H, Tq, Tk];
    const st = broadcastStrides(mask.shape, mask.strides, target);
    mask.shape.forEach((d, i) => {
      const t = target[4 - mask.ndim + i]!;
      if (d !== 1 && d !== t) throw new Error(`attention: mask ${fmt(mask.shape)} does not broadcast to [${B}, ${H}, ${Tq}, ${Tk}]`);
    });
    if (st[3] === 1) {
      maskData = mask.buffer() as Uint8Array;
      [msb, msh, msq] = [st[0]!, st[1]!, st[2]!];
      if (mask.offset !== 0) maskData = maskData.subarray(mask.offset);
    } else {
      // Materialise the last dim densely: [B', H', Tq', Tk].
      const dense = new Uint8Array(numel(mask.shape.slice(0, -1)) * Tk);
      const m = denseU8(mask, 'attention');
      const last = mask.shape[mask.ndim - 1]!;
      for (let r = 0; r < dense.length / Tk; r++) for (let j = 0; j < Tk; j++) dense[r * Tk + j] = m[r * last + (last === 1 ? 0 : j)]!;
      const shp = [...mask.shape.slice(0, -1), Tk];
      const ds = broadcastStrides(shp, shp.map((_, i) => numel(shp.slice(i + 1))), target);
      maskData = dense;
      [msb, msh, msq] = [ds[0]!, ds[1]!, ds[2]!];
    }
  }
  const qd = denseData(q), kd = denseData(k), vd = denseData(v);
  const args: AttentionArgs = {
    q: qd, k: kd, v: vd, B, H, Hkv, Tq, Tk, D, Dv,
    scale: opts.scale ?? 1 / Math.sqrt(D), causal: opts.causal ?? false,
    mask: maskData, maskStrideB: msb, maskStrideH: msh, maskStrideQ: msq,
  };
  const out = empty([B, H, Tq, Dv]);
  const lse = empty([B, H, Tq]);
  backend().attention(args, out.data, lse.data);
  const res = record('attention', [q, k, v], out, [out, lse], (g, [so, sl]) => {
    const gq = empty(q.shape), gk = empty(k.shape), gv = empty(v.shape);
    backend().attentionBackward(args, so!.data, sl!.data, denseData(g), gq.data, gk.data, gv.data);
    return [gq, gk, gv];
  });
  lse.dispose();
  return res;
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits [..., V] against i32 targets [...] (PyTorch F.cross_entropy with the
 * class dim last). 'mean' divides by the number of non-ignored targets.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  assertF32('crossEntropy', logits);
  const V = logits.shape[logits.ndim - 1]!;
  const rows = logits.size / V;
  if (targets.size !== rows || !shapeEq(targets.shape, logits.shape.slice(0, -1))) {
    throw new Error(`crossEntropy: targets ${fmt(targets.shape)} must match logits ${fmt(logits.shape)} without the class dim`);
  }
  const ignore = opts.ignoreIndex ?? -100, smoothing = opts.labelSmoothing ?? 0, reduction = opts.reduction ?? 'mean';
  if (!(smoothing >= 0 && smoothing <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${smoothing}`);
  const td = denseI32(targets, 'crossEntropy');
  const ld = denseData(logits);
  const losses = empty(targets.shape), lse = new Float32Array(rows);
  backend().crossEntropy(ld, td, losses.data, lse, rows, V, ignore, smoothing);
  let count = 0;
  for (let i = 0; i < rows; i++) if (td[i] !== ignore) count++;
  let out: Tensor;
  if (reduction === 'none') out = losses;
  else {
    let s = 0;
    const l = losses.data;
    for (let i = 0; i < rows; i++) s += l[i]!;
    out = empty([]);
    // PyTorch returns NaN for a mean over zero targets; we return 0 so a fully masked batch is harmless.
    out.data[0] = reduction === 'sum' ? s : count === 0 ? 0 : s / count;
    losses.dispose();
  }
  return record('crossEntropy', [logits], out, [logits], (g, [sl]) => {
    const gLoss = new Float32Array(rows);
    if (reduction === 'none') gLoss.set(denseData(g));
    else gLoss.fill(reduction === 'sum' ? g.data[0]! : count === 0 ? 0 : g.data[0]! / count);
    const gx = empty(logits.shape);
    backend().crossEntropyBackward(denseData(sl!), td, lse, gLoss, gx.data, rows, V, ignore, smoothing);
    return [gx];
  });
}

/** Rows of weight [V, D] selected by i32 ids [...] -> [..., D]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  assertF32('embedding', weight);
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be [V, D], got ${fmt(weight.shape)}`);
  const [V, D] = weight.shape as [number, number];
  const idx = denseI32(ids, 'embedding');
  for (let i = 0; i < idx.length; i++) {
    const t = idx[i]!;
    if (t < 0 || t >= V) throw new Error(`embedding: token id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
  }
  const out = empty([...ids.shape, D]);
  backend().indexSelect(denseData(weight), idx, out.data, 1, V, D);
  return record('embedding', [weight], out, [], (g) => {
    const gw = zeros(weight.shape);
    backend().indexAdd(denseData(g), idx, gw.data, 1, V, D);
    return [gw];
  });
}

/** Inclusive cumulative sum along axis. */
export function cumsum(x: Tensor, axis: number, reverse = false): Tensor {
  assertF32('cumsum', x);
  const a = normAxis('cumsum', axis, x.ndim);
  const outer = numel(x.shape.slice(0, a)), n = x.shape[a]!, inner = numel(x.shape.slice(a + 1));
  const out = empty(x.shape);
  backend().cumsum(denseData(x), out.data, outer, n, inner, reverse);
  return record('cumsum', [x], out, [], (g) => {
    const gx = empty(x.shape);
    backend().cumsum(denseData(g), gx.data, outer, n, inner, !reverse);
    return [gx];
  });
}

/** The k largest values along the last axis, sorted descending, and their i32 indices. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  assertF32('topk', x);
  const n = x.shape[x.ndim - 1]!;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`topk: k=${k} out of range for last dim ${n} of ${fmt(x.shape)}`);
  const rows = n === 0 ? 0 : x.size / n;
  const shape = [...x.shape.slice(0, -1), k];
  const values = empty(shape), indices = empty(shape, 'i32');
  backend().topk(denseData(x), rows, n, k, values.data, indices.i32);
  const ii = indices.i32;
  const v = record('topk', [x], values, [], (g) => {
    const gx = zeros(x.shape);
    backend().scatterAdd(denseData(g), ii, gx.data, rows, n, k, 1);
    return [gx];
  });
  return { values: v, indices };
}

