// Fashion-MNIST (Zalando SE, MIT licence): 28×28 grey photographs of clothing in 10 classes.
// The committed subset data/fashion-mnist/subset-*.gz (the first 100 training images of each
// class; scripts/make_fashion_subset.mjs) is always available; the full set is read from the
// Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz) or
// $CHIMERA_FASHION_DIR when present. Splits use disjoint source images:
//   subset: per class, images 0–79 train, 80–89 val, 90–99 test;
//   full:   train = the 60k training file, val = t10k[0, 5000), test = t10k[5000, 10000).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { Split } from './types.ts';

export const FASHION_CLASSES = ['t-shirt', 'trousers', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'] as const;
export const FASHION_PLURALS = ['t-shirts', 'trousers', 'pullovers', 'dresses', 'coats', 'sandals', 'shirts', 'sneakers', 'bags', 'ankle boots'] as const;

export const DEBIAN_FASHION_DIR = '/usr/share/datasets/fashion-mnist';

export interface FashionSet {
  /** u8 [count, rows, cols]. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
  source: 'subset' | 'full';
  /** Index of each image in its source file (for disjointness checks). */
  sourceIndex: Int32Array;
}

/** Parses a gzip'd (or plain) IDX file; `magic` 0x803 images or 0x801 labels. */
export function readIdx(file: string, magic: number): { dims: number[]; data: Uint8Array } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`fashion-mnist: cannot read ${file}: ${(e as Error).message}`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try { buf = gunzipSync(buf); } catch (e) { throw new Error(`fashion-mnist: ${file}: corrupt gzip data (${(e as Error).message})`); }
  }
  if (buf.length < 8) throw new Error(`fashion-mnist: ${file}: too short for an IDX header`);
  const m = buf.readUInt32BE(0);
  if (m !== magic) throw new Error(`fashion-mnist: ${file}: IDX magic 0x${m.toString(16)}, expected 0x${magic.toString(16)}`);
  const nd = magic & 0xff;
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const off = 4 + 4 * nd;
  if (buf.length !== off + n) throw new Error(`fashion-mnist: ${file}: ${buf.length - off} payload bytes, header declares ${n}`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + off, n) };
}

/** data/fashion-mnist of this checkout, found by walking up from this module. */
export function subsetDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const cand = path.join(dir, 'data', 'fashion-mnist');
    if (fs.existsSync(path.join(cand, 'subset-images-idx3-ubyte.gz'))) return cand;
    dir = path.dirname(dir);
  }
  throw new Error('fashion-mnist: data/fashion-mnist/subset-images-idx3-ubyte.gz not found above the installed module');
}

/** Directory of the full set when installed ($CHIMERA_FASHION_DIR, then the Debian path), else null. */
export function fullDir(): string | null {
  for (const d of [process.env['CHIMERA_FASHION_DIR'], DEBIAN_FASHION_DIR]) {
    if (d && fs.existsSync(path.join(d, 't10k-images-idx3-ubyte.gz')) && fs.existsSync(path.join(d, 'train-images-idx3-ubyte.gz'))) return d;
  }
  return null;
}

const cache = new Map<string, FashionSet>();

function pack(images: Uint8Array, labels: Uint8Array, rows: number, cols: number, idx: number[], source: 'subset' | 'full'): FashionSet {
  const px = rows * cols;
  const out = new Uint8Array(idx.length * px), lab = new Uint8Array(idx.length);
  idx.forEach((i, k) => { out.set(images.subarray(i * px, (i + 1) * px), k * px); lab[k] = labels[i]!; });
  return { images: out, labels: lab, count: idx.length, rows, cols, source, sourceIndex: Int32Array.from(idx) };
}

/** One split of Fashion-MNIST. `which`: 'auto' = full set when installed, else the subset. */
export function loadFashion(split: Split, which: 'auto' | 'subset' | 'full' = 'auto'): FashionSet {
  const full = which === 'subset' ? null : fullDir();
  if (which === 'full' && full === null) throw new Error(`fashion-mnist: the full set is not installed (apt-get install dataset-fashion-mnist, or set CHIMERA_FASHION_DIR)`);
  const key = `${full ?? 'subset'}:${split}`;
  const hit = cache.get(key);
  if (hit) return hit;
  let set: FashionSet;
  if (full !== null) {
    const stem = split === 'train' ? 'train' : 't10k';
    const im = readIdx(path.join(full, `${stem}-images-idx3-ubyte.gz`), 0x803);
    const lb = readIdx(path.join(full, `${stem}-labels-idx1-ubyte.gz`), 0x801);
    const n = im.dims[0]!;
    if (lb.dims[0] !== n) throw new Error(`fashion-mnist: ${full}: ${n} images but ${lb.dims[0]} labels`);
    const lo = split === 'test' ? Math.floor(n / 2) : 0, hi = split === 'val' ? Math.floor(n / 2) : n;
    const idx = Array.from({ length: hi - lo }, (_, k) => lo + k);
    set = pack(im.data, lb.data, im.dims[1]!, im.dims[2]!, idx, 'full');
  } else {
    const dir = subsetDir();
    const im = readIdx(path.join(dir, 'subset-images-idx3-ubyte.gz'), 0x803);
    const lb = readIdx(path.join(dir, 'subset-labels-idx1-ubyte.gz'), 0x801);
    const n = im.dims[0]!;
    if (lb.dims[0] !== n) throw new Error(`fashion-mnist: ${dir}: ${n} images but ${lb.dims[0]} labels`);
    const seen = new Array(10).fill(0) as number[];
    const idx: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = lb.data[i]!;
      if (c > 9) throw new Error(`fashion-mnist: ${dir}: label ${c} at ${i} is not a class 0-9`);
      const p = seen[c]!++;
      const s: Split = p < 80 ? 'train' : p < 90 ? 'val' : 'test';
      if (s === split) idx.push(i);
    }
    set = pack(im.data, lb.data, im.dims[1]!, im.dims[2]!, idx, 'subset');
  }
  cache.set(key, set);
  return set;
}
