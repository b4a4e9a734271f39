// Image input: bytes or a file path -> upright 8-bit sRGB RGB pixels as floats in [0,1].
// Layout: HWC, i.e. data[(y * width + x) * 3 + c], [H, W, 3] — the order libvips and PIL produce;
// src/vision/preprocess.ts resamples in HWC and emits CHW [3, H, W] only at normalisation.
// Decoding uses sharp (libvips). Every decode (RELIABILITY §1b):
//   1. byte limit (file size checked with stat before reading),
//   2. header only (sharp.metadata, itself bounded by limitInputPixels) -> format allow-list and
//      pixel limit, so an image bomb is refused before any pixel is decoded,
//   3. first frame/page only, EXIF orientation applied, alpha composited over `background`,
//      any colour space / bit depth / palette -> 8-bit sRGB, and the result asserted to be 3 channels.
// Truncated or corrupt data fails under failOn 'warning' (default); failOn 'none' is a lenient opt-in.
// No resampling happens here (PIL-compatible bicubic lives in vision/preprocess.ts).

import { readFileSync, statSync } from 'node:fs';
import sharp from 'sharp';

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif' | 'svg';

export interface ImageLimits {
  /** Largest encoded input in bytes. */
  maxBytes: number;
  /** Largest width*height declared by the header (first frame). */
  maxPixels: number;
}

/** 20 MiB encoded, 32 MP (e.g. 8192x4096): far above any encoder input size, far below a bomb. */
export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxBytes: 20 * 1024 * 1024, maxPixels: 1 << 25 };

/** SVG is off by default (a renderer, not a decoder; external references and unbounded cost). */
export const DEFAULT_IMAGE_FORMATS: readonly ImageFormat[] = ['jpeg', 'png', 'webp', 'gif', 'tiff'];

export interface DecodeOptions {
  limits?: Partial<ImageLimits>;
  /** Formats accepted after sniffing the header. */
  formats?: readonly ImageFormat[];
  /** RGB 0..255 that transparent pixels are composited over; default white. */
  background?: readonly [number, number, number];
  /** sharp failOn: 'warning' (default, strictest) ... 'none' (accept truncated data silently). */
  failOn?: 'none' | 'truncated' | 'error' | 'warning';
  /** Abort the decode after this many seconds (sharp timeout); default 30. */
  timeoutSeconds?: number;
}

export interface DecodedImage {
  width: number;
  height: number;
  /** [H, W, 3] HWC, RGB, values k/255. */
  data: Float32Array;
  layout: 'hwc';
  /** Format sniffed from the bytes (not from a file name or media type). */
  format: ImageFormat;
}

function fail(msg: string): never {
  throw new Error(`decodeImage: ${msg}`);
}

function limitsOf(o: DecodeOptions): ImageLimits {
  const l = { ...DEFAULT_IMAGE_LIMITS, ...(o.limits ?? {}) };
  for (const k of ['maxBytes', 'maxPixels'] as const) {
    if (!Number.isInteger(l[k]) || l[k] < 1) fail(`limit ${k} must be a positive integer, got ${l[k]}`);
  }
  return l;
}

function readInput(input: Buffer | string, maxBytes: number): Buffer {
  if (typeof input === 'string') {
    let size: number;
    try {
      const st = statSync(input);
      if (!st.isFile()) fail(`'${input}' is not a regular file`);
      size = st.size;
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('decodeImage:')) throw e;
      fail(`cannot read '${input}': ${(e as Error).message}`);
    }
    if (size > maxBytes) fail(`file is ${size} bytes, over the limit maxBytes=${maxBytes}`);
    const buf = readFileSync(input);
    if (buf.length > maxBytes) fail(`file is ${buf.length} bytes, over the limit maxBytes=${maxBytes}`);
    return buf;
  }
  if (!Buffer.isBuffer(input) && !((input as unknown) instanceof Uint8Array)) fail('input must be a Buffer or a file path');
  if (input.length > maxBytes) fail(`input is ${input.length} bytes, over the limit maxBytes=${maxBytes}`);
  return input;
}

/** Maps sharp/libvips errors to messages that name the cause and the limit involved. */
function explain(e: unknown, limits: ImageLimits): never {
  const m = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(m)) fail(`image exceeds the limit maxPixels=${limits.maxPixels} (${m})`);
  if (/unsupported image format/i.test(m)) fail(`unsupported or unrecognised image format (${m})`);
  if (/timeout/i.test(m)) fail(`decode timed out (${m})`);
  fail(`corrupt or truncated image data (${m})`);
}

/** Decodes an image (see the header for the guarantees). Throws Error('decodeImage: ...'). */
export async function decodeImage(input: Buffer | string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const limits = limitsOf(opts);
  const formats = opts.formats ?? DEFAULT_IMAGE_FORMATS;
  const failOn = opts.failOn ?? 'warning';
  const bg = opts.background ?? [255, 255, 255];
  if (bg.length !== 3 || bg.some((v) => !(v >= 0 && v <= 255))) fail(`background must be 3 values in 0..255, got [${bg.join(', ')}]`);
  const buf = readInput(input, limits.maxBytes);
  if (buf.length === 0) fail('input is empty (0 bytes)');
  // page 0 only; limitInputPixels is enforced by libvips on the header as well.
  const sopts = { limitInputPixels: limits.maxPixels, failOn, page: 0, pages: 1 } as const;

  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(buf, sopts).metadata();
  } catch (e) {
    explain(e, limits);
  }
  const fmt = (meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : meta.format) as string | undefined;
  if (fmt === undefined || !(formats as readonly string[]).includes(fmt)) {
    fail(`unsupported image format '${fmt ?? 'unknown'}' (allowed: ${formats.join(', ')})`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.pageHeight ?? meta.height ?? 0;
  if (w0 < 1 || h0 < 1) fail(`header declares an empty image (${w0}x${h0})`);
  if (w0 * h0 > limits.maxPixels) fail(`image is ${w0}x${h0} = ${w0 * h0} pixels, over the limit maxPixels=${limits.maxPixels}`);

  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    out = await sharp(buf, sopts)
      .timeout({ seconds: opts.timeoutSeconds ?? 30 })
      .autoOrient()
      .flatten({ background: { r: bg[0], g: bg[1], b: bg[2] } })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    explain(e, limits);
  }
  const { width, height, channels } = out.info;
  if (channels !== 3 || out.data.length !== width * height * 3) {
    fail(`expected 3-channel 8-bit output, got ${channels} channels and ${out.data.length} bytes for ${width}x${height}`);
  }
  const data = new Float32Array(out.data.length);
  for (let i = 0; i < data.length; i++) data[i] = out.data[i]! / 255;
  return { width, height, data, layout: 'hwc', format: fmt as ImageFormat };
}

export interface DataUrlOptions {
  /** Largest decoded payload in bytes; checked from the base64 length before decoding. */
  maxBytes?: number;
  /** Accepted media types (lower case). */
  mediaTypes?: readonly string[];
}

export const DEFAULT_IMAGE_MEDIA_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

/**
 * Parses `data:<media-type>[;param=v]*;base64,<payload>` (RFC 2397, base64 only), as sent in
 * OpenAI-style `image_url.url`. Strict base64: alphabet A-Z a-z 0-9 + /, length a multiple of 4,
 * at most two '=' at the end, no whitespace. Throws Error('parseDataUrl: ...').
 */
export function parseDataUrl(url: string, opts: DataUrlOptions = {}): { mediaType: string; data: Buffer } {
  const maxBytes = opts.maxBytes ?? DEFAULT_IMAGE_LIMITS.maxBytes;
  const types = opts.mediaTypes ?? DEFAULT_IMAGE_MEDIA_TYPES;
  const bad = (msg: string): never => {
    throw new Error(`parseDataUrl: ${msg}`);
  };
  if (typeof url !== 'string') bad('url must be a string');
  if (!/^data:/i.test(url)) bad(`not a data URL (starts with '${url.slice(0, 16)}')`);
  const comma = url.indexOf(',');
  if (comma < 0) bad("missing ',' between header and payload");
  const header = url.slice(5, comma).split(';').map((s) => s.trim());
  const mediaType = (header[0] ?? '').toLowerCase();
  if (header[header.length - 1]!.toLowerCase() !== 'base64') bad('only base64 data URLs are accepted');
  if (!types.includes(mediaType)) bad(`media type '${mediaType || '(none)'}' is not accepted (allowed: ${types.join(', ')})`);
  const b64 = url.slice(comma + 1);
  if (b64.length === 0) bad('empty payload');
  const approx = Math.floor((b64.length * 3) / 4);
  if (approx - 2 > maxBytes) bad(`payload is about ${approx} bytes, over the limit maxBytes=${maxBytes}`);
  if (b64.length % 4 !== 0) bad(`base64 length ${b64.length} is not a multiple of 4`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) bad('payload is not valid base64');
  const data = Buffer.from(b64, 'base64');
  if (data.length > maxBytes) bad(`payload is ${data.length} bytes, over the limit maxBytes=${maxBytes}`);
  return { mediaType, data };
}
