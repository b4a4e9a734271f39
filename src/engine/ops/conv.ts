// Convolution, pooling and resampling over NCHW images.

import { backend, type Conv2dGeom, type InterpMode, type Pool2dGeom } from '../backend.ts';
import { record } from '../autograd.ts';
import { fmt } from '../shape.ts';
import { empty, Tensor } from '../tensor.ts';
import { assertF32, denseData, zeros } from './core.ts';

type Pair = number | readonly [number, number];
const pair = (p: Pair): [number, number] => (typeof p === 'number' ? [p, p] : [p[0], p[1]]);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/** torch.nn.functional.conv2d: x [N, C, H, W], w [Cout, C/groups, kh, kw], bias [Cout] -> [N, Cout, Ho, Wo]. */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  assertF32('conv2d', x, w);
  if (x.ndim !== 4 || w.ndim !== 4) throw new Error(`conv2d: expected x [N, C, H, W] and w [Cout, C/groups, kh, kw], got ${fmt(x.shape)} and ${fmt(w.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [Cout, Cg, kh, kw] = w.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride ?? 1), [ph, pw] = pair(opts.padding ?? 0), [dh, dw] = pair(opts.dilation ?? 1);
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0 || Cout % groups !== 0 || Cg !== C / groups) {
    throw new Error(`conv2d: groups=${groups} does not fit input channels ${C}, weight ${fmt(w.shape)}`);
  }
  if (bias !== null && (bias.ndim !== 1 || bias.shape[0] !== Cout)) throw new Error(`conv2d: bias ${fmt(bias.shape)} does not match ${Cout} output channels`);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0) throw new Error(`conv2d: invalid stride/padding/dilation`);
  const Ho = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (Ho <= 0 || Wo <= 0) throw new Error(`conv2d: input ${fmt(x.shape)} is smaller than the kernel ${kh}x${kw} (after padding)`);
  const xd = denseData(x), wd = denseData(w), bd = bias && denseData(bias);
  const out = empty([N, Cout, Ho, Wo]);
  const yd = out.data;
  const P = Ho * Wo, Coutg = Cout / groups, Kc = Cg * kh * kw;
  const g: Conv2dGeom = { C: Cg, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo };
  const depthwise = groups === C && Cout === C && Cg === 1;
  if (depthwise) backend().depthwiseConv2d(xd, wd, bd, yd, N, { ...g, C });
  else {
    const cols = new Float32Array(Kc * P); // [C/groups * kh * kw, Ho * Wo]
    for (let n = 0; n < N; n++) {
      for (let gi = 0; gi < groups; gi++) {
        backend().im2col(xd, (n * C + gi * Cg) * H * W, g, cols);
        backend().gemm({
          transA: false, transB: false, m: Coutg, n: P, k: Kc, alpha: 1, beta: 0,
          a: wd, aOff: gi * Coutg * Kc, lda: Kc, strideA: 0, b: cols, bOff: 0, ldb: P, strideB: 0,
          c: yd, cOff: (n * Cout + gi * Coutg) * P, ldc: P, strideC: 0, batch: 1,
        });
      }
    }
    // y [N, Cout, P] += bias [Cout], broadcast in one kernel call.
    if (bd !== null) backend().binary('add', yd, 0, [Cout * P, P, 1], bd, 0, [0, 1, 0], [N, Cout, P], yd);
  }
  const inputs = bias === null ? [x, w] : [x, w, bias];
  return record('conv2d', inputs, out, [], (gy) => {
    const gyd = denseData(gy);
    const gx = zeros(x.shape), gw = zeros(w.shape);
    const wantX = x.requiresGrad;
    if (depthwise) backend().depthwiseConv2dBackward(xd, wd, gyd, gx.data, gw.data, N, { ...g, C });
    else {
      const cols = new Float32Array(Kc * P), gcols = new Float32Array(Kc * P);
      for (let n = 0; n < N; n++) {
        for (let gi = 0; gi < groups; gi++) {
          const xo = (n * C + gi * Cg) * H * W, yo = (n * Cout + gi * Coutg) * P;
          backend().im2col(xd, xo, g, cols);
          // gw_g [Coutg, Kc] += gy_g [Coutg, P] @ cols^T [P, Kc]
          backend().gemm({
            transA: false, transB: true, m: Coutg, n: Kc, k: P, alpha: 1, beta: 1,
            a: gyd, aOff: yo, lda: P, strideA: 0, b: cols, bOff: 0, ldb: P, strideB: 0,
            c: gw.data, cOff: gi * Coutg * Kc, ldc: Kc, strideC: 0, batch: 1,
          });
          if (!wantX) continue;
          // gcols [Kc, P] = w_g^T [Kc, Coutg] @ gy_g [Coutg, P]
          backend().gemm({
            transA: true, transB: false, m: Kc, n: P, k: Coutg, alpha: 1, beta: 0,
            a: wd, aOff: gi * Coutg * Kc, lda: Kc, strideA: 0, b: gyd, bOff: yo, ldb: P, strideB: 0,
            c: gcols, cOff: 0, ldc: P, strideC: 0, batch: 1,
          });
          backend().col2im(gcols, g, gx.data, xo);
        }
      }
    }
    let gb: Tensor | null = null;
    if (bias !== null) {
      // gb [Cout] = sum of gy [N, Cout, P] over N and P.
      const perImage = new Float32Array(N * Cout);
      backend().reduce('sum', gyd, N * Cout, P, 1, perImage);
      gb = empty([Cout]);
      backend().reduce('sum', perImage, 1, N, Cout, gb.data);
    }
    return bias === null ? [gx, gw] : [gx, gw, gb];
  });
}

export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
  /** avg only: count padded positions in the divisor (PyTorch default true). */
  countIncludePad?: boolean;
}

function pool(kind: 'max' | 'avg', x: Tensor, kernel: Pair, opts: Pool2dOptions): Tensor {
  assertF32(`${kind}Pool2d`, x);
  if (x.ndim !== 4) throw new Error(`${kind}Pool2d: expected [N, C, H, W], got ${fmt(x.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [kh, kw] = pair(kernel), [sh, sw] = pair(opts.stride ?? kernel), [ph, pw] = pair(opts.padding ?? 0);
  if (ph * 2 > kh || pw * 2 > kw) throw new Error(`${kind}Pool2d: padding must be at most half the kernel`);
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1, Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  if (Ho <= 0 || Wo <= 0) throw new Error(`${kind}Pool2d: input ${fmt(x.shape)} is smaller than the kernel`);
  const g: Pool2dGeom = { NC: N * C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, countIncludePad: opts.countIncludePad ?? true };
  const out = empty([N, C, Ho, Wo]);
  const arg = kind === 'max' ? new Int32Array(out.size) : null;
  backend().pool2d(kind, denseData(x), out.data, arg, g);
  return record(`${kind}Pool2d`, [x], out, [], (gy) => {
    const gx = zeros(x.shape);
    backend().pool2dBackward(kind, denseData(gy), arg, gx.data, g);
    return [gx];
  });
}

export function maxPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  return pool('max', x, kernel, opts);
}

export function avgPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  return pool('avg', x, kernel, opts);
}

export interface InterpolateOptions {
  size?: readonly [number, number];
  scaleFactor?: number | readonly [number, number];
  mode?: InterpMode;
  alignCorners?: boolean;
}

/** torch.nn.functional.interpolate for NCHW (nearest, bilinear, bicubic). */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  assertF32('interpolate', x);
  if (x.ndim !== 4) throw new Error(`interpolate: expected [N, C, H, W], got ${fmt(x.shape)}`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const mode = opts.mode ?? 'nearest';
  if (mode === 'nearest' && opts.alignCorners !== undefined) throw new Error('interpolate: alignCorners only applies to bilinear and bicubic');
  let Ho: number, Wo: number, scaleH = 0, scaleW = 0;
  if (opts.size !== undefined) {
    if (opts.scaleFactor !== undefined) throw new Error('interpolate: give size or scaleFactor, not both');
    [Ho, Wo] = opts.size;
  } else if (opts.scaleFactor !== undefined) {
    const [fh, fw] = pair(opts.scaleFactor);
    if (!(fh > 0 && fw > 0)) throw new Error(`interpolate: scaleFactor must be positive`);
    Ho = Math.floor(H * fh);
    Wo = Math.floor(W * fw);
    scaleH = 1 / fh;
    scaleW = 1 / fw;
  } else throw new Error('interpolate: size or scaleFactor is required');
  if (!Number.isInteger(Ho) || !Number.isInteger(Wo) || Ho <= 0 || Wo <= 0) throw new Error(`interpolate: invalid output size ${Ho}x${Wo}`);
  const g = { NC: N * C, H, W, Ho, Wo, mode, alignCorners: opts.alignCorners ?? false, scaleH, scaleW };
  const out = empty([N, C, Ho, Wo]);
  backend().interpolate(denseData(x), out.data, g);
  return record('interpolate', [x], out, [], (gy) => {
    const gx = zeros(x.shape);
    backend().interpolateBackward(denseData(gy), gx.data, g);
    return [gx];
  });
}
