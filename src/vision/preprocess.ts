// Pixel preprocessing for vision encoders, pure TS over Float32Array (no sharp here).
// Images are HWC RGB in [0,1] ([H, W, 3], data[(y*W + x)*3 + c]) as produced by io/image.ts
// decodeImage; normalise() is the one step that emits CHW [3, H, W] for an engine tensor.
// Resampling reproduces PIL's Image.resize(BICUBIC) bit-exactly for 8-bit RGB (the resampler
// behind torchvision Resize, HF CLIPImageProcessor, LLaVA and SPHINX): separable, horizontal
// pass then vertical, Keys cubic a=-0.5 with support widened by the scale when downsampling
// (antialiasing), 22-bit fixed-point weights, rounding to uint8 after each pass. With
// quantize=false the same weights are applied in float without rounding.
// Geometry conventions (SPEC §1.3, §3.2, §4.2): pad offsets (L-W)//2, centre-crop offsets
// floor((W-cw)/2) (HF), shortest-edge resize long side = int(short * long / short_in) (HF).

import { fromData, type Tensor } from '../engine/tensor.ts';

export interface RgbImage {
  width: number;
  height: number;
  /** [H, W, 3] HWC RGB. */
  data: Float32Array;
}

export type Rgb = readonly [number, number, number];

export const CLIP_MEAN: Rgb = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: Rgb = [0.26862954, 0.26130258, 0.27577711];
export const IMAGENET_MEAN: Rgb = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Rgb = [0.229, 0.224, 0.225];

/** LLaVA/SPHINX pad colour: tuple(int(m*255) for m in mean), as a [0,1] colour ((122,116,104)/255 for CLIP). */
export function meanFill(mean: Rgb = CLIP_MEAN): Rgb {
  return [Math.trunc(mean[0] * 255) / 255, Math.trunc(mean[1] * 255) / 255, Math.trunc(mean[2] * 255) / 255];
}

function check(img: RgbImage, what: string): void {
  const { width: W, height: H, data } = img;
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1) throw new Error(`${what}: image size must be positive integers, got ${W}x${H}`);
  if (!(data instanceof Float32Array) || data.length !== W * H * 3) {
    throw new Error(`${what}: data must be a Float32Array of ${W}*${H}*3 = ${W * H * 3} values, got ${data?.length}`);
  }
}

function checkSize(w: number, h: number, what: string): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new Error(`${what}: target size must be positive integers, got ${w}x${h}`);
}

function checkFill(fill: Rgb, what: string): void {
  if (fill.length !== 3 || fill.some((v) => !Number.isFinite(v))) throw new Error(`${what}: fill must be 3 finite numbers`);
}

const PRECISION_BITS = 22; // PIL: 32 - 8 - 2
const ONE = 2 ** PRECISION_BITS;

function cubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output index: first input index and weights (PIL precompute_coeffs; fixed-point when quantize). */
function coeffs(inSize: number, outSize: number, quantize: boolean): { start: Int32Array; count: Int32Array; k: Float64Array; ksize: number } {
  const scale = inSize / outSize;
  const fscale = Math.max(scale, 1);
  const support = 2 * fscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = cubic((x + xmin - center + 0.5) / fscale);
      k[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      let w = ww !== 0 ? k[xx * ksize + x]! / ww : k[xx * ksize + x]!;
      if (quantize) w = Math.trunc(w < 0 ? w * ONE - 0.5 : w * ONE + 0.5);
      k[xx * ksize + x] = w;
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { start, count, k, ksize };
}

/** One separable pass along x (horizontal) or y. Quantized passes work on 0..255 integers. */
function pass(src: Float32Array, W: number, H: number, outLen: number, horizontal: boolean, quantize: boolean): Float32Array {
  const inLen = horizontal ? W : H;
  const { start, count, k, ksize } = coeffs(inLen, outLen, quantize);
  const oW = horizontal ? outLen : W;
  const oH = horizontal ? H : outLen;
  const out = new Float32Array(oW * oH * 3);
  const stride = horizontal ? 3 : W * 3; // step between neighbouring input samples
  for (let y = 0; y < oH; y++) {
    for (let x = 0; x < oW; x++) {
      const o = horizontal ? x : y;
      const s0 = start[o]!;
      const n = count[o]!;
      const base = horizontal ? (y * W + s0) * 3 : (s0 * W + x) * 3;
      for (let c = 0; c < 3; c++) {
        let acc = quantize ? ONE / 2 : 0;
        let p = base + c;
        for (let i = 0; i < n; i++, p += stride) {
          const v = quantize ? Math.round(src[p]! * 255) : src[p]!;
          acc += v * k[o * ksize + i]!;
        }
        // PIL clip8: floor(acc / 2^22) clamped to 0..255
        out[(y * oW + x) * 3 + c] = quantize ? Math.min(255, Math.max(0, Math.floor(acc / ONE))) / 255 : acc;
      }
    }
  }
  return out;
}

/** PIL Image.resize((w, h), BICUBIC). quantize (default) = round to 8 bits after each pass as PIL does. */
export function resizeBicubic(img: RgbImage, w: number, h: number, opts: { quantize?: boolean } = {}): RgbImage {
  check(img, 'resizeBicubic');
  checkSize(w, h, 'resizeBicubic');
  const q = opts.quantize ?? true;
  let data = img.data;
  let W = img.width;
  if (w !== img.width) {
    data = pass(data, W, img.height, w, true, q);
    W = w;
  }
  if (h !== img.height) data = pass(data, W, img.height, h, false, q);
  if (data === img.data) data = data.slice();
  return { width: w, height: h, data };
}

/** HF resize with {shortest_edge: s}: short side -> s, long side -> int(s * long / short). */
export function resizeShortestEdge(img: RgbImage, s: number, opts: { quantize?: boolean } = {}): RgbImage {
  check(img, 'resizeShortestEdge');
  checkSize(s, s, 'resizeShortestEdge');
  const { width: W, height: H } = img;
  const [w, h] = W <= H ? [s, Math.trunc((s * H) / W)] : [Math.trunc((s * W) / H), s];
  return resizeBicubic(img, w, h, opts);
}

/**
 * The region {x, y, w, h} (original-pixel coordinates, may extend past the image) as a w x h image;
 * pixels outside the source are `fill`. Same Rect shape as vision/views.ts.
 */
export function cropRegion(img: RgbImage, r: { x: number; y: number; w: number; h: number }, fill: Rgb = [0, 0, 0]): RgbImage {
  check(img, 'cropRegion');
  checkSize(r.w, r.h, 'cropRegion');
  checkFill(fill, 'cropRegion');
  if (!Number.isInteger(r.x) || !Number.isInteger(r.y)) throw new Error(`cropRegion: offsets must be integers, got (${r.x}, ${r.y})`);
  const { width: W, height: H, data } = img;
  const out = new Float32Array(r.w * r.h * 3);
  for (let y = 0; y < r.h; y++) {
    const sy = r.y + y;
    for (let x = 0; x < r.w; x++) {
      const sx = r.x + x;
      const o = (y * r.w + x) * 3;
      if (sy >= 0 && sy < H && sx >= 0 && sx < W) {
        const s = (sy * W + sx) * 3;
        out[o] = data[s]!;
        out[o + 1] = data[s + 1]!;
        out[o + 2] = data[s + 2]!;
      } else {
        out[o] = fill[0];
        out[o + 1] = fill[1];
        out[o + 2] = fill[2];
      }
    }
  }
  return { width: r.w, height: r.h, data: out };
}

/** HF center_crop: offsets floor((H-h)/2), floor((W-w)/2); zero-fills where the crop is larger. */
export function centerCrop(img: RgbImage, w: number, h: number): RgbImage {
  check(img, 'centerCrop');
  checkSize(w, h, 'centerCrop');
  return cropRegion(img, { x: Math.floor((img.width - w) / 2), y: Math.floor((img.height - h) / 2), w, h });
}

/** LLaVA expand2square / SPHINX PadToSquare: side max(W,H), image at offset (L-W)//2, (L-H)//2. */
export function padToSquare(img: RgbImage, fill: Rgb = meanFill(CLIP_MEAN)): RgbImage {
  check(img, 'padToSquare');
  const L = Math.max(img.width, img.height);
  return cropRegion(img, { x: -Math.floor((L - img.width) / 2), y: -Math.floor((L - img.height) / 2), w: L, h: L }, fill);
}

/**
 * LLaVA-NeXT resize_and_pad_image (SPEC §4.2): fit inside cw x ch keeping aspect (the fitted side
 * is min(ceil(...), target)), bicubic, pasted centred (offsets floored) on a `fill` canvas (black).
 */
export function resizeAndPad(img: RgbImage, cw: number, ch: number, fill: Rgb = [0, 0, 0], opts: { quantize?: boolean } = {}): RgbImage {
  check(img, 'resizeAndPad');
  checkSize(cw, ch, 'resizeAndPad');
  const { width: W, height: H } = img;
  let nw: number;
  let nh: number;
  if (cw / W < ch / H) {
    nw = cw;
    nh = Math.min(Math.ceil((H * cw) / W), ch);
  } else {
    nh = ch;
    nw = Math.min(Math.ceil((W * ch) / H), cw);
  }
  const r = resizeBicubic(img, nw, nh, opts);
  return cropRegion(r, { x: -Math.floor((cw - nw) / 2), y: -Math.floor((ch - nh) / 2), w: cw, h: ch }, fill);
}

/** (x - mean[c]) / std[c], HWC [H, W, 3] -> CHW [3, H, W]. */
export function normalize(img: RgbImage, mean: Rgb = CLIP_MEAN, std: Rgb = CLIP_STD): Float32Array {
  check(img, 'normalize');
  checkFill(mean, 'normalize');
  if (std.length !== 3 || std.some((v) => !(Number.isFinite(v) && v !== 0))) throw new Error('normalize: std must be 3 finite non-zero numbers');
  const { width: W, height: H, data } = img;
  const n = W * H;
  const out = new Float32Array(3 * n); // [3, H, W]
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    for (let i = 0; i < n; i++) out[c * n + i] = (data[i * 3 + c]! - m) / s;
  }
  return out;
}

/** normalize() wrapped as an f32 engine tensor [3, H, W]. */
export function toTensor(img: RgbImage, mean: Rgb = CLIP_MEAN, std: Rgb = CLIP_STD): Tensor {
  return fromData(normalize(img, mean, std), [3, img.height, img.width]);
}

/** SPHINX (SPEC §1.3): pad to square with the CLIP-mean colour, bicubic to S x S, CLIP-normalise. [3, S, S] */
export function sphinxPreprocess(img: RgbImage, size: number): Float32Array {
  return normalize(resizeBicubic(padToSquare(img, meanFill(CLIP_MEAN)), size, size));
}

/** LLaVA-1.5 'pad' (SPEC §3.2): expand2square(mean) -> shortest edge S -> centre crop S -> CLIP-normalise. [3, S, S] */
export function llavaPadPreprocess(img: RgbImage, size = 336): Float32Array {
  const sq = padToSquare(img, meanFill(CLIP_MEAN));
  return normalize(centerCrop(resizeShortestEdge(sq, size), size, size));
}
