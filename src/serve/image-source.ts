// Image references as they arrive in requests -> decoded RgbImage ([H, W, 3] HWC floats in [0,1]).
// Accepted: data: URLs (base64; strict parsing in io/image.ts), local files (file:// URL or a plain
// path) only inside an allow-listed folder (paths canonicalised with realpath, so '..' and symlinks
// cannot leave it), and http(s) only when remote fetching is enabled (size cap, time limit,
// loopback/private addresses refused unless explicitly allowed). Every failure is an ApiError 400
// whose message names the cause and the limit, never a server path outside the allowed folder.

import { promises as dns } from 'node:dns';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeImage, parseDataUrl, type ImageFormat } from '../io/image.ts';
import type { RgbImage } from '../vision/preprocess.ts';
import { ApiError, badRequest } from './api-error.ts';

export interface ImageSourceOptions {
  /** Folder local paths must resolve into; null refuses every local path. */
  allowFilesDir: string | null;
  /** Fetch http(s) URLs. */
  allowRemote: boolean;
  /** Let remote URLs reach loopback / private / link-local addresses (tests only). */
  allowPrivateRemote: boolean;
  /** Encoded bytes per image. */
  maxImageBytes: number;
  /** width*height per image (checked from the header before decoding). */
  maxImagePixels: number;
  /** Time limit of a remote fetch. */
  remoteTimeoutMs: number;
}

export interface LoadedImage {
  image: RgbImage;
  format: ImageFormat;
  bytes: number;
}

/** Loads and decodes one image reference; `param` names the request field in errors. */
export async function loadImageSource(url: string, opts: ImageSourceOptions, param: string, signal?: AbortSignal): Promise<LoadedImage> {
  if (typeof url !== 'string' || url.trim() === '') throw badRequest('image_url.url must be a non-empty string', param, 'invalid_image_url');
  let bytes: Buffer;
  if (/^data:/i.test(url)) {
    try {
      bytes = parseDataUrl(url, { maxBytes: opts.maxImageBytes }).data;
    } catch (e) {
      throw badRequest(`invalid image data URL: ${stripPrefix((e as Error).message)}`, param, /maxBytes/.test((e as Error).message) ? 'image_too_large' : 'invalid_image_url');
    }
  } else if (/^https?:/i.test(url)) {
    if (!opts.allowRemote) throw badRequest('remote image URLs are disabled on this server (start it with --allow-remote); send the image as a data: URL', param, 'remote_images_disabled');
    bytes = await fetchRemote(url, opts, param, signal);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !/^file:/i.test(url)) {
    throw badRequest(`unsupported image URL scheme '${url.slice(0, url.indexOf(':'))}' (use data:, file: or http(s):)`, param, 'invalid_image_url');
  } else {
    bytes = readLocal(url, opts, param);
  }
  let decoded;
  try {
    decoded = await decodeImage(bytes, { limits: { maxBytes: opts.maxImageBytes, maxPixels: opts.maxImagePixels } });
  } catch (e) {
    const m = stripPrefix((e as Error).message);
    const code = /maxPixels/.test(m) ? 'image_too_many_pixels' : /maxBytes/.test(m) ? 'image_too_large' : 'invalid_image';
    throw badRequest(`image could not be decoded: ${m}`, param, code);
  }
  return { image: { width: decoded.width, height: decoded.height, data: decoded.data }, format: decoded.format, bytes: bytes.length };
}

const stripPrefix = (m: string): string => m.replace(/^(decodeImage|parseDataUrl): /, '');

function readLocal(ref: string, opts: ImageSourceOptions, param: string): Buffer {
  if (opts.allowFilesDir === null) throw badRequest('local image paths are disabled on this server (start it with --allow-files DIR); send the image as a data: URL', param, 'local_images_disabled');
  let p: string;
  if (/^file:/i.test(ref)) {
    try {
      p = fileURLToPath(ref);
    } catch {
      throw badRequest('malformed file: URL', param, 'invalid_image_url');
    }
  } else p = ref;
  if (p.includes('\0')) throw badRequest('image path contains a NUL byte', param, 'invalid_image_url');
  const root = fs.realpathSync(opts.allowFilesDir);
  const outside = (): ApiError => badRequest('image path is outside the allowed folder', param, 'image_path_not_allowed');
  const lexical = path.resolve(root, p);
  if (lexical !== root && !lexical.startsWith(root + path.sep)) throw outside();
  let real: string;
  try {
    real = fs.realpathSync(lexical);
  } catch {
    throw badRequest(`image file '${path.relative(root, lexical)}' does not exist in the allowed folder`, param, 'image_not_found');
  }
  if (!real.startsWith(root + path.sep)) throw outside();
  const st = fs.statSync(real);
  if (!st.isFile()) throw badRequest(`'${path.relative(root, real)}' is not a regular file`, param, 'invalid_image_url');
  if (st.size > opts.maxImageBytes) throw badRequest(`image file is ${st.size} bytes, over the limit max_image_bytes=${opts.maxImageBytes}`, param, 'image_too_large');
  return fs.readFileSync(real);
}

/** True for loopback, private (RFC 1918 / ULA), link-local, unspecified and CGNAT addresses. */
export function isPrivateAddress(ip: string): boolean {
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
  }
  const v = ip.toLowerCase();
  if (v.startsWith('::ffff:')) return isPrivateAddress(v.slice(7));
  return v === '::' || v === '::1' || v.startsWith('fc') || v.startsWith('fd') || v.startsWith('fe8') || v.startsWith('fe9') ||
    v.startsWith('fea') || v.startsWith('feb') || v.startsWith('ff');
}

async function fetchRemote(url: string, opts: ImageSourceOptions, param: string, signal?: AbortSignal): Promise<Buffer> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badRequest('malformed image URL', param, 'invalid_image_url');
  }
  if (u.username || u.password) throw badRequest('image URLs with credentials are refused', param, 'invalid_image_url');
  if (!opts.allowPrivateRemote) {
    const host = u.hostname.replace(/^\[|\]$/g, '');
    let addrs: string[];
    try {
      addrs = net.isIP(host) ? [host] : (await dns.lookup(host, { all: true })).map((a) => a.address);
    } catch {
      throw badRequest(`cannot resolve image host '${u.hostname}'`, param, 'image_fetch_failed');
    }
    if (addrs.some(isPrivateAddress)) throw badRequest(`image host '${u.hostname}' is a private or loopback address`, param, 'image_url_not_allowed');
  }
  const timeout = AbortSignal.timeout(opts.remoteTimeoutMs);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(u, { signal: sig, redirect: 'error' });
  } catch (e) {
    if (timeout.aborted) throw badRequest(`image fetch exceeded the time limit remote_timeout_ms=${opts.remoteTimeoutMs}`, param, 'image_fetch_timeout');
    throw badRequest(`image fetch failed (${(e as Error).message})`, param, 'image_fetch_failed');
  }
  if (!res.ok) throw badRequest(`image fetch returned HTTP ${res.status}`, param, 'image_fetch_failed');
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > opts.maxImageBytes) {
    await res.body?.cancel();
    throw badRequest(`remote image is ${declared} bytes, over the limit max_image_bytes=${opts.maxImageBytes}`, param, 'image_too_large');
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res.body ?? []) {
      n += c.length;
      if (n > opts.maxImageBytes) {
        await res.body?.cancel().catch(() => {});
        throw badRequest(`remote image is over the limit max_image_bytes=${opts.maxImageBytes}`, param, 'image_too_large');
      }
      chunks.push(Buffer.from(c));
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (timeout.aborted) throw badRequest(`image fetch exceeded the time limit remote_timeout_ms=${opts.remoteTimeoutMs}`, param, 'image_fetch_timeout');
    throw badRequest(`image fetch failed (${(e as Error).message})`, param, 'image_fetch_failed');
  }
  return Buffer.concat(chunks);
}
