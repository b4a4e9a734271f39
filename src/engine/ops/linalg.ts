// Matrix products. Transposed views reach the GEMM kernel as transpose flags, not copies.

import { backend } from '../backend.ts';
import { record } from '../autograd.ts';
import { broadcastShapes, broadcastStrides, collapseDims, fmt, numel } from '../shape.ts';
import { empty, Tensor } from '../tensor.ts';
import { assertF32, contiguous, denseData } from './core.ts';
import { sumTo } from './elementwise.ts';
import { expand, reshape, transpose } from './shape.ts';

interface MatOperand {
  buf: Float32Array; off: number; trans: boolean; ld: number; batchStride: number;
  owned: Tensor | null; // a copy made for the call, disposed after it
}

/** Describes the last two dims of t (broadcast to `batch`) as a GEMM operand, copying only if needed. */
function operand(t: Tensor, batch: number[], rows: number, cols: number): MatOperand {
  const r = t.ndim;
  const sr = t.strides[r - 2]!, sc = t.strides[r - 1]!;
  const bshape = t.shape.slice(0, r - 2);
  const bstr = broadcastStrides(bshape, t.strides.slice(0, r - 2), batch);
  const nb = numel(batch);
  const c = collapseDims(batch, [bstr]);
  const batchOk = nb <= 1 || c.shape.length === 1;
  const batchStride = nb <= 1 ? 0 : c.strides[0]![0]!;
  const rowMajor = sc === 1 || cols === 1, colMajor = sr === 1 || rows === 1;
  if (batchOk && rowMajor && (rows === 1 || sr >= cols)) {
    return { buf: t.buffer() as Float32Array, off: t.offset, trans: false, ld: rows === 1 ? Math.max(cols, 1) : sr, batchStride, owned: null };
  }
  if (batchOk && colMajor && (cols === 1 || sc >= rows)) {
    return { buf: t.buffer() as Float32Array, off: t.offset, trans: true, ld: cols === 1 ? Math.max(rows, 1) : sc, batchStride, owned: null };
  }
  const e = expand(t, [...batch, rows, cols]);
  const owned = contiguous(e);
  e.dispose();
  return { buf: owned.data, off: 0, trans: false, ld: Math.max(cols, 1), batchStride: nb <= 1 ? 0 : rows * cols, owned };
}

/** Raw batched product a [..., M, K] @ b [..., K, N] -> new dense [...batch, M, N] (no graph). */
function matmulRaw(a: Tensor, b: Tensor): Tensor {
  const M = a.shape[a.ndim - 2]!, K = a.shape[a.ndim - 1]!, K2 = b.shape[b.ndim - 2]!, N = b.shape[b.ndim - 1]!;
  if (K !== K2) throw new Error(`matmul: inner dimensions differ: ${fmt(a.shape)} @ ${fmt(b.shape)}`);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = empty([...batch, M, N]);
  const nb = numel(batch);
  if (out.size === 0) return out;
  // A 2-D right operand against a dense batched left operand: one tall GEMM.
  if (b.ndim === 2 && a.ndim > 2 && a.contiguous) {
    const a2 = reshape2(a, nb * M, K);
    const A = operand(a2, [], nb * M, K), B = operand(b, [], K, N);
    gemm(A, B, out.data, nb * M, N, K, 1);
    free(A, B);
    a2.dispose();
    return out;
  }
  const A = operand(a, batch, M, K), B = operand(b, batch, K, N);
  gemm(A, B, out.data, M, N, K, nb);
  free(A, B);
  return out;
}

function reshape2(t: Tensor, r: number, c: number): Tensor {
  // A zero-copy 2-D view of a contiguous tensor (no graph); the caller disposes it.
  t.storage.retain();
  return new Tensor(t.storage, [r, c], [c, 1], t.offset);
}

function free(...ops: MatOperand[]): void {
  for (const o of ops) o.owned?.dispose();
}

function gemm(A: MatOperand, B: MatOperand, c: Float32Array, m: number, n: number, k: number, batch: number): void {
  if (k === 0) { c.fill(0); return; }
  backend().gemm({
    transA: A.trans, transB: B.trans, m, n, k, alpha: 1, beta: 0,
    a: A.buf, aOff: A.off, lda: A.ld, strideA: A.batchStride,
    b: B.buf, bOff: B.off, ldb: B.ld, strideB: B.batchStride,
    c, cOff: 0, ldc: n, strideC: m * n, batch,
  });
}

/**
 * Matrix product with PyTorch semantics: 1-D operands are promoted (and the added dim
 * removed), batch dims broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  assertF32('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: scalar operand (${fmt(a.shape)} @ ${fmt(b.shape)})`);
  if (a.ndim === 1 || b.ndim === 1) {
    const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]!]) : a;
    const b2 = b.ndim === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
    const r = matmul(a2, b2);
    const shape = r.shape.slice();
    if (b.ndim === 1) shape.splice(shape.length - 1, 1);
    if (a.ndim === 1) shape.splice(shape.length - (b.ndim === 1 ? 1 : 2), 1);
    const out = reshape(r, shape);
    for (const t of [r, a2 !== a ? a2 : null, b2 !== b ? b2 : null]) t?.dispose();
    return out;
  }
  const out = matmulRaw(a, b);
  return record('matmul', [a, b], out, [a, b], (g, [sa, sb]) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) {
      const bt = transpose(sb!);
      const full = matmulRaw(g, bt);
      bt.dispose();
      ga = sumToOwned(full, a.shape);
    }
    if (b.requiresGrad) {
      if (b.ndim === 2 && a.ndim > 2) {
        // Sum over the batch inside one GEMM: [K, nb*M] @ [nb*M, N].
        const rows = numel(a.shape.slice(0, -1));
        const ac = contiguous(sa!), gc = contiguous(g);
        const a2 = reshape2(ac, rows, a.shape[a.ndim - 1]!), g2 = reshape2(gc, rows, g.shape[g.ndim - 1]!);
        const at = transpose(a2);
        gb = matmulRaw(at, g2);
        for (const t of [ac, gc, a2, g2, at]) t.dispose();
      } else {
        const at = transpose(sa!);
        gb = sumToOwned(matmulRaw(at, g), b.shape);
        at.dispose();
      }
    }
    return [ga, gb];
  });
}

function sumToOwned(t: Tensor, shape: readonly number[]): Tensor {
  if (t.ndim === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const r = sumTo(t, shape);
  t.dispose();
  return r;
}

/** y = x @ w^T + bias; x [..., in], w [out, in], bias [out] (the nn.Linear layout). */
export function linear(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  assertF32('linear', x, w);
  const inF = w.shape[1]!, outF = w.shape[0]!;
  if (w.ndim !== 2 || x.shape[x.ndim - 1] !== inF) throw new Error(`linear: input ${fmt(x.shape)} does not match weight ${fmt(w.shape)} ([out, in])`);
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== outF)) throw new Error(`linear: bias ${fmt(bias.shape)} does not match weight ${fmt(w.shape)}`);
  const rows = x.size / Math.max(inF, 1);
  const xd = denseData(x), wd = denseData(w);
  const out = empty([...x.shape.slice(0, -1), outF]); // [..., out]
  const od = out.data;
  if (bias !== null) {
    const bd = denseData(bias);
    for (let r = 0; r < rows; r++) od.set(bd, r * outF);
  }
  if (rows > 0 && outF > 0 && inF > 0) {
    backend().gemm({
      transA: false, transB: true, m: rows, n: outF, k: inF, alpha: 1, beta: bias === null ? 0 : 1,
      a: xd, aOff: 0, lda: inF, strideA: 0, b: wd, bOff: 0, ldb: inF, strideB: 0, c: od, cOff: 0, ldc: outF, strideC: 0, batch: 1,
    });
  }
  const inputs = bias === null ? [x, w] : [x, w, bias];
  return record('linear', inputs, out, [x, w], (g, [sx, sw]) => {
    const gd = denseData(g);
    let gx: Tensor | null = null, gw: Tensor | null = null, gb: Tensor | null = null;
    if (x.requiresGrad) {
      gx = empty(x.shape); // [..., in] = g [rows, out] @ w [out, in]
      backend().gemm({
        transA: false, transB: false, m: rows, n: inF, k: outF, alpha: 1, beta: 0,
        a: gd, aOff: 0, lda: outF, strideA: 0, b: denseData(sw!), bOff: 0, ldb: inF, strideB: 0, c: gx.data, cOff: 0, ldc: inF, strideC: 0, batch: 1,
      });
    }
    if (w.requiresGrad) {
      gw = empty(w.shape); // [out, in] = g^T [out, rows] @ x [rows, in]
      backend().gemm({
        transA: true, transB: false, m: outF, n: inF, k: rows, alpha: 1, beta: 0,
        a: gd, aOff: 0, lda: outF, strideA: 0, b: denseData(sx!), bOff: 0, ldb: inF, strideB: 0, c: gw.data, cOff: 0, ldc: inF, strideC: 0, batch: 1,
      });
    }
    if (bias !== null && bias.requiresGrad) {
      gb = empty([outF]);
      backend().reduce('sum', gd, 1, rows, outF, gb.data);
    }
    return bias === null ? [gx, gw] : [gx, gw, gb];
  });
}
