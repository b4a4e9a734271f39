// Weight mixing (SPEC §1.10): θ = β·θ_a + (1 − β)·θ_b over two checkpoints with the same keys,
// shapes and config. Tensors are read one at a time (lazy safetensors) and streamed into one
// output model.safetensors, so peak memory is a few tensors, not two models. Float tensors
// (F32/F16/BF16/F64/F8) mix in f32 and are cast back to A's stored dtype; non-float tensors
// must be byte-equal. β = 1 copies A's bytes and β = 0 copies B's, bit-exactly. Keys outside
// `only` are copied from A unchanged (their B counterparts must still exist with the same shape).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { f32ToBf16, f32ToF16 } from '../engine/dtype.ts';
import { type Checkpoint, openCheckpoint, type StDType, writeFileAtomic } from '../io/safetensors.ts';

export interface MixOptions {
  /** Mix only keys matching this; the rest are copied from A. Default: every key. */
  only?: RegExp;
  /** Extra `__metadata__` entries for the output file. */
  metadata?: Record<string, string>;
}

export interface MixReport {
  out: string;
  beta: number;
  tensors: number;
  mixed: number;
  copied: number;
  bytes: number;
}

const FLOAT: ReadonlySet<StDType> = new Set<StDType>(['F32', 'F16', 'BF16', 'F64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0']);
const WRITE_FLOAT: ReadonlySet<StDType> = new Set<StDType>(['F32', 'F16', 'BF16', 'F64']);
const IGNORED_CONFIG_KEYS = new Set(['_name_or_path', 'transformers_version', 'torch_dtype']);
const COPIED_FILE = /^(config\.json|generation_config\.json|preprocessor_config\.json|special_tokens_map\.json|added_tokens\.json|chat_template\.(json|jinja)|tokenizer(_config)?\.json|tokenizer\.model|vocab\.(json|txt)|merges\.txt)$/;

/** β·a + (1−β)·b elementwise in f32. */
export function mixArrays(a: Float32Array, b: Float32Array, beta: number): Float32Array {
  if (a.length !== b.length) throw new Error(`mixArrays: lengths ${a.length} and ${b.length} differ`);
  const out = new Float32Array(a.length);
  const fb = Math.fround(beta), fc = Math.fround(1 - beta);
  for (let i = 0; i < a.length; i++) out[i] = Math.fround(fb * a[i]!) + Math.fround(fc * b[i]!);
  return out;
}

function castBack(v: Float32Array, dtype: StDType): Uint8Array {
  switch (dtype) {
    case 'F32': return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    case 'F64': { const d = Float64Array.from(v); return new Uint8Array(d.buffer); }
    case 'F16': { const h = new Uint16Array(v.length); for (let i = 0; i < v.length; i++) h[i] = f32ToF16(v[i]!); return new Uint8Array(h.buffer); }
    case 'BF16': { const h = new Uint16Array(v.length); for (let i = 0; i < v.length; i++) h[i] = f32ToBf16(v[i]!); return new Uint8Array(h.buffer); }
    default: throw new Error(`mix: cannot write dtype ${dtype}`);
  }
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

function firstConfigDifference(a: unknown, b: unknown, at: string): string | null {
  if (a === b) return null;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return `${at || '(root)'}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
  if (Array.isArray(a) !== Array.isArray(b)) return `${at}: array vs object`;
  const ka = Object.keys(a as object).filter((k) => at !== '' || !IGNORED_CONFIG_KEYS.has(k));
  const kb = Object.keys(b as object).filter((k) => at !== '' || !IGNORED_CONFIG_KEYS.has(k));
  for (const k of new Set([...ka, ...kb])) {
    const d = firstConfigDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
    if (d) return d;
  }
  return null;
}

function readJson(file: string): unknown {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) { throw new Error(`mix: cannot read ${file}: ${(e as Error).message}`); }
}

function writeAll(fd: number, b: Uint8Array): void {
  for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off, Math.min(b.length - off, 1 << 30));
}

/** Checks keys, shapes, dtypes and configs; returns the key order (sorted). Throws naming the first problem(s). */
export function checkMixable(a: Checkpoint, b: Checkpoint, aDir: string, bDir: string): string[] {
  const ka = a.keys(), kb = new Set(b.keys());
  const onlyA = ka.filter((k) => !kb.has(k)), onlyB = [...kb].filter((k) => !a.has(k));
  if (onlyA.length || onlyB.length) {
    const show = (xs: string[]): string => xs.slice(0, 5).join(', ') + (xs.length > 5 ? `, ... (${xs.length})` : '');
    throw new Error(`mix: checkpoints have different keys${onlyA.length ? `; only in A: ${show(onlyA)}` : ''}${onlyB.length ? `; only in B: ${show(onlyB)}` : ''}`);
  }
  for (const k of ka) {
    const ia = a.info(k), ib = b.info(k);
    if (ia.shape.join(',') !== ib.shape.join(',')) throw new Error(`mix: tensor '${k}' has shape [${ia.shape}] in A but [${ib.shape}] in B`);
    if (FLOAT.has(ia.dtype) !== FLOAT.has(ib.dtype)) throw new Error(`mix: tensor '${k}' is ${ia.dtype} in A but ${ib.dtype} in B`);
    if (!FLOAT.has(ia.dtype) && ia.dtype !== ib.dtype) throw new Error(`mix: tensor '${k}' is ${ia.dtype} in A but ${ib.dtype} in B`);
  }
  const ca = path.join(aDir, 'config.json'), cb = path.join(bDir, 'config.json');
  const hasA = fs.existsSync(ca), hasB = fs.existsSync(cb);
  if (hasA !== hasB) throw new Error(`mix: config.json exists in ${hasA ? 'A' : 'B'} only`);
  if (hasA) {
    const d = firstConfigDifference(readJson(ca), readJson(cb), '');
    if (d) throw new Error(`mix: config.json of A and B differ at ${d}`);
  }
  return ka;
}

/** Mixes checkpoint folders (or files) A and B into `outDir`/model.safetensors (+ A's config and tokenizer files). */
export function mixCheckpoints(aDir: string, bDir: string, outDir: string, beta: number, opts: MixOptions = {}): MixReport {
  if (!(Number.isFinite(beta) && beta >= 0 && beta <= 1)) throw new Error(`mix: beta must be a number in [0, 1], got ${beta}`);
  const ra = path.resolve(aDir), rb = path.resolve(bDir), ro = path.resolve(outDir);
  if (ro === ra || ro === rb) throw new Error('mix: the output folder must differ from both inputs');
  const a = openCheckpoint(aDir);
  let b: Checkpoint | null = null;
  try {
    b = openCheckpoint(bDir);
    const aFolder = fs.statSync(aDir).isDirectory() ? aDir : path.dirname(aDir);
    const bFolder = fs.statSync(bDir).isDirectory() ? bDir : path.dirname(bDir);
    const keys = checkMixable(a, b, aFolder, bFolder);
    const infos = keys.map((k) => a.info(k));
    for (const [i, k] of keys.entries()) {
      if (FLOAT.has(infos[i]!.dtype) && !WRITE_FLOAT.has(infos[i]!.dtype) && beta !== 1 && beta !== 0 && (!opts.only || opts.only.test(k))) {
        throw new Error(`mix: tensor '${k}' is ${infos[i]!.dtype}; mixing 8-bit floats is not supported (mix a dequantised copy)`);
      }
    }
    // Data order: wider dtypes first so every tensor stays aligned to its element size.
    const width = (d: StDType): number => (d === 'F64' || d === 'I64' || d === 'U64' || d === 'C64' ? 8 : d === 'F32' || d === 'I32' || d === 'U32' ? 4 : d === 'F16' || d === 'BF16' || d === 'I16' || d === 'U16' ? 2 : 1);
    const order = keys.map((k, i) => ({ k, info: infos[i]! })).sort((x, y) => width(y.info.dtype) - width(x.info.dtype) || (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
    const offsets = new Map<string, [number, number]>();
    let pos = 0;
    for (const { k, info } of order) { offsets.set(k, [pos, pos + info.byteLength]); pos += info.byteLength; }
    const meta: Record<string, string> = { ...a.metadata(), 'chimera.mix.beta': String(beta), ...(opts.metadata ?? {}) };
    const parts = [`"__metadata__":{${Object.keys(meta).sort().map((m) => `${JSON.stringify(m)}:${JSON.stringify(meta[m])}`).join(',')}}`];
    for (const k of keys) {
      const [s, e] = offsets.get(k)!, info = infos[keys.indexOf(k)]!;
      parts.push(`${JSON.stringify(k)}:{"dtype":"${info.dtype}","shape":[${info.shape.join(',')}],"data_offsets":[${s},${e}]}`);
    }
    let json = `{${parts.join(',')}}`;
    json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
    const n = Buffer.byteLength(json);
    const header = Buffer.alloc(8 + n);
    header.writeBigUInt64LE(BigInt(n), 0);
    header.write(json, 8, 'utf8');
    fs.mkdirSync(outDir, { recursive: true });
    let mixed = 0, copied = 0;
    const bb = b;
    writeFileAtomic(path.join(outDir, 'model.safetensors'), (fd) => {
      writeAll(fd, header);
      for (const { k, info } of order) {
        const doMix = FLOAT.has(info.dtype) && (!opts.only || opts.only.test(k));
        let bytes: Uint8Array;
        if (!FLOAT.has(info.dtype)) {
          bytes = a.readRaw(k);
          if (!bytesEqual(bytes, bb.readRaw(k))) throw new Error(`mix: non-float tensor '${k}' (${info.dtype}) differs between A and B; refusing to mix it`);
          copied++;
        } else if (!doMix || beta === 1) {
          bytes = a.readRaw(k); copied++;
        } else if (beta === 0 && bb.info(k).dtype === info.dtype) {
          bytes = bb.readRaw(k); mixed++;
        } else {
          bytes = castBack(mixArrays(a.readF32(k), bb.readF32(k), beta), info.dtype); mixed++;
        }
        writeAll(fd, bytes);
      }
    });
    // A stale sharded checkpoint in the output would shadow or conflict with model.safetensors.
    for (const f of fs.readdirSync(outDir)) {
      if (f === 'model.safetensors.index.json' || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)) fs.rmSync(path.join(outDir, f), { force: true });
    }
    const aFiles = fs.readdirSync(aFolder).filter((f) => COPIED_FILE.test(f) && fs.statSync(path.join(aFolder, f)).isFile());
    for (const f of aFiles) {
      const data = fs.readFileSync(path.join(aFolder, f));
      writeFileAtomic(path.join(outDir, f), (fd) => writeAll(fd, data));
    }
    return { out: outDir, beta, tensors: keys.length, mixed, copied, bytes: 8 + n + pos };
  } finally {
    a.close();
    b?.close();
  }
}
