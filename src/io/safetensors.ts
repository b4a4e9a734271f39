// safetensors: strict header validation, lazy per-tensor reads, atomic writes, HF-style shards.
// Layout: u64 LE header length N, N bytes of UTF-8 JSON, then the data buffer; each tensor's
// data_offsets [begin, end) are relative to the data buffer, row-major, little-endian.
// Validation follows the reference Rust reader (huggingface/safetensors tensor.rs) plus the JS
// hazards of RELIABILITY §1a: duplicate keys, unsafe integers, `__proto__`, unaligned views.
// Deliberate choices: the header must start with '{' (no leading whitespace; trailing JSON
// whitespace is padding); tensor objects may hold only dtype/shape/data_offsets; integers must
// be plain non-negative integer literals <= 2^53-1; `"__metadata__": null` means no metadata.
// Every error is `Error("safetensors: <path>: <what is wrong>")`; pickle files are refused.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { type AnyData, type DType, f16ToF32, isDType } from '../engine/dtype.ts';

/** Bits per element of every dtype the reference knows. */
export const StDTypeBits = {
  BOOL: 8, U8: 8, I8: 8,
  F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  I64: 64, U64: 64, F64: 64, C64: 64,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
} as const;

export type StDType = keyof typeof StDTypeBits;

export function isStDType(s: string): s is StDType {
  return Object.hasOwn(StDTypeBits, s);
}

const engineToSt: Record<DType, StDType> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', i8: 'I8', u8: 'U8', bool: 'BOOL',
};

export interface TensorInfo {
  dtype: StDType;
  shape: number[];
  numel: number;
  byteLength: number;
  /** [begin, end) relative to the data buffer; the data buffer starts at file byte `dataStart`. */
  dataOffsets: [number, number];
  dataStart: number;
  /** File holding the tensor. */
  file: string;
}

/** A tensor in the engine's storage dtypes (f16/bf16 as raw bits in Uint16Array). */
export interface StoredTensor {
  dtype: DType;
  shape: number[];
  data: AnyData;
}

/** Common read interface of a single file and a (possibly sharded) checkpoint. */
export interface TensorSource {
  readonly path: string;
  keys(): string[];
  has(key: string): boolean;
  info(key: string): TensorInfo;
  readRaw(key: string): Uint8Array;
  readF32(key: string): Float32Array;
  readI32(key: string): Int32Array;
  read(key: string): StoredTensor;
  metadata(): Record<string, string>;
  close(): void;
}

export const MAX_HEADER_BYTES = 100_000_000;
const MAX_JSON_DEPTH = 64;
const PICKLE_EXTS = ['.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle'];
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
let ioChunkBytes = 1 << 30; // one readSync/writeSync moves at most this much
const CONVERT_CHUNK_BYTES = 8 << 20; // scratch for dtype conversion, bounds peak memory

/** Test hook: shrink the I/O chunk to exercise multi-chunk paths. Returns the previous value. */
export function setIoChunkBytesForTesting(n: number): number {
  if (!Number.isSafeInteger(n) || n < 8 || n > 1 << 30) throw new Error(`setIoChunkBytesForTesting: bad size ${n}`);
  const prev = ioChunkBytes;
  ioChunkBytes = n;
  return prev;
}

function fail(file: string, what: string, cause?: unknown): never {
  throw new Error(`safetensors: ${file}: ${what}`, cause === undefined ? undefined : { cause });
}

function refusePickle(file: string): never {
  throw new Error(`refusing to load ${file}: pickle-based checkpoints can execute code when loaded; convert to safetensors`);
}

function hasPickleExt(file: string): boolean {
  const ext = path.extname(file).toLowerCase();
  return PICKLE_EXTS.includes(ext);
}

/** JSON-quotes a key for messages, shortened so a 50 MB key cannot flood a log. */
function q(s: string): string {
  const j = JSON.stringify(s.length > 200 ? s.slice(0, 200) : s);
  return s.length > 200 ? `${j.slice(0, -1)}..."(${s.length} chars)` : j;
}

/** Shape for messages, at most 16 dims shown. */
function fmtShape(shape: readonly number[]): string {
  return shape.length > 16 ? `[${shape.slice(0, 16).join(', ')}, ... (${shape.length} dims)]` : `[${shape.join(', ')}]`;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// JSON scanning. One strict RFC 8259 scanner: objects are checked for duplicate keys by their
// callers, strings reject lone surrogate escapes, numbers are kept as lexemes.

type JsonValue = null | boolean | number | string | JsonValue[] | Map<string, JsonValue>;

class JsonScanner {
  readonly s: string;
  readonly where: string; // "header" or "index": prefix of messages
  i = 0;

  constructor(s: string, where: string) {
    this.s = s;
    this.where = where;
  }

  syntax(msg: string): never {
    throw new SchemaError(`${this.where} is not valid JSON: ${msg} at character ${this.i}`);
  }

  schema(msg: string): never {
    throw new SchemaError(`${this.where}: ${msg}`);
  }

  ws(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    this.i = i;
  }

  expect(ch: string): void {
    if (this.s[this.i] !== ch) this.syntax(`expected '${ch}', found ${this.describeChar()}`);
    this.i++;
  }

  describeChar(): string {
    if (this.i >= this.s.length) return 'end of input';
    const c = this.s.charCodeAt(this.i);
    return c >= 0x20 && c < 0x7f ? `'${this.s[this.i]}'` : `U+${c.toString(16).padStart(4, '0')}`;
  }

  /** Kind of the value starting at i, for type errors; syntax error if none starts there. */
  kind(): string {
    const c = this.s[this.i];
    if (c === '"') return 'a string';
    if (c === '{') return 'an object';
    if (c === '[') return 'an array';
    if (c === 't' || c === 'f') return 'a boolean';
    if (c === 'n') return 'null';
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return 'a number';
    return this.syntax(`expected a value, found ${this.describeChar()}`);
  }

  /** Iterates the members of an object at i; `member` must consume the value. */
  object(member: (key: string) => void): void {
    this.expect('{');
    this.ws();
    if (this.s[this.i] === '}') { this.i++; return; }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.syntax(`expected a string key, found ${this.describeChar()}`);
      const key = this.string();
      this.ws();
      this.expect(':');
      this.ws();
      member(key);
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === '}') { this.i++; return; }
      this.syntax(`expected ',' or '}', found ${this.describeChar()}`);
    }
  }

  string(): string {
    const s = this.s;
    let i = this.i + 1;
    let seg = i;
    let out = '';
    for (;;) {
      if (i >= s.length) { this.i = i; this.syntax('unterminated string'); }
      const c = s.charCodeAt(i);
      if (c === 0x22) { out += s.slice(seg, i); this.i = i + 1; return out; }
      if (c < 0x20) { this.i = i; this.syntax('raw control character in string'); }
      if (c !== 0x5c) { i++; continue; }
      out += s.slice(seg, i);
      const e = s[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const hi = this.hex4(i);
          i += 4;
          if (hi >= 0xdc00 && hi <= 0xdfff) { this.i = i; this.syntax('lone low surrogate escape'); }
          if (hi >= 0xd800 && hi <= 0xdbff) {
            if (s[i] !== '\\' || s[i + 1] !== 'u') { this.i = i; this.syntax('lone high surrogate escape'); }
            const lo = this.hex4(i + 2);
            if (lo < 0xdc00 || lo > 0xdfff) { this.i = i; this.syntax('lone high surrogate escape'); }
            i += 6;
            out += String.fromCharCode(hi, lo);
          } else {
            out += String.fromCharCode(hi);
          }
          break;
        }
        default:
          this.i = i - 1;
          this.syntax('invalid escape in string');
      }
      seg = i;
    }
  }

  private hex4(at: number): number {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = this.s.charCodeAt(at + k);
      let d: number;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else { this.i = at + k; return this.syntax('invalid \\u escape'); }
      v = v * 16 + d;
    }
    return v;
  }

  /** Scans a JSON number; returns its lexeme and whether it is a plain non-negative integer. */
  numberLexeme(): { lex: string; plainUint: boolean } {
    const s = this.s;
    const start = this.i;
    let i = start;
    let plain = true;
    if (s[i] === '-') { i++; plain = false; }
    if (s[i] === '0') i++;
    else if (s[i] !== undefined && s[i]! >= '1' && s[i]! <= '9') { while (s[i] !== undefined && s[i]! >= '0' && s[i]! <= '9') i++; }
    else { this.i = i; this.syntax('invalid number'); }
    if (s[i] === '.') {
      plain = false;
      i++;
      if (!(s[i] !== undefined && s[i]! >= '0' && s[i]! <= '9')) { this.i = i; this.syntax('invalid number'); }
      while (s[i] !== undefined && s[i]! >= '0' && s[i]! <= '9') i++;
    }
    if (s[i] === 'e' || s[i] === 'E') {
      plain = false;
      i++;
      if (s[i] === '+' || s[i] === '-') i++;
      if (!(s[i] !== undefined && s[i]! >= '0' && s[i]! <= '9')) { this.i = i; this.syntax('invalid number'); }
      while (s[i] !== undefined && s[i]! >= '0' && s[i]! <= '9') i++;
    }
    this.i = i;
    return { lex: s.slice(start, i), plainUint: plain };
  }

  // `what` (built only on error) names the field in messages.

  /** A non-negative integer <= 2^53-1. */
  uint(what: () => string): number {
    const k = this.kind();
    if (k !== 'a number') this.schema(`${what()} must be a non-negative integer, got ${k}`);
    const { lex, plainUint } = this.numberLexeme();
    const shown = (): string => (lex.length > 40 ? `${lex.slice(0, 40)}...` : lex);
    if (!plainUint) this.schema(`${what()} must be a non-negative integer, got ${shown()}`);
    const v = lex.length <= 16 ? Number(lex) : Infinity;
    if (!Number.isSafeInteger(v)) this.schema(`${what()} ${shown()} is larger than 2^53-1`);
    return v;
  }

  uintArray(what: () => string): number[] {
    const k = this.kind();
    if (k !== 'an array') this.schema(`${what()} must be an array of integers, got ${k}`);
    this.i++;
    const out: number[] = [];
    this.ws();
    if (this.s[this.i] === ']') { this.i++; return out; }
    for (;;) {
      this.ws();
      const at = out.length;
      out.push(this.uint(() => `${what()}[${at}]`));
      this.ws();
      const c = this.s[this.i];
      if (c === ',') { this.i++; continue; }
      if (c === ']') { this.i++; return out; }
      this.syntax(`expected ',' or ']', found ${this.describeChar()}`);
    }
  }

  stringValue(what: () => string): string {
    const k = this.kind();
    if (k !== 'a string') this.schema(`${what()} must be a string, got ${k}`);
    return this.string();
  }

  literal(word: string): void {
    if (this.s.startsWith(word, this.i)) this.i += word.length;
    else this.syntax(`invalid literal`);
  }

  /** Generic value (objects as Maps, duplicate keys rejected). */
  value(depth: number, at: string): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.syntax(`nesting deeper than ${MAX_JSON_DEPTH}`);
    const k = this.kind();
    switch (k) {
      case 'a string': return this.string();
      case 'a boolean': { const t = this.s[this.i] === 't'; this.literal(t ? 'true' : 'false'); return t; }
      case 'null': this.literal('null'); return null;
      case 'a number': return Number(this.numberLexeme().lex);
      case 'an array': {
        this.i++;
        const out: JsonValue[] = [];
        this.ws();
        if (this.s[this.i] === ']') { this.i++; return out; }
        for (;;) {
          this.ws();
          out.push(this.value(depth + 1, `${at}[${out.length}]`));
          this.ws();
          const c = this.s[this.i];
          if (c === ',') { this.i++; continue; }
          if (c === ']') { this.i++; return out; }
          this.syntax(`expected ',' or ']', found ${this.describeChar()}`);
        }
      }
      default: {
        const m = new Map<string, JsonValue>();
        this.object((key) => {
          if (m.has(key)) this.schema(`duplicate key ${q(key)} in ${at}`);
          m.set(key, this.value(depth + 1, `${at}.${key}`));
        });
        return m;
      }
    }
  }

  end(): void {
    this.ws();
    if (this.i !== this.s.length) this.syntax(`unexpected ${this.describeChar()} after the top-level object`);
  }
}

/** Internal: a message to be prefixed with the file path. */
class SchemaError extends Error {}

interface Entry {
  name: string;
  dtype: StDType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

interface ParsedHeader {
  tensors: Map<string, Entry>;
  metadata: Map<string, string>;
}

function parseHeader(json: string, dataLength: number): ParsedHeader {
  const p = new JsonScanner(json, 'header');
  if (json.charCodeAt(0) !== 0x7b) p.schema(`must start with '{', found ${p.describeChar()}`);
  const tensors = new Map<string, Entry>();
  const metadata = new Map<string, string>();
  let sawMeta = false;
  p.object((key) => {
    if (key === '__metadata__') {
      if (sawMeta) p.schema('duplicate key "__metadata__"');
      sawMeta = true;
      if (p.s.startsWith('null', p.i)) { p.literal('null'); return; }
      const k = p.kind();
      if (k !== 'an object') p.schema(`"__metadata__" must be an object of strings, got ${k}`);
      p.object((mk) => {
        if (metadata.has(mk)) p.schema(`duplicate key ${q(mk)} in "__metadata__"`);
        metadata.set(mk, p.stringValue(() => `"__metadata__" value for ${q(mk)}`));
      });
      return;
    }
    if (tensors.has(key)) p.schema(`duplicate tensor name ${q(key)}`);
    tensors.set(key, parseEntry(p, key));
  });
  p.end();
  validateLayout(tensors, dataLength);
  return { tensors, metadata };
}

function parseEntry(p: JsonScanner, name: string): Entry {
  const t = (): string => `tensor ${q(name)}`;
  const k = p.kind();
  if (k !== 'an object') p.schema(`${t()} must be an object, got ${k}`);
  let dtype: string | undefined;
  let shape: number[] | undefined;
  let offsets: number[] | undefined;
  p.object((field) => {
    const dup = (): never => p.schema(`${t()}: duplicate field ${q(field)}`);
    if (field === 'dtype') {
      if (dtype !== undefined) dup();
      dtype = p.stringValue(() => `${t()} field "dtype"`);
    } else if (field === 'shape') {
      if (shape !== undefined) dup();
      shape = p.uintArray(() => `${t()} field "shape"`);
    } else if (field === 'data_offsets') {
      if (offsets !== undefined) dup();
      offsets = p.uintArray(() => `${t()} field "data_offsets"`);
      if (offsets.length !== 2) p.schema(`${t()} field "data_offsets" must be [begin, end], got ${offsets.length} numbers`);
    } else {
      p.schema(`${t()}: unexpected field ${q(field)} (allowed: dtype, shape, data_offsets)`);
    }
  });
  if (dtype === undefined) p.schema(`${t()}: missing field "dtype"`);
  if (shape === undefined) p.schema(`${t()}: missing field "shape"`);
  if (offsets === undefined) p.schema(`${t()}: missing field "data_offsets"`);
  if (!isStDType(dtype)) {
    const hint = isStDType(dtype.toUpperCase()) ? ` (dtypes are upper-case: ${dtype.toUpperCase()})` : '';
    p.schema(`${t()}: unknown dtype ${q(dtype)}${hint}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) p.schema(`${t()}: data_offsets [${begin}, ${end}] end before begin`);
  let numel = 1;
  for (const d of shape) {
    numel *= d;
    if (!Number.isSafeInteger(numel)) p.schema(`${t()}: shape ${fmtShape(shape)} has more than 2^53-1 elements`);
  }
  const bits = StDTypeBits[dtype];
  if (numel > Number.MAX_SAFE_INTEGER / bits) p.schema(`${t()}: shape ${fmtShape(shape)} of ${dtype} overflows the byte size`);
  const nbits = numel * bits;
  if (nbits % 8 !== 0) p.schema(`${t()}: ${numel} elements of ${dtype} are not a whole number of bytes`);
  if (end - begin !== nbits / 8) {
    p.schema(`${t()}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${nbits / 8}`);
  }
  return { name, dtype, shape, numel, begin, end };
}

/** Offsets must tile [0, dataLength) exactly: no gap, no overlap, nothing after the last. */
function validateLayout(tensors: Map<string, Entry>, dataLength: number): void {
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: Entry | undefined;
  for (const e of sorted) {
    if (e.begin < pos) {
      throw new SchemaError(`header: tensor ${q(e.name)} data_offsets [${e.begin}, ${e.end}] overlap tensor ${q(prev!.name)} [${prev!.begin}, ${prev!.end}]`);
    }
    if (e.begin > pos) {
      const after = prev ? `after tensor ${q(prev.name)} (ends at ${pos})` : 'at the start of the data';
      throw new SchemaError(`header: gap of ${e.begin - pos} bytes ${after} before tensor ${q(e.name)} [${e.begin}, ${e.end}]`);
    }
    pos = e.end;
    prev = e;
  }
  if (pos < dataLength) throw new SchemaError(`${dataLength - pos} trailing bytes after the last tensor (data section is ${dataLength} bytes, tensors cover ${pos})`);
  if (pos > dataLength) throw new SchemaError(`file truncated: tensors need ${pos} bytes of data but only ${dataLength} follow the header`);
}

// ---------------------------------------------------------------------------------------------
// Low-level I/O.

function readFully(fd: number, dst: Uint8Array, position: number, file: string, what: string): void {
  let done = 0;
  while (done < dst.length) {
    const len = Math.min(ioChunkBytes, dst.length - done);
    let n: number;
    try {
      n = fs.readSync(fd, dst, done, len, position + done);
    } catch (e) {
      fail(file, `${what}: read failed at byte ${position + done}: ${errMessage(e)}`, e);
    }
    if (n === 0) fail(file, `${what}: unexpected end of file at byte ${position + done} (needed ${dst.length - done} more bytes; was the file truncated after it was opened?)`);
    done += n;
  }
}

function writeFully(fd: number, src: Uint8Array): void {
  let done = 0;
  while (done < src.length) {
    const len = Math.min(ioChunkBytes, src.length - done);
    done += fs.writeSync(fd, src, done, len);
  }
}

function alloc<T>(file: string, what: string, bytes: number, make: () => T): T {
  try {
    return make();
  } catch (e) {
    return fail(file, `${what}: cannot allocate ${bytes} bytes: ${errMessage(e)}`, e);
  }
}

function sniffMagic(file: string, head: Uint8Array): void {
  // A real safetensors file has '{' at byte 8, which neither zip nor pickle has there.
  if (head.length > 8 && head[8] === 0x7b) return;
  const zip = head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
  const pickle = head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5;
  if (zip || pickle) refusePickle(file);
  if (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) fail(file, 'this is a GGUF file, not safetensors');
}

let f16Table: Float32Array | null = null;
let f8e4m3Table: Float32Array | null = null;
let f8e5m2Table: Float32Array | null = null;
let f8e8m0Table: Float32Array | null = null;

function f8Table(dtype: 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0'): Float32Array {
  if (dtype === 'F8_E5M2') {
    // e5m2 is the top byte of an IEEE half.
    if (!f8e5m2Table) { f8e5m2Table = new Float32Array(256); for (let b = 0; b < 256; b++) f8e5m2Table[b] = f16ToF32(b << 8); }
    return f8e5m2Table;
  }
  if (dtype === 'F8_E8M0') {
    // Power-of-two scale 2^(b-127); 0xff is NaN.
    if (!f8e8m0Table) { f8e8m0Table = new Float32Array(256); for (let b = 0; b < 256; b++) f8e8m0Table[b] = b === 255 ? NaN : 2 ** (b - 127); }
    return f8e8m0Table;
  }
  // e4m3fn: bias 7, no infinities, S.1111.111 is NaN, max 448.
  if (!f8e4m3Table) {
    f8e4m3Table = new Float32Array(256);
    for (let b = 0; b < 256; b++) {
      const s = b & 0x80 ? -1 : 1;
      const e = (b >>> 3) & 15;
      const m = b & 7;
      f8e4m3Table[b] = e === 15 && m === 7 ? NaN : e === 0 ? s * (m / 8) * 2 ** -6 : s * (1 + m / 8) * 2 ** (e - 7);
    }
  }
  return f8e4m3Table;
}

function f16Lut(): Float32Array {
  if (!f16Table) { f16Table = new Float32Array(65536); for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h); }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------
// Reading.

export class SafetensorsFile implements TensorSource {
  readonly path: string;
  /** Byte offset of the data buffer in the file (8 + header length). */
  readonly dataStart: number;
  readonly fileSize: number;
  private fd: number;
  private readonly tensors: Map<string, Entry>;
  private readonly meta: Map<string, string>;

  private constructor(file: string, fd: number, fileSize: number, dataStart: number, h: ParsedHeader) {
    this.path = file;
    this.fd = fd;
    this.fileSize = fileSize;
    this.dataStart = dataStart;
    this.tensors = h.tensors;
    this.meta = h.metadata;
  }

  /** Opens and validates the header; tensor data is read lazily. */
  static open(file: string): SafetensorsFile {
    if (!LITTLE_ENDIAN) fail(file, 'big-endian hosts are not supported');
    if (hasPickleExt(file)) refusePickle(file);
    let fd: number;
    try {
      // O_NONBLOCK so a FIFO cannot block the open; no effect on regular files.
      fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    } catch (e) {
      return fail(file, `cannot open: ${errMessage(e)}`, e);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) fail(file, 'not a regular file');
      const size = st.size;
      const head = new Uint8Array(Math.min(size, 9));
      readFully(fd, head, 0, file, 'header length');
      sniffMagic(file, head);
      if (size < 8) fail(file, `file is ${size} bytes, too small for the 8-byte header length`);
      const n64 = new DataView(head.buffer).getBigUint64(0, true);
      if (n64 > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n64} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
      const n = Number(n64);
      if (8 + n > size) fail(file, `header length ${n} runs past the end of the ${size}-byte file`);
      if (n === 0) fail(file, 'header length is 0');
      const bytes = new Uint8Array(n);
      readFully(fd, bytes, 8, file, 'header');
      let json: string;
      try {
        json = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch (e) {
        return fail(file, 'header is not valid UTF-8', e);
      }
      let h: ParsedHeader;
      try {
        h = parseHeader(json, size - 8 - n);
      } catch (e) {
        if (e instanceof SchemaError) fail(file, e.message);
        throw e;
      }
      return new SafetensorsFile(file, fd, size, 8 + n, h);
    } catch (e) {
      fs.closeSync(fd);
      if (e instanceof Error && (e.message.startsWith('safetensors: ') || e.message.startsWith('refusing to load '))) throw e;
      return fail(file, `unexpected error while reading the header: ${errMessage(e)}`, e);
    }
  }

  /** Tensor names, sorted. */
  keys(): string[] {
    return [...this.tensors.keys()].sort();
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  info(key: string): TensorInfo {
    const e = this.tensors.get(key);
    if (!e) fail(this.path, `no tensor named ${q(key)}`);
    return {
      dtype: e.dtype, shape: e.shape.slice(), numel: e.numel, byteLength: e.end - e.begin,
      dataOffsets: [e.begin, e.end], dataStart: this.dataStart, file: this.path,
    };
  }

  /** Header `__metadata__` (null-prototype object). */
  metadata(): Record<string, string> {
    const out = Object.create(null) as Record<string, string>;
    for (const [k, v] of this.meta) out[k] = v;
    return out;
  }

  /** The tensor's bytes, little-endian, in a fresh (aligned) buffer. */
  readRaw(key: string): Uint8Array {
    const e = this.entry(key);
    const n = e.end - e.begin;
    const out = alloc(this.path, `tensor ${q(key)}`, n, () => new Uint8Array(n));
    this.readBytes(e, out.buffer, 0, 0, n);
    return out;
  }

  /** Values as f32 (F16/BF16/F8 exact, F64 rounded, integers must lie within ±2^53). */
  readF32(key: string): Float32Array {
    const e = this.entry(key);
    const d = e.dtype;
    const lut = d === 'F16' ? f16Lut() : d === 'F8_E4M3' || d === 'F8_E5M2' || d === 'F8_E8M0' ? f8Table(d) : null;
    if (!(lut || d === 'F32' || d === 'BF16' || d === 'F64' || isIntDType(d))) {
      fail(this.path, `tensor ${q(key)}: cannot convert dtype ${d} to f32`);
    }
    const out = alloc(this.path, `tensor ${q(key)}`, e.numel * 4, () => new Float32Array(e.numel));
    if (d === 'F32') { this.readBytes(e, out.buffer, 0, 0, e.numel * 4); return out; }
    const out32 = new Uint32Array(out.buffer);
    this.convert(e, (buf, at, count) => {
      switch (d) {
        case 'F16': { const h = new Uint16Array(buf, 0, count); for (let i = 0; i < count; i++) out[at + i] = lut![h[i]!]!; break; }
        case 'F8_E4M3': case 'F8_E5M2': case 'F8_E8M0': {
          const b = new Uint8Array(buf, 0, count); for (let i = 0; i < count; i++) out[at + i] = lut![b[i]!]!; break;
        }
        case 'BF16': { const h = new Uint16Array(buf, 0, count); for (let i = 0; i < count; i++) out32[at + i] = h[i]! << 16; break; }
        case 'F64': out.set(new Float64Array(buf, 0, count), at); break;
        case 'I64': case 'U64': {
          const w = new Uint32Array(buf, 0, count * 2);
          for (let i = 0; i < count; i++) {
            const lo = w[2 * i]!;
            const hi = w[2 * i + 1]!;
            if (d === 'I64' && hi >= 0x80000000) {
              // v = (hi - 2^32) * 2^32 + lo >= -2^53  <=>  hi >= 0xffe00000
              if (hi < 0xffe00000) this.rangeError(key, d, at + i, lo, hi, '±2^53');
              out[at + i] = (hi - 4294967296) * 4294967296 + lo;
            } else {
              if (hi > 0x200000 || (hi === 0x200000 && lo !== 0)) this.rangeError(key, d, at + i, lo, hi, '±2^53');
              out[at + i] = hi * 4294967296 + lo;
            }
          }
          break;
        }
        default: out.set(intView(d, buf, count), at);
      }
    });
    return out;
  }

  /** Values as i32 (integer dtypes only; each value must fit). */
  readI32(key: string): Int32Array {
    const e = this.entry(key);
    const d = e.dtype;
    if (!isIntDType(d)) fail(this.path, `tensor ${q(key)}: dtype ${d} is not an integer type (use readF32)`);
    const out = alloc(this.path, `tensor ${q(key)}`, e.numel * 4, () => new Int32Array(e.numel));
    if (d === 'I32') { this.readBytes(e, out.buffer, 0, 0, e.numel * 4); return out; }
    this.convert(e, (buf, at, count) => {
      if (d === 'I64' || d === 'U64') {
        const w = new Uint32Array(buf, 0, count * 2);
        for (let i = 0; i < count; i++) {
          const lo = w[2 * i]!;
          const hi = w[2 * i + 1]!;
          const fits = d === 'I64' ? (hi === 0 && lo < 0x80000000) || (hi === 0xffffffff && lo >= 0x80000000) : hi === 0 && lo < 0x80000000;
          if (!fits) this.rangeError(key, d, at + i, lo, hi, 'int32');
          out[at + i] = lo | 0;
        }
      } else if (d === 'U32') {
        const w = new Uint32Array(buf, 0, count);
        for (let i = 0; i < count; i++) {
          if (w[i]! > 0x7fffffff) fail(this.path, `tensor ${q(key)}: element ${at + i} = ${w[i]} of U32 does not fit in int32`);
          out[at + i] = w[i]!;
        }
      } else {
        out.set(intView(d, buf, count), at);
      }
    });
    return out;
  }

  /** The tensor in an engine storage dtype: F32/F16/BF16/I32/I8/U8/BOOL (checked 0/1) as stored, F64/F8 -> f32, other ints -> i32. */
  read(key: string): StoredTensor {
    const e = this.entry(key);
    const shape = e.shape.slice();
    const n = e.numel;
    const bytes = e.end - e.begin;
    const raw = <T extends AnyData>(make: () => T): T => {
      const a = alloc(this.path, `tensor ${q(key)}`, bytes, make);
      this.readBytes(e, a.buffer as ArrayBuffer, 0, 0, bytes);
      return a;
    };
    switch (e.dtype) {
      case 'F16': return { dtype: 'f16', shape, data: raw(() => new Uint16Array(n)) };
      case 'BF16': return { dtype: 'bf16', shape, data: raw(() => new Uint16Array(n)) };
      case 'I8': return { dtype: 'i8', shape, data: raw(() => new Int8Array(n)) };
      case 'U8': return { dtype: 'u8', shape, data: raw(() => new Uint8Array(n)) };
      case 'BOOL': {
        const m = raw(() => new Uint8Array(n));
        const bad = m.findIndex((v) => v > 1);
        if (bad >= 0) fail(this.path, `tensor ${q(key)}: BOOL element ${bad} is ${m[bad]}, not 0 or 1`);
        return { dtype: 'bool', shape, data: m };
      }
      case 'F32': case 'F64': case 'F8_E4M3': case 'F8_E5M2': case 'F8_E8M0':
        return { dtype: 'f32', shape, data: this.readF32(key) };
      default:
        if (isIntDType(e.dtype)) return { dtype: 'i32', shape, data: this.readI32(key) };
        return fail(this.path, `tensor ${q(key)}: dtype ${e.dtype} has no engine storage type (use readRaw)`);
    }
  }

  close(): void {
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      fs.closeSync(fd);
    }
  }

  private entry(key: string): Entry {
    if (this.fd < 0) fail(this.path, `file is closed (reading tensor ${q(key)})`);
    const e = this.tensors.get(key);
    if (!e) fail(this.path, `no tensor named ${q(key)}`);
    return e;
  }

  /** Reads bytes [from, from+len) of tensor e into buf at dstOff, in bounded chunks. */
  private readBytes(e: Entry, buf: ArrayBufferLike, dstOff: number, from: number, len: number): void {
    const pos = this.dataStart + e.begin + from;
    for (let done = 0; done < len;) {
      const n = Math.min(ioChunkBytes, len - done);
      readFully(this.fd, new Uint8Array(buf, dstOff + done, n), pos + done, this.path, `tensor ${q(e.name)}`);
      done += n;
    }
  }

  /** Streams the tensor through an aligned scratch buffer, `chunk` elements at a time. */
  private convert(e: Entry, each: (buf: ArrayBuffer, at: number, count: number) => void): void {
    const size = StDTypeBits[e.dtype] / 8;
    const chunk = Math.max(1, Math.floor(Math.min(ioChunkBytes, CONVERT_CHUNK_BYTES) / size));
    const scratch = new ArrayBuffer(Math.min(chunk, e.numel) * size);
    for (let at = 0; at < e.numel; at += chunk) {
      const count = Math.min(chunk, e.numel - at);
      this.readBytes(e, scratch, 0, at * size, count * size);
      each(scratch, at, count);
    }
  }

  private rangeError(key: string, d: string, index: number, lo: number, hi: number, range: string): never {
    const v = d === 'I64' ? BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)) : (BigInt(hi) << 32n) | BigInt(lo);
    return fail(this.path, `tensor ${q(key)}: element ${index} = ${v} of ${d} is outside ${range}`);
  }
}

type IntDType = 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'I32' | 'U32' | 'I64' | 'U64';

function isIntDType(d: StDType): d is IntDType {
  return d === 'BOOL' || d === 'U8' || d === 'I8' || d === 'I16' || d === 'U16' || d === 'I32' || d === 'U32' || d === 'I64' || d === 'U64';
}

function intView(d: StDType, buf: ArrayBuffer, count: number): ArrayLike<number> {
  switch (d) {
    case 'I8': return new Int8Array(buf, 0, count);
    case 'I16': return new Int16Array(buf, 0, count);
    case 'U16': return new Uint16Array(buf, 0, count);
    case 'I32': return new Int32Array(buf, 0, count);
    case 'U32': return new Uint32Array(buf, 0, count);
    default: return new Uint8Array(buf, 0, count);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: a directory with model.safetensors or model.safetensors.index.json + shards.

const SHARD_SET_KEY = 'chimera.shard_set';

export class Checkpoint implements TensorSource {
  /** The directory, index or file this checkpoint was opened from. */
  readonly path: string;
  readonly files: readonly SafetensorsFile[];
  /** The index's "metadata" object (null for a single file). */
  readonly indexMetadata: Record<string, unknown> | null;
  private readonly owner: Map<string, SafetensorsFile>;

  constructor(p: string, files: SafetensorsFile[], owner: Map<string, SafetensorsFile>, indexMetadata: Record<string, unknown> | null) {
    this.path = p;
    this.files = files;
    this.owner = owner;
    this.indexMetadata = indexMetadata;
  }

  keys(): string[] { return [...this.owner.keys()].sort(); }
  has(key: string): boolean { return this.owner.has(key); }
  info(key: string): TensorInfo { return this.file(key).info(key); }
  readRaw(key: string): Uint8Array { return this.file(key).readRaw(key); }
  readF32(key: string): Float32Array { return this.file(key).readF32(key); }
  readI32(key: string): Int32Array { return this.file(key).readI32(key); }
  read(key: string): StoredTensor { return this.file(key).read(key); }

  /** `__metadata__` of the first file (shards written together share it), minus the shard-set tag. */
  metadata(): Record<string, string> {
    const m = this.files.length ? this.files[0]!.metadata() : (Object.create(null) as Record<string, string>);
    delete m[SHARD_SET_KEY];
    return m;
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private file(key: string): SafetensorsFile {
    const f = this.owner.get(key);
    if (!f) fail(this.path, `no tensor named ${q(key)}`);
    return f;
  }
}

/**
 * Opens a checkpoint: a directory holding model.safetensors or model.safetensors.index.json,
 * an index file, or a single .safetensors file. Pickle checkpoints are refused.
 */
export function openCheckpoint(p: string): Checkpoint {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    return fail(p, `cannot open: ${errMessage(e)}`, e);
  }
  if (st.isFile()) {
    if (p.endsWith('.index.json')) {
      if (path.basename(p).includes('.bin.')) refusePickle(p);
      return openIndex(p);
    }
    const f = SafetensorsFile.open(p);
    return new Checkpoint(p, [f], new Map(f.keys().map((k) => [k, f])), null);
  }
  if (!st.isDirectory()) fail(p, 'not a file or directory');
  const single = path.join(p, 'model.safetensors');
  const index = path.join(p, 'model.safetensors.index.json');
  const hasSingle = fs.existsSync(single);
  const hasIndex = fs.existsSync(index);
  if (hasSingle && hasIndex) fail(p, 'both model.safetensors and model.safetensors.index.json exist; remove the stale one');
  if (hasIndex) return openIndex(index);
  if (hasSingle) return openCheckpoint(single);
  for (const name of ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.pt', 'model.pth', 'model.ckpt']) {
    if (fs.existsSync(path.join(p, name))) refusePickle(path.join(p, name));
  }
  return fail(p, 'no model.safetensors or model.safetensors.index.json in this directory');
}

function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\:\0]/.test(name) && !path.isAbsolute(name) && path.basename(name) === name;
}

function openIndex(indexPath: string): Checkpoint {
  const dir = path.dirname(indexPath);
  const root = readJsonFile(indexPath);
  if (!(root instanceof Map)) fail(indexPath, 'index must be a JSON object');
  const wm = root.get('weight_map');
  if (!(wm instanceof Map)) fail(indexPath, `index: "weight_map" must be an object, got ${jsonKind(wm)}`);
  const md = root.get('metadata');
  if (md !== undefined && md !== null && !(md instanceof Map)) fail(indexPath, `index: "metadata" must be an object, got ${jsonKind(md)}`);
  const shardNames: string[] = [];
  for (const [key, shard] of wm) {
    if (typeof shard !== 'string') fail(indexPath, `index: weight_map entry ${q(key)} must be a file name string, got ${jsonKind(shard)}`);
    if (!isPlainFileName(shard)) fail(indexPath, `index: weight_map entry ${q(key)} names ${q(shard)}, which is not a plain file name in the checkpoint directory`);
    if (hasPickleExt(shard)) refusePickle(path.join(dir, shard));
    if (!shard.endsWith('.safetensors')) fail(indexPath, `index: weight_map entry ${q(key)} names ${q(shard)}, which is not a .safetensors file`);
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }
  shardNames.sort();
  const files: SafetensorsFile[] = [];
  try {
    for (const name of shardNames) {
      const full = path.join(dir, name);
      if (!fs.existsSync(full)) fail(indexPath, `shard ${q(name)} referenced by weight_map does not exist`);
      files.push(SafetensorsFile.open(full));
    }
    const byName = new Map(shardNames.map((n, i) => [n, files[i]!]));
    const owner = new Map<string, SafetensorsFile>();
    for (const [key, shard] of wm) {
      const f = byName.get(shard as string)!;
      if (!f.has(key)) fail(indexPath, `tensor ${q(key)} is mapped to shard ${q(shard as string)}, which does not contain it`);
      owner.set(key, f);
    }
    for (const [name, f] of byName) {
      for (const key of f.keys()) {
        const mapped = wm.get(key);
        if (mapped !== name) {
          fail(indexPath, mapped === undefined
            ? `shard ${q(name)} contains tensor ${q(key)}, which weight_map does not list`
            : `shard ${q(name)} contains tensor ${q(key)}, which weight_map maps to ${q(mapped as string)}`);
        }
      }
    }
    const setId = md instanceof Map ? md.get(SHARD_SET_KEY) : undefined;
    if (typeof setId === 'string') {
      for (const [name, f] of byName) {
        const got = f.metadata()[SHARD_SET_KEY];
        if (got !== setId) fail(indexPath, `shard ${q(name)} belongs to a different save (${SHARD_SET_KEY} ${got === undefined ? 'missing' : q(got)}, index has ${q(setId)}); the checkpoint is torn`);
      }
    }
    return new Checkpoint(indexPath, files, owner, md instanceof Map ? (toPlain(md) as Record<string, unknown>) : null);
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

function jsonKind(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function toPlain(v: JsonValue): unknown {
  if (v instanceof Map) {
    const o = Object.create(null) as Record<string, unknown>;
    for (const [k, x] of v) o[k] = toPlain(x);
    return o;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

function readJsonFile(file: string): JsonValue {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) fail(file, 'not a regular file');
      if (st.size > MAX_HEADER_BYTES) fail(file, `index is ${st.size} bytes, over the limit of ${MAX_HEADER_BYTES}`);
      const bytes = new Uint8Array(st.size);
      readFully(fd, bytes, 0, file, 'index');
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('safetensors: ')) throw e;
    return fail(file, `cannot read index: ${errMessage(e)}`, e);
  }
  try {
    const p = new JsonScanner(text, 'index');
    p.ws();
    const v = p.value(0, 'index');
    p.end();
    return v;
  } catch (e) {
    if (e instanceof SchemaError) fail(file, e.message);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing.

export interface TensorToWrite {
  /** A safetensors dtype name or an engine dtype (f32, f16, bf16, i32, i8, u8, bool). */
  dtype: StDType | DType;
  shape: readonly number[];
  /** Little-endian element bytes; byteLength must equal numel * itemsize. */
  data: ArrayBufferView;
}

export type TensorsToWrite = Map<string, TensorToWrite> | Record<string, TensorToWrite>;

interface Prepared {
  name: string;
  dtype: StDType;
  shape: number[];
  bytes: Uint8Array;
  bits: number;
}

function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

function entriesOf<T>(m: Map<string, T> | Record<string, T>): [string, T][] {
  return m instanceof Map ? [...m.entries()] : Object.keys(m).map((k) => [k, m[k]!]);
}

function prepare(file: string, tensors: TensorsToWrite): Prepared[] {
  if (tensors === null || typeof tensors !== 'object') fail(file, 'tensors must be a Map or an object');
  const out: Prepared[] = [];
  for (const [name, t] of entriesOf(tensors)) {
    if (typeof name !== 'string') fail(file, `tensor names must be strings, got ${typeof name}`);
    const w = `tensor ${q(name)}`;
    if (name === '__metadata__') fail(file, `${w}: the name is reserved for metadata`);
    if (!isWellFormed(name)) fail(file, `${w}: name contains a lone UTF-16 surrogate`);
    if (t === null || typeof t !== 'object') fail(file, `${w}: expected {dtype, shape, data}`);
    const dtype: string = t.dtype;
    const st: StDType | undefined = isStDType(dtype) ? dtype : isDType(dtype) ? engineToSt[dtype] : undefined;
    if (st === undefined) fail(file, `${w}: unknown dtype ${q(String(dtype))}`);
    if (!Array.isArray(t.shape)) fail(file, `${w}: shape must be an array`);
    const shape = t.shape.slice();
    let numel = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail(file, `${w}: shape ${fmtShape(shape)} must hold non-negative integers`);
      numel *= d;
      if (!Number.isSafeInteger(numel)) fail(file, `${w}: shape ${fmtShape(shape)} has more than 2^53-1 elements`);
    }
    const bits = StDTypeBits[st];
    if (numel > Number.MAX_SAFE_INTEGER / bits || (numel * bits) % 8 !== 0) {
      fail(file, `${w}: ${numel} elements of ${st} are not a whole, representable number of bytes`);
    }
    const data = t.data;
    if (!ArrayBuffer.isView(data)) fail(file, `${w}: data must be a typed array or DataView`);
    if (data.byteLength !== (numel * bits) / 8) {
      fail(file, `${w}: data has ${data.byteLength} bytes but ${st} ${fmtShape(shape)} needs ${(numel * bits) / 8}`);
    }
    out.push({ name, dtype: st, shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), bits });
  }
  return out;
}

function metadataEntries(file: string, metadata: Record<string, string> | Map<string, string> | undefined): [string, string][] {
  if (metadata === undefined) return [];
  if (metadata === null || typeof metadata !== 'object') fail(file, 'metadata must be a Map or an object of strings');
  const out = entriesOf(metadata);
  for (const [k, v] of out) {
    if (typeof v !== 'string') fail(file, `metadata ${q(k)} must be a string, got ${typeof v}`);
    if (!isWellFormed(k) || !isWellFormed(v)) fail(file, `metadata ${q(k)} contains a lone UTF-16 surrogate`);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Header bytes (padded with spaces to a multiple of 8) and the data order. */
function layout(file: string, tensors: Prepared[], meta: [string, string][]): { header: Uint8Array; order: Prepared[] } {
  // Data: wider dtypes first, then by name, so every tensor starts aligned to its element size.
  const order = tensors.slice().sort((a, b) => b.bits - a.bits || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const offsets = new Map<string, [number, number]>();
  let pos = 0;
  for (const t of order) { offsets.set(t.name, [pos, pos + t.bytes.length]); pos += t.bytes.length; }
  const parts: string[] = [];
  if (meta.length) parts.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  const byName = tensors.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of byName) {
    const [b, e] = offsets.get(t.name)!;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${b},${e}]}`);
  }
  let json = `{${parts.join(',')}}`;
  let n = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (n % 8)) % 8);
  n = Buffer.byteLength(json, 'utf8');
  if (n > MAX_HEADER_BYTES) fail(file, `header would be ${n} bytes, over the limit of ${MAX_HEADER_BYTES}`);
  const header = new Uint8Array(8 + n);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  new TextEncoder().encodeInto(json, header.subarray(8));
  return { header, order };
}

function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return; // platforms without directory fds
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes via `<file>.tmp-<pid>-<random>`: write, fsync, rename over the target, fsync the directory. */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  let tmp = '';
  let fd = -1;
  for (let attempt = 0; fd < 0; attempt++) {
    tmp = path.join(dir, `${base}.tmp-${process.pid}-${Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0')}`);
    try {
      fd = fs.openSync(tmp, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) fail(file, `cannot create temporary file: ${errMessage(e)}`, e);
    }
  }
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) { try { fs.closeSync(fd); } catch { /* already failing */ } }
    try { fs.unlinkSync(tmp); } catch { /* already failing */ }
    if (e instanceof Error && e.message.startsWith('safetensors: ')) throw e;
    fail(file, `write failed: ${errMessage(e)}`, e);
  }
  try {
    fsyncDir(dir);
  } catch (e) {
    fail(file, `written, but syncing the directory failed: ${errMessage(e)}`, e);
  }
}

/** Writes one safetensors file atomically. Header keys sorted, data 8-byte aligned. */
export function writeSafetensors(file: string, tensors: TensorsToWrite, metadata?: Record<string, string> | Map<string, string>): void {
  if (!LITTLE_ENDIAN) fail(file, 'big-endian hosts are not supported');
  const prepared = prepare(file, tensors);
  const { header, order } = layout(file, prepared, metadataEntries(file, metadata));
  writeFileAtomic(file, (fd) => {
    writeFully(fd, header);
    for (const t of order) writeFully(fd, t.bytes);
  });
}

export interface ShardedWriteResult {
  files: string[];
  indexPath: string;
  totalSize: number;
}

const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

/**
 * Writes `model-0000k-of-0000n.safetensors` shards (tensors in name order, a new shard when
 * the next tensor would push one past maxShardBytes; a larger tensor gets a shard of its own)
 * and then `model.safetensors.index.json`, each atomically. The index is written last and
 * tags the shard set, so a crash mid-save is detected at load. Stale shards of an earlier save
 * and a stale model.safetensors in `dir` are removed afterwards.
 */
export function writeSharded(dir: string, tensors: TensorsToWrite, maxShardBytes: number, metadata?: Record<string, string> | Map<string, string>): ShardedWriteResult {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) fail(indexPath, `maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  const prepared = prepare(indexPath, tensors).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const meta = metadataEntries(indexPath, metadata).filter(([k]) => k !== SHARD_SET_KEY);
  const groups: Prepared[][] = [[]];
  let cur = 0;
  for (const t of prepared) {
    const g = groups[groups.length - 1]!;
    if (g.length > 0 && cur + t.bytes.length > maxShardBytes) { groups.push([t]); cur = t.bytes.length; }
    else { g.push(t); cur += t.bytes.length; }
  }
  const n = groups.length;
  if (n > 99999) fail(indexPath, `${n} shards exceed the 5-digit shard naming`);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(dir, `cannot create directory: ${errMessage(e)}`, e);
  }
  const setId = `${Date.now().toString(16)}-${Math.floor(Math.random() * 2 ** 48).toString(16)}`;
  const names = groups.map((_, k) => `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  const weightMap = Object.create(null) as Record<string, string>;
  let total = 0;
  groups.forEach((g, k) => {
    const file = path.join(dir, names[k]!);
    const m: [string, string][] = [...meta, [SHARD_SET_KEY, setId]];
    const { header, order } = layout(file, g, m.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
    writeFileAtomic(file, (fd) => {
      writeFully(fd, header);
      for (const t of order) writeFully(fd, t.bytes);
    });
    for (const t of g) { weightMap[t.name] = names[k]!; total += t.bytes.length; }
  });
  const index = { metadata: { total_size: total, [SHARD_SET_KEY]: setId }, weight_map: weightMap };
  const text = new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`);
  writeFileAtomic(indexPath, (fd) => writeFully(fd, text));
  for (const f of fs.readdirSync(dir)) {
    if ((SHARD_RE.test(f) && !names.includes(f)) || f === 'model.safetensors') {
      try { fs.unlinkSync(path.join(dir, f)); } catch { /* best effort */ }
    }
  }
  return { files: names.map((f) => path.join(dir, f)), indexPath, totalSize: total };
}

/** Removes `*.tmp-<pid>-<hex>` files in dir left by writers that are no longer running. */
export function removeStaleTempFiles(dir: string): string[] {
  const removed: string[] = [];
  for (const f of fs.readdirSync(dir)) {
    const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(f);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    let alive = true;
    try { process.kill(pid, 0); } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM'; }
    if (alive) continue;
    try { fs.unlinkSync(path.join(dir, f)); removed.push(f); } catch { /* raced or not ours */ }
  }
  return removed;
}
