// The kernel contract: every backend implements exactly these functions over flat typed arrays.
// Tensors, views, autograd and all logic live in TypeScript above this line; a backend only
// computes. All float buffers are Float32Array, index buffers Int32Array, masks Uint8Array (0/1).
// "Strides" are element strides; a stride of 0 broadcasts. Unless a stride argument says
// otherwise, buffers are dense row-major. Output buffers are fully overwritten unless the doc
// says "accumulates" (+=). Kernels validate lengths before touching memory and throw
// `Error("<kernel>: ...")` on bad arguments.

export const UnaryOps = [
  'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'reciprocal', 'sin', 'cos',
  'tanh', 'sigmoid', 'relu', 'gelu', 'gelu_tanh', 'quick_gelu', 'silu',
  // parameterised: p0/p1 as documented
  'scale', // y = x * p0
  'add_scalar', // y = x + p0
  'pow_scalar', // y = x ** p0
  'clamp', // y = min(max(x, p0), p1)
  'sign', // y = sign(x) (no gradient)
] as const;
export type UnaryOp = (typeof UnaryOps)[number];

export const BinaryOps = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
export type BinaryOp = (typeof BinaryOps)[number];
// Comparison ops write 1 or 0 as f32.

export type ReduceOp = 'sum' | 'max' | 'min';

export interface GemmArgs {
  /** C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], for b in [0, batch). */
  transA: boolean; // op(A) = A^T; A stored [K, M] with row stride lda
  transB: boolean; // op(B) = B^T; B stored [N, K] with row stride ldb
  m: number; n: number; k: number;
  alpha: number; beta: number; // beta 0 ignores C's previous contents (NaN included)
  a: Float32Array; aOff: number; lda: number; strideA: number; // strideA 0 = same A for every batch
  b: Float32Array; bOff: number; ldb: number; strideB: number;
  c: Float32Array; cOff: number; ldc: number; strideC: number;
  batch: number;
}

export interface AttentionArgs {
  // q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv]; H % Hkv == 0 (grouped-query:
  // query head h reads kv head floor(h / (H / Hkv))). out [B, H, Tq, Dv], lse [B, H, Tq].
  q: Float32Array; k: Float32Array; v: Float32Array;
  B: number; H: number; Hkv: number; Tq: number; Tk: number; D: number; Dv: number;
  scale: number;
  /** Causal: query i may see key j iff j <= i + (Tk - Tq) (bottom-right aligned, as KV caches need). */
  causal: boolean;
  /**
   * Optional boolean mask, 1 = may attend (PyTorch bool attn_mask semantics), indexed
   * mask[b*maskStrideB + h*maskStrideH + i*maskStrideQ + j]; strides may be 0 to broadcast.
   * Combined with `causal` by AND. A row with no visible key outputs 0 and has lse = -Infinity.
   */
  mask: Uint8Array | null; maskStrideB: number; maskStrideH: number; maskStrideQ: number;
}

export interface Conv2dGeom {
  // x [N, C, H, W]; kernel kh x kw; output [N, Cout, Ho, Wo] with
  // Ho = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1 (likewise Wo).
  C: number; H: number; W: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number;
  Ho: number; Wo: number;
}

export interface Pool2dGeom {
  // x [NC, H, W] -> y [NC, Ho, Wo]; PyTorch floor mode. Avg with countIncludePad as PyTorch.
  NC: number; H: number; W: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number;
  Ho: number; Wo: number; countIncludePad: boolean;
}

export type InterpMode = 'nearest' | 'bilinear' | 'bicubic';

export interface InterpGeom {
  // x [NC, H, W] -> y [NC, Ho, Wo]. PyTorch semantics: nearest uses src = floor(dst * scale)
  // (scale = H / Ho unless scaleH given as 1/scale_factor); bilinear and bicubic (A = -0.75,
  // clamped border taps) map with align_corners as PyTorch does.
  NC: number; H: number; W: number; Ho: number; Wo: number;
  mode: InterpMode; alignCorners: boolean;
  /** Optional source/dest ratio overrides (PyTorch passes 1/scale_factor when given). 0 = derive from sizes. */
  scaleH: number; scaleW: number;
}

export interface Backend {
  readonly name: 'reference' | 'native';
  /** Threads used by parallel kernels (1 or 2 here). */
  setThreads(n: number): void;
  getThreads(): number;

  gemm(args: GemmArgs): void;

  /** dst[i] = src[offset + sum_d idx_d * strides[d]] over `shape` in row-major order. Works for any element type. */
  copyStrided<T extends Float32Array | Int32Array | Uint8Array>(src: T, offset: number, shape: readonly number[], strides: readonly number[], dst: T): void;

  /** y = f(x) elementwise (y may alias x). */
  unary(op: UnaryOp, x: Float32Array, y: Float32Array, p0: number, p1: number): void;
  /** gx = gy * f'(x) (y = f(x) is passed for ops whose derivative uses it). Not defined for 'sign'. */
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, gy: Float32Array, gx: Float32Array, p0: number, p1: number): void;

  /** out[i] = a[..] op b[..] over `shape` (row-major) with per-operand offsets and strides. out may alias a dense a or b (in-place accumulate). */
  binary(op: BinaryOp, a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void;

  /** out = cond ? a : b over `shape`, each operand with its own offset and strides. */
  where(cond: Uint8Array, cOff: number, cStrides: readonly number[], a: Float32Array, aOff: number, aStrides: readonly number[], b: Float32Array, bOff: number, bStrides: readonly number[], shape: readonly number[], out: Float32Array): void;

  /** x viewed [outer, n, inner] -> out [outer, inner]. */
  reduce(op: ReduceOp, x: Float32Array, outer: number, n: number, inner: number, out: Float32Array): void;
  /** Index of the first max (or min) along n: x [outer, n, inner] -> out [outer, inner]. */
  argReduce(op: 'argmax' | 'argmin', x: Float32Array, outer: number, n: number, inner: number, out: Int32Array): void;
  /** sum of x[i]^2 accumulated in f64 (for gradient norms). */
  sumSquares(x: Float32Array): number;

  /** x [rows, n] -> y (softmax, or log_softmax when log). */
  softmax(x: Float32Array, y: Float32Array, rows: number, n: number, log: boolean): void;
  /** From the forward output y and gy: gx. */
  softmaxBackward(y: Float32Array, gy: Float32Array, gx: Float32Array, rows: number, n: number, log: boolean): void;

  /** y = (x - mean) * rstd * w + b over rows of n; w/b optional; writes mean, rstd [rows]. */
  layerNorm(x: Float32Array, w: Float32Array | null, b: Float32Array | null, y: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void;
  /** Writes gx; accumulates gw, gb (+=) when given. */
  layerNormBackward(x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, gb: Float32Array | null, rows: number, n: number): void;
  /** y = x * rsqrt(mean(x^2) + eps) * w (HF LlamaRMSNorm); w optional; writes rstd [rows]. */
  rmsNorm(x: Float32Array, w: Float32Array | null, y: Float32Array, rstd: Float32Array, rows: number, n: number, eps: number): void;
  rmsNormBackward(x: Float32Array, w: Float32Array | null, rstd: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array | null, rows: number, n: number): void;

  /**
   * Rotary embedding on x [N, T, D] (rows grouped by position t), rotating the first `rot`
   * channels (rot even, <= D; the rest pass through). cos/sin [T, rot/2] already hold the
   * positions. interleaved=false pairs (i, i + rot/2) as HF rotate_half; true pairs (2i, 2i+1).
   * inverse=true applies the transpose rotation (the backward pass). y may alias x.
   */
  rope(x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array, N: number, T: number, D: number, rot: number, interleaved: boolean, inverse: boolean): void;

  /** Fused scaled-dot-product attention forward. */
  attention(args: AttentionArgs, out: Float32Array, lse: Float32Array): void;
  /** Backward from out, lse and gOut; writes gq, gk, gv (gk/gv summed over the heads of each group). */
  attentionBackward(args: AttentionArgs, out: Float32Array, lse: Float32Array, gOut: Float32Array, gq: Float32Array, gk: Float32Array, gv: Float32Array): void;

  /** One image x [C, H, W] (at xOff) -> cols [C*kh*kw, Ho*Wo]. */
  im2col(x: Float32Array, xOff: number, g: Conv2dGeom, cols: Float32Array): void;
  /** Adjoint of im2col: accumulates cols into gx [C, H, W] at gxOff (+=). */
  col2im(cols: Float32Array, g: Conv2dGeom, gx: Float32Array, gxOff: number): void;
  /** Depthwise conv: x [N, C, H, W], w [C, 1, kh, kw], bias [C] or null -> y [N, C, Ho, Wo]. */
  depthwiseConv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, N: number, g: Conv2dGeom): void;
  /** Writes gx; accumulates gw (+=). */
  depthwiseConv2dBackward(x: Float32Array, w: Float32Array, gy: Float32Array, gx: Float32Array, gw: Float32Array, N: number, g: Conv2dGeom): void;

  /** y [NC, Ho, Wo]; for max, argmax holds the flat index h*W+w of each winner (for backward). */
  pool2d(kind: 'max' | 'avg', x: Float32Array, y: Float32Array, argmax: Int32Array | null, g: Pool2dGeom): void;
  /** Accumulates into gx (+=); gx must be zeroed by the caller. */
  pool2dBackward(kind: 'max' | 'avg', gy: Float32Array, argmax: Int32Array | null, gx: Float32Array, g: Pool2dGeom): void;

  interpolate(x: Float32Array, y: Float32Array, g: InterpGeom): void;
  /** Accumulates into gx (+=); gx must be zeroed by the caller. */
  interpolateBackward(gy: Float32Array, gx: Float32Array, g: InterpGeom): void;

  /** x [outer, n, inner], idx [m] (each in [0, n)) -> y [outer, m, inner]. Throws on an out-of-range index. */
  indexSelect(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, inner: number): void;
  /** Adjoint: gx [outer, n, inner] += gy [outer, m, inner] scattered by idx. */
  indexAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, inner: number): void;
  /** torch.gather along the middle dim: x [outer, n, inner], idx [outer, m, inner] -> y [outer, m, inner]. */
  gather(x: Float32Array, idx: Int32Array, y: Float32Array, outer: number, n: number, m: number, inner: number): void;
  /** Adjoint of gather: gx [outer, n, inner] += scatter of gy [outer, m, inner]. */
  scatterAdd(gy: Float32Array, idx: Int32Array, gx: Float32Array, outer: number, n: number, m: number, inner: number): void;

  /**
   * Cross-entropy per row of logits [rows, V] against targets [rows]; rows whose target equals
   * ignoreIndex get loss 0. With label smoothing s: loss = (1-s)*nll + s*mean_v(-logp_v).
   * Writes loss [rows] and lse [rows] (log-sum-exp, kept for backward). Throws on a target
   * outside [0, V) that is not ignoreIndex.
   */
  crossEntropy(logits: Float32Array, targets: Int32Array, loss: Float32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void;
  /** glogits[r] = gLoss[r] * d loss[r] / d logits[r] (zero for ignored rows). */
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, gLoss: Float32Array, glogits: Float32Array, rows: number, V: number, ignoreIndex: number, smoothing: number): void;

  /** Inclusive cumulative sum along n of x [outer, n, inner]; reverse sums from the end. */
  cumsum(x: Float32Array, y: Float32Array, outer: number, n: number, inner: number, reverse: boolean): void;
  /** Largest k along the last dim of x [rows, n], sorted descending (ties: lower index first). */
  topk(x: Float32Array, rows: number, n: number, k: number, values: Float32Array, indices: Int32Array): void;

  /**
   * In-place AdamW on one tensor (PyTorch torch.optim.AdamW): p -= lr*wd*p; m = b1*m + (1-b1)*g;
   * v = b2*v + (1-b2)*g^2; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), with bc = 1 - beta^step.
   */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void;
  /**
   * In-place SGD (PyTorch torch.optim.SGD): g' = g + wd*p; buf = first ? g' : momentum*buf + (1-dampening)*g';
   * step = nesterov ? g' + momentum*buf : buf (buf unused when momentum is 0); p -= lr*step.
   */
  sgd(p: Float32Array, g: Float32Array, buf: Float32Array | null, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, first: boolean): void;
}

let active: Backend | null = null;
const listeners: ((b: Backend) => void)[] = [];

/** The backend every op dispatches to. Set once at startup by `useBackend` (see backends/). */
export function backend(): Backend {
  if (active === null) throw new Error('no backend selected: call useBackend() (or import chimera, which selects one)');
  return active;
}

export function setBackend(b: Backend): void {
  active = b;
  for (const f of listeners) f(b);
}

export function hasBackend(): boolean {
  return active !== null;
}
