// safetensors reader/writer: round trips, python-written reference files, shards, refusals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  SafetensorsFile, StDTypeBits, type StDType, type TensorToWrite, openCheckpoint, removeStaleTempFiles,
  setIoChunkBytesForTesting, writeSafetensors, writeSharded,
} from '../src/io/safetensors.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/engine/dtype.ts';
import { Rng } from '../src/engine/rng.ts';

function findFixtures(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const cand = path.join(dir, 'test', 'fixtures', 'safetensors');
    if (fs.existsSync(cand)) return cand;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('test/fixtures/safetensors not found');
    dir = up;
  }
}

const FIX = findFixtures();
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-st-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));
let seq = 0;
const tmp = (name = 'x.safetensors'): string => {
  const d = path.join(TMP, `t${seq++}`);
  fs.mkdirSync(d);
  return path.join(d, name);
};

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.nextU32() & 0xff;
  return b;
}

function f32Bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function hex(a: Uint8Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

/** Raw file: u64 LE length + header text + data. */
function rawFile(file: string, header: string, data: Uint8Array = new Uint8Array(0)): string {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

const isNaNBits = (b: number): boolean => (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;

function assertBitsEqual(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (isNaNBits(want[i]!)) assert.ok(isNaNBits(got[i]!), `${what}[${i}] should be NaN`);
    else assert.equal(got[i], want[i], `${what}[${i}]: got 0x${got[i]!.toString(16)} want 0x${want[i]!.toString(16)}`);
  }
}

test('round trip: every byte-sized dtype, raw bytes, info, metadata, alignment', () => {
  const rng = new Rng(1);
  const tensors = new Map<string, TensorToWrite>();
  const shapes: number[][] = [[3], [2, 5], [], [0], [1, 1, 7], [4, 0, 2]];
  let k = 0;
  for (const dt of Object.keys(StDTypeBits) as StDType[]) {
    if (StDTypeBits[dt] % 8 !== 0) continue;
    for (const shape of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      tensors.set(`${dt}.${k++}`, { dtype: dt, shape, data: randomBytes(rng, (n * StDTypeBits[dt]) / 8) });
    }
  }
  tensors.set('__proto__', { dtype: 'F32', shape: [1], data: new Float32Array([3]) });
  tensors.set('constructor', { dtype: 'U8', shape: [2], data: new Uint8Array([1, 2]) });
  tensors.set('naïve/ключ/🙂', { dtype: 'I8', shape: [1], data: new Int8Array([-3]) });
  const f = tmp();
  const meta = { format: 'pt', __proto__: 'not a prototype', note: 'ünïcode "quoted"\n' } as Record<string, string>;
  Object.defineProperty(meta, '__proto__', { value: 'not a prototype', enumerable: true });
  writeSafetensors(f, tensors, meta);
  const sf = SafetensorsFile.open(f);
  try {
    assert.equal(sf.dataStart % 8, 0, 'header padded to a multiple of 8');
    assert.deepEqual(sf.keys(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const info = sf.info(name);
      const want = t.dtype as StDType;
      assert.equal(info.dtype, want);
      assert.deepEqual(info.shape, t.shape);
      const itemsize = StDTypeBits[want] / 8;
      assert.equal((info.dataStart + info.dataOffsets[0]) % itemsize, 0, `${name} aligned to its element size`);
      const src = t.data;
      assert.equal(hex(sf.readRaw(name)), hex(new Uint8Array(src.buffer, src.byteOffset, src.byteLength)), name);
    }
    const m = sf.metadata();
    assert.equal(Object.getPrototypeOf(m), null);
    assert.equal(m['format'], 'pt');
    assert.equal(m['__proto__'], 'not a prototype');
    assert.equal(m['note'], 'ünïcode "quoted"\n');
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  } finally {
    sf.close();
  }
  // Header JSON: valid, keys sorted, __metadata__ first.
  const buf = fs.readFileSync(f);
  const n = Number(buf.readBigUInt64LE(0));
  const text = buf.subarray(8, 8 + n).toString('utf8');
  assert.match(text, /^\{"__metadata__":/);
  assert.match(text, / *$/);
  const keys = [...text.matchAll(/"([^"]*)":\{"dtype"/g)].map((x) => x[1]);
  assert.deepEqual(keys, keys.slice().sort());
  assert.equal(fs.readdirSync(path.dirname(f)).length, 1, 'no temp files left behind');
});

test('round trip: engine dtypes through read(), readF32 and readI32', () => {
  const f = tmp();
  const vals = new Float32Array([0, -0, 1.5, -2.25, 65504, 1e-3, Infinity, -Infinity, NaN, 3.14159]);
  const f16 = Uint16Array.from(vals, f32ToF16);
  const bf16 = Uint16Array.from(vals, f32ToBf16);
  writeSafetensors(f, {
    f32: { dtype: 'f32', shape: [2, 5], data: vals },
    f16: { dtype: 'f16', shape: [10], data: f16 },
    bf16: { dtype: 'bf16', shape: [5, 2], data: bf16 },
    i32: { dtype: 'i32', shape: [3], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 5]) },
    i8: { dtype: 'i8', shape: [2], data: new Int8Array([-128, 127]) },
    u8: { dtype: 'u8', shape: [2], data: new Uint8Array([0, 255]) },
    mask: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) },
  });
  const sf = SafetensorsFile.open(f);
  assert.deepEqual(f32Bits(sf.readF32('f32')), f32Bits(vals));
  const r16 = sf.read('f16');
  assert.equal(r16.dtype, 'f16');
  assert.deepEqual(Array.from(r16.data), Array.from(f16));
  assert.deepEqual(r16.shape, [10]);
  const rb = sf.read('bf16');
  assert.equal(rb.dtype, 'bf16');
  assert.deepEqual(Array.from(rb.data), Array.from(bf16));
  // f16/bf16 -> f32 are exact widenings of the stored bits.
  const back16 = sf.readF32('f16');
  const backBf = sf.readF32('bf16');
  for (let i = 0; i < vals.length; i++) {
    assert.equal(Object.is(back16[i], f16ToF32(f16[i]!)) || (Number.isNaN(back16[i]) && Number.isNaN(f16ToF32(f16[i]!))), true, `f16[${i}]`);
    assert.equal(Object.is(backBf[i], bf16ToF32(bf16[i]!)) || (Number.isNaN(backBf[i]) && Number.isNaN(bf16ToF32(bf16[i]!))), true, `bf16[${i}]`);
  }
  assert.equal(back16[2], 1.5);
  assert.equal(back16[4], 65504);
  assert.equal(sf.readF32('bf16')[3], -2.25);
  assert.deepEqual(Array.from(sf.readI32('i32')), [-(2 ** 31), 2 ** 31 - 1, 5]);
  assert.deepEqual(Array.from(sf.readI32('i8')), [-128, 127]);
  assert.deepEqual(Array.from(sf.readF32('u8')), [0, 255]);
  assert.deepEqual(sf.read('mask'), { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) });
  assert.deepEqual(sf.read('i8'), { dtype: 'i8', shape: [2], data: new Int8Array([-128, 127]) });
  assert.throws(() => sf.readI32('f32'), (e: Error) => e.message.includes(f) && e.message.includes('"f32"') && /not an integer/.test(e.message));
  sf.close();
  assert.throws(() => sf.readRaw('f32'), (e: Error) => e.message.includes(f) && /closed/.test(e.message));
  sf.close(); // idempotent
});

test('python-written reference file: every dtype, F16/BF16/F64 conversions match torch', () => {
  const file = path.join(FIX, 'reference_dtypes.safetensors');
  const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'reference_dtypes.expected.json'), 'utf8')) as
    Record<string, { dtype: string; shape: number[]; hex: string; f32: number[] | null; i32?: number[] | null }>;
  const sf = SafetensorsFile.open(file);
  try {
    assert.deepEqual(sf.keys(), Object.keys(expected).sort());
    assert.equal(sf.metadata()['format'], 'pt');
    assert.equal(sf.metadata()['__proto__'], 'x');
    for (const [name, e] of Object.entries(expected)) {
      const info = sf.info(name);
      assert.equal(info.dtype, e.dtype, name);
      assert.deepEqual(info.shape, e.shape, name);
      assert.equal(hex(sf.readRaw(name)), e.hex, `${name} raw`);
      if (e.f32) assertBitsEqual(f32Bits(sf.readF32(name)), e.f32, `${name} f32`);
      else assert.throws(() => sf.readF32(name), (err: Error) => err.message.includes(file) && err.message.includes(`"${name}"`) && /2\^53/.test(err.message));
      if (e.i32 !== undefined) {
        if (e.i32) assert.deepEqual(Array.from(sf.readI32(name)), e.i32, `${name} i32`);
        else assert.throws(() => sf.readI32(name), (err: Error) => err.message.includes(file) && err.message.includes(`"${name}"`) && /int32/.test(err.message));
      }
    }
    assert.deepEqual(sf.info('scalar').shape, []);
    assert.equal(sf.readF32('scalar')[0], 42.5);
    assert.equal(sf.readF32('empty').length, 0);
    assert.equal(sf.readRaw('empty').length, 0);
  } finally {
    sf.close();
  }
});

test('python-written unaligned file (no header padding, odd offsets) reads correctly', () => {
  const file = path.join(FIX, 'unaligned.safetensors');
  const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'unaligned.expected.json'), 'utf8')) as
    Record<string, { hex: string; f32: number[] }>;
  const sf = SafetensorsFile.open(file);
  assert.notEqual((sf.dataStart + sf.info('b').dataOffsets[0]) % 4, 0, 'F32 tensor at an unaligned file offset');
  for (const [name, e] of Object.entries(expected)) {
    assert.equal(hex(sf.readRaw(name)), e.hex);
    assertBitsEqual(f32Bits(sf.readF32(name)), e.f32, name);
  }
  assert.deepEqual(Array.from(sf.readF32('b')), [1.25, -7.5]);
  assert.deepEqual(Array.from(sf.readF32('e')), [-3, 2 ** 40]);
  sf.close();
});

test('python-written HF sharded checkpoint opens through the index', () => {
  const dir = path.join(FIX, 'sharded');
  const expected = JSON.parse(fs.readFileSync(path.join(FIX, 'sharded.expected.json'), 'utf8')) as
    Record<string, { dtype: string; shape: number[]; hex: string; f32: number[] }>;
  const ck = openCheckpoint(dir);
  try {
    assert.deepEqual(ck.keys(), Object.keys(expected).sort());
    assert.equal(ck.files.length, 2);
    assert.equal((ck.indexMetadata as Record<string, unknown>)['total_size'], 148);
    for (const [name, e] of Object.entries(expected)) {
      assert.equal(ck.info(name).dtype, e.dtype);
      assert.equal(hex(ck.readRaw(name)), e.hex);
      assertBitsEqual(f32Bits(ck.readF32(name)), e.f32, name);
    }
    assert.equal(ck.metadata()['format'], 'pt');
    assert.throws(() => ck.readF32('nope'), /no tensor named "nope"/);
  } finally {
    ck.close();
  }
});

test('writeSharded round trip, stale shards removed, torn sets detected', () => {
  const rng = new Rng(7);
  const dir = path.dirname(tmp());
  const tensors = new Map<string, TensorToWrite>();
  for (let i = 0; i < 12; i++) {
    const n = 10 + i * 7;
    const data = new Float32Array(n);
    for (let j = 0; j < n; j++) data[j] = rng.normal();
    tensors.set(`layer.${String(i).padStart(2, '0')}.w`, { dtype: 'F32', shape: [n], data });
  }
  tensors.set('big', { dtype: 'U8', shape: [2000], data: randomBytes(rng, 2000) }); // larger than a shard
  tensors.set('__proto__', { dtype: 'I64', shape: [2], data: new BigInt64Array([-5n, 2n ** 52n]) });
  const res = writeSharded(dir, tensors, 400, { format: 'pt' });
  assert.ok(res.files.length > 3, `several shards (${res.files.length})`);
  const n = res.files.length;
  assert.equal(path.basename(res.files[0]!), `model-00001-of-${String(n).padStart(5, '0')}.safetensors`);
  const index = JSON.parse(fs.readFileSync(res.indexPath, 'utf8'));
  let total = 0;
  for (const t of tensors.values()) total += t.data.byteLength;
  assert.equal(index.metadata.total_size, total);
  assert.equal(res.totalSize, total);
  let ck = openCheckpoint(dir);
  assert.deepEqual(ck.keys(), [...tensors.keys()].sort());
  for (const [name, t] of tensors) assert.equal(hex(ck.readRaw(name)), hex(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  assert.deepEqual(Array.from(ck.readF32('__proto__')), [-5, 2 ** 52]);
  assert.deepEqual(ck.metadata(), Object.assign(Object.create(null), { format: 'pt' }));
  ck.close();

  // Fewer, bigger shards: old ones disappear.
  const res2 = writeSharded(dir, tensors, 1 << 20);
  assert.equal(res2.files.length, 1);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['model-00001-of-00001.safetensors', 'model.safetensors.index.json']);
  ck = openCheckpoint(dir);
  assert.equal(ck.keys().length, tensors.size);
  ck.close();
  // Crash between a new save's shards and its index: a shard from another save with the same
  // name and keys sits next to the index. Only the shard-set tag can tell.
  const saved = fs.readFileSync(res2.files[0]!);
  writeSharded(dir, tensors, 1 << 20);
  fs.writeFileSync(res2.files[0]!, saved);
  assert.throws(() => openCheckpoint(dir), (e: Error) => /different save/.test(e.message) && /torn/.test(e.message) && e.message.includes(dir));
});

test('index validation: traversal, absolute, missing shard, missing/extra keys, pickle shards', () => {
  const base = path.join(FIX, 'sharded');
  const mk = (weightMap: unknown, extra: Record<string, unknown> = {}): string => {
    const dir = path.dirname(tmp());
    for (const f of fs.readdirSync(base)) fs.copyFileSync(path.join(base, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap, ...extra }));
    return dir;
  };
  const good = JSON.parse(fs.readFileSync(path.join(base, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>;
  const cases: [string, unknown, RegExp][] = [
    ['traversal', { ...good, 'embed.weight': '../model-00001-of-00002.safetensors' }, /not a plain file name/],
    ['absolute', { ...good, 'embed.weight': '/etc/passwd' }, /not a plain file name/],
    ['subdir', { ...good, 'embed.weight': 'sub/model.safetensors' }, /not a plain file name/],
    ['dotdot', { ...good, 'embed.weight': '..' }, /not a plain file name/],
    ['empty name', { ...good, 'embed.weight': '' }, /not a plain file name/],
    ['pickle shard', { ...good, 'embed.weight': 'pytorch_model-00001-of-00002.bin' }, /refusing to load .*pickle-based/],
    ['not safetensors', { ...good, 'embed.weight': 'weights.npz' }, /not a \.safetensors file/],
    ['missing shard', { ...good, 'embed.weight': 'model-00009-of-00009.safetensors' }, /does not exist/],
    ['key not in shard', { ...good, 'ghost': 'model-00001-of-00002.safetensors' }, /"ghost" is mapped to shard .* which does not contain it/],
    ['key unlisted', Object.fromEntries(Object.entries(good).filter(([k]) => k !== 'lm_head.weight')), /contains tensor "lm_head.weight", which weight_map does not list/],
    ['key in wrong shard', { ...good, 'lm_head.weight': 'model-00001-of-00002.safetensors' }, /"lm_head.weight" is mapped to shard/],
    ['non-string shard', { ...good, 'embed.weight': 3 }, /must be a file name string/],
    ['weight_map array', [], /"weight_map" must be an object/],
    ['weight_map missing', undefined, /"weight_map" must be an object, got nothing/],
  ];
  for (const [label, wm, re] of cases) {
    const dir = mk(wm);
    assert.throws(() => openCheckpoint(dir), (e: Error) => {
      assert.ok(e.message.includes(dir), `${label}: message names the path: ${e.message}`);
      assert.match(e.message, re, label);
      return true;
    }, label);
  }
  // Duplicate keys in the index JSON (JSON.parse would keep the last one).
  const dir = mk(good);
  const idx = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(idx, '{"weight_map": {"embed.weight": "model-00001-of-00002.safetensors", "embed.weight": "model-00002-of-00002.safetensors"}}');
  assert.throws(() => openCheckpoint(dir), /duplicate key "embed.weight"/);
  fs.writeFileSync(idx, '{"weight_map": {}');
  assert.throws(() => openCheckpoint(dir), (e: Error) => e.message.includes(idx) && /not valid JSON/.test(e.message));
  fs.writeFileSync(idx, `{"weight_map": {}, "metadata": ${'['.repeat(100000)}}`);
  assert.throws(() => openCheckpoint(dir), /nesting deeper/);
  // Both layouts present is ambiguous.
  const both = mk(good);
  fs.copyFileSync(path.join(FIX, 'unaligned.safetensors'), path.join(both, 'model.safetensors'));
  assert.throws(() => openCheckpoint(both), /both model.safetensors and model.safetensors.index.json/);
  // Single-file directory and index path forms.
  const single = path.dirname(tmp());
  fs.copyFileSync(path.join(FIX, 'unaligned.safetensors'), path.join(single, 'model.safetensors'));
  const ck = openCheckpoint(single);
  assert.deepEqual(ck.keys(), ['a', 'b', 'c', 'd', 'e']);
  ck.close();
  const ck2 = openCheckpoint(path.join(base, 'model.safetensors.index.json'));
  assert.equal(ck2.keys().length, 5);
  ck2.close();
  const empty = path.dirname(tmp());
  assert.throws(() => openCheckpoint(empty), (e: Error) => e.message.includes(empty) && /no model.safetensors/.test(e.message));
});

test('pickle checkpoints are refused by extension and by magic bytes', () => {
  const msg = (p: string) => (e: Error): boolean => {
    assert.equal(e.message, `refusing to load ${p}: pickle-based checkpoints can execute code when loaded; convert to safetensors`);
    return true;
  };
  for (const ext of ['.bin', '.pt', '.pth', '.ckpt', '.PT', '.pkl']) {
    const p = path.join(TMP, `weights${ext}`);
    assert.throws(() => SafetensorsFile.open(p), msg(p));
    assert.throws(() => openCheckpoint(path.join(FIX, 'torch_save_zip.pt')), /refusing to load .*torch_save_zip\.pt: pickle-based/);
  }
  for (const src of ['torch_save_zip.pt', 'torch_save_legacy.pt']) {
    const p = tmp('disguised.safetensors');
    fs.copyFileSync(path.join(FIX, src), p);
    assert.throws(() => SafetensorsFile.open(p), msg(p), src);
  }
  const dir = path.dirname(tmp());
  fs.copyFileSync(path.join(FIX, 'torch_save_zip.pt'), path.join(dir, 'pytorch_model.bin'));
  assert.throws(() => openCheckpoint(dir), msg(path.join(dir, 'pytorch_model.bin')));
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin.index.json'), '{}');
  assert.throws(() => openCheckpoint(path.join(dir, 'pytorch_model.bin.index.json')), /pickle-based/);
  // A legitimate header length whose bytes look like a pickle opcode (640 = 0x80 0x02) still opens.
  const p = tmp();
  const header = `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`.padEnd(640, ' ');
  rawFile(p, header, new Uint8Array([9]));
  assert.equal(fs.readFileSync(p)[0], 0x80);
  const sf = SafetensorsFile.open(p);
  assert.deepEqual(Array.from(sf.readRaw('a')), [9]);
  sf.close();
  const g = tmp();
  fs.writeFileSync(g, Buffer.from('GGUF\x03\x00\x00\x00\x00\x00\x00\x00', 'latin1'));
  assert.throws(() => SafetensorsFile.open(g), /GGUF/);
});

test('valid but unusual files: zero tensors, empty and scalar tensors, padding, null metadata', () => {
  const cases: [string, string, number][] = [
    ['zero tensors', '{}', 0],
    ['zero tensors padded', '{}      ', 0],
    ['trailing json whitespace', '{}\n\t\r ', 0],
    ['null metadata', '{"__metadata__":null}', 0],
    ['empty metadata', '{"__metadata__":{}}', 0],
    ['empty tensor', '{"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}}', 0],
    ['scalar', '{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', 4],
    ['empty tensors sharing an offset', '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"I8","shape":[2,0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1],
    ['fields in any order, whitespace', '{ "x" : { "data_offsets" : [ 0 , 2 ] , "shape" : [ 2 ] , "dtype" : "U8" } }', 2],
    ['escaped names', '{"a\\u00e9\\n\\ud83d\\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1],
    ['F4 even count', '{"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', 2],
    ['F6 multiple of 4', '{"q":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}', 3],
  ];
  for (const [label, header, dataLen] of cases) {
    const p = rawFile(tmp(), header, new Uint8Array(dataLen).fill(7));
    const sf = SafetensorsFile.open(p);
    for (const k of sf.keys()) assert.equal(sf.readRaw(k).length, sf.info(k).byteLength, label);
    sf.close();
  }
  const sf = SafetensorsFile.open(rawFile(tmp(), cases[9]![1], new Uint8Array(1)));
  assert.deepEqual(sf.keys(), ['aé\n😀']);
  sf.close();
  const q = SafetensorsFile.open(rawFile(tmp(), cases[10]![1], new Uint8Array(2)));
  assert.throws(() => q.readF32('q'), /cannot convert dtype F4/);
  assert.throws(() => q.read('q'), /no engine storage type/);
  q.close();
  // Written files with zero tensors.
  const w = tmp();
  writeSafetensors(w, new Map());
  assert.equal(fs.statSync(w).size, 16);
  const z = SafetensorsFile.open(w);
  assert.deepEqual(z.keys(), []);
  z.close();
});

test('decision: leading whitespace before "{" is rejected (the README rule, not reference PR #686)', () => {
  const p = rawFile(tmp(), '  {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1));
  assert.throws(() => SafetensorsFile.open(p), (e: Error) => e.message.includes(p) && /must start with '\{'/.test(e.message));
  const bom = rawFile(tmp(), '\ufeff{}');
  assert.throws(() => SafetensorsFile.open(bom), /must start with '\{', found U\+feff/);
});

test('integer conversions: ±2^53 for f32, int32 range for i32, F8 tables', () => {
  const p = tmp();
  const big = 2n ** 53n;
  writeSafetensors(p, {
    i64ok: { dtype: 'I64', shape: [4], data: new BigInt64Array([big, -big, 0n, -1n]) },
    i64hi: { dtype: 'I64', shape: [2], data: new BigInt64Array([0n, big + 1n]) },
    i64lo: { dtype: 'I64', shape: [1], data: new BigInt64Array([-big - 1n]) },
    u64ok: { dtype: 'U64', shape: [2], data: new BigUint64Array([big, 7n]) },
    u64hi: { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
    i64i32: { dtype: 'I64', shape: [2], data: new BigInt64Array([2n ** 31n - 1n, -(2n ** 31n)]) },
    i64i32hi: { dtype: 'I64', shape: [1], data: new BigInt64Array([2n ** 31n]) },
    i64i32lo: { dtype: 'I64', shape: [1], data: new BigInt64Array([-(2n ** 31n) - 1n]) },
    u32hi: { dtype: 'U32', shape: [2], data: new Uint32Array([5, 2 ** 31]) },
    u16: { dtype: 'U16', shape: [2], data: new Uint16Array([65535, 1]) },
    e4m3: { dtype: 'F8_E4M3', shape: [6], data: new Uint8Array([0x7e, 0x7f, 0x01, 0x38, 0xb8, 0x08]) },
    e5m2: { dtype: 'F8_E5M2', shape: [4], data: new Uint8Array([0x7b, 0x7c, 0x3c, 0xff]) },
    e8m0: { dtype: 'F8_E8M0', shape: [3], data: new Uint8Array([127, 130, 255]) },
    c64: { dtype: 'C64', shape: [1], data: new Float32Array([1, 2]) },
    bool2: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 2]) },
  });
  const sf = SafetensorsFile.open(p);
  assert.deepEqual(Array.from(sf.readF32('i64ok')), [2 ** 53, -(2 ** 53), 0, -1]);
  assert.throws(() => sf.readF32('i64hi'), (e: Error) => e.message.includes(p) && e.message.includes('"i64hi"') && e.message.includes('element 1 = 9007199254740993'));
  assert.throws(() => sf.readF32('i64lo'), /element 0 = -9007199254740993 of I64 is outside ±2\^53/);
  assert.deepEqual(Array.from(sf.readF32('u64ok')), [2 ** 53, 7]);
  assert.throws(() => sf.readF32('u64hi'), /18446744073709551615 of U64/);
  assert.deepEqual(Array.from(sf.readI32('i64i32')), [2 ** 31 - 1, -(2 ** 31)]);
  assert.throws(() => sf.readI32('i64i32hi'), /"i64i32hi": element 0 = 2147483648 of I64 is outside int32/);
  assert.throws(() => sf.readI32('i64i32lo'), /-2147483649/);
  assert.throws(() => sf.readI32('u32hi'), /element 1 = 2147483648 of U32/);
  assert.deepEqual(Array.from(sf.readI32('u16')), [65535, 1]);
  assert.equal(sf.read('i64i32').dtype, 'i32');
  assert.throws(() => sf.read('i64ok'), /outside int32/);
  const e4 = sf.readF32('e4m3');
  assert.deepEqual([e4[0], e4[2], e4[3], e4[4], e4[5]], [448, 2 ** -9, 1, -1, 2 ** -6]);
  assert.ok(Number.isNaN(e4[1]));
  const e5 = sf.readF32('e5m2');
  assert.deepEqual([e5[0], e5[1], e5[2]], [57344, Infinity, 1]);
  assert.ok(Number.isNaN(e5[3]));
  const e8 = sf.readF32('e8m0');
  assert.deepEqual([e8[0], e8[1]], [1, 8]);
  assert.ok(Number.isNaN(e8[2]));
  assert.throws(() => sf.readF32('c64'), /cannot convert dtype C64/);
  assert.equal(sf.readRaw('c64').length, 8);
  assert.throws(() => sf.read('bool2'), /"bool2": BOOL element 2 is 2, not 0 or 1/);
  assert.deepEqual(Array.from(sf.readRaw('bool2')), [1, 0, 2]);
  sf.close();
});

test('chunked reads give the same values as whole reads', () => {
  const rng = new Rng(3);
  const n = 1001;
  const f32 = new Float32Array(n).map(() => rng.normal());
  const p = tmp();
  writeSafetensors(p, {
    f32: { dtype: 'F32', shape: [n], data: f32 },
    f16: { dtype: 'F16', shape: [n], data: Uint16Array.from(f32, f32ToF16) },
    bf16: { dtype: 'BF16', shape: [n], data: Uint16Array.from(f32, f32ToBf16) },
    f64: { dtype: 'F64', shape: [n], data: Float64Array.from(f32) },
    i64: { dtype: 'I64', shape: [n], data: BigInt64Array.from(f32, (x) => BigInt(Math.round(x * 1e6))) },
    i16: { dtype: 'I16', shape: [n], data: Int16Array.from(f32, (x) => Math.round(x * 1e3)) },
  });
  const sf = SafetensorsFile.open(p);
  const keys = sf.keys();
  const whole = keys.map((k) => [hex(sf.readRaw(k)), f32Bits(sf.readF32(k)), ['i64', 'i16'].includes(k) ? Array.from(sf.readI32(k)) : null]);
  const prev = setIoChunkBytesForTesting(24);
  try {
    keys.forEach((k, i) => {
      assert.equal(hex(sf.readRaw(k)), whole[i]![0], k);
      assert.deepEqual(f32Bits(sf.readF32(k)), whole[i]![1], k);
      if (whole[i]![2]) assert.deepEqual(Array.from(sf.readI32(k)), whole[i]![2], k);
    });
    // Writing with tiny chunks produces the same bytes.
    const p2 = tmp();
    writeSafetensors(p2, { f16: { dtype: 'F16', shape: [n], data: Uint16Array.from(f32, f32ToF16) } });
    const sf2 = SafetensorsFile.open(p2);
    assert.equal(hex(sf2.readRaw('f16')), whole[keys.indexOf('f16')]![0]);
    sf2.close();
  } finally {
    setIoChunkBytesForTesting(prev);
    sf.close();
  }
});

test('a file truncated after opening gives a clear error on read', () => {
  const p = tmp();
  writeSafetensors(p, { a: { dtype: 'F32', shape: [100], data: new Float32Array(100).fill(1) }, b: { dtype: 'F32', shape: [100], data: new Float32Array(100).fill(2) } });
  const sf = SafetensorsFile.open(p);
  const sizeBefore = fs.statSync(p).size;
  fs.truncateSync(p, sizeBefore - 10);
  const truncated = (e: Error): boolean => e.message.includes(p) && /unexpected end of file/.test(e.message) && /truncated after it was opened/.test(e.message);
  const last = sf.info('a').dataOffsets[1] > sf.info('b').dataOffsets[1] ? 'a' : 'b';
  assert.throws(() => sf.readRaw(last), (e: Error) => truncated(e) && e.message.includes(`"${last}"`));
  assert.throws(() => sf.readF32(last), truncated);
  fs.truncateSync(p, 0);
  assert.throws(() => sf.readF32(last === 'a' ? 'b' : 'a'), truncated);
  sf.close();
  // After reopening, the truncation is a header-time error.
  assert.throws(() => SafetensorsFile.open(p), (e: Error) => e.message.includes(p) && /too small/.test(e.message));
});

test('atomic writes: readers keep the old file, failures leave no temp files, stale temps removable', () => {
  const p = tmp();
  writeSafetensors(p, { a: { dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) } });
  const reader = SafetensorsFile.open(p);
  writeSafetensors(p, { a: { dtype: 'U8', shape: [2], data: new Uint8Array([9, 9]) } });
  assert.deepEqual(Array.from(reader.readRaw('a')), [1, 2, 3], 'open reader still sees the old inode');
  reader.close();
  const fresh = SafetensorsFile.open(p);
  assert.deepEqual(Array.from(fresh.readRaw('a')), [9, 9]);
  fresh.close();
  const dir = path.dirname(p);
  // Rename over a directory fails after the data was written: temp removed, target untouched.
  const target = path.join(dir, 'is-a-dir.safetensors');
  fs.mkdirSync(target);
  assert.throws(() => writeSafetensors(target, { a: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), (e: Error) => e.message.includes(target) && /write failed/.test(e.message));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['is-a-dir.safetensors', 'x.safetensors']);
  // Invalid input is refused before anything is created.
  const bad: [unknown, RegExp][] = [
    [{ a: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, /data has 8 bytes but F32 \[3\] needs 12/],
    [{ a: { dtype: 'F16', shape: [2], data: new Float32Array(2) } }, /needs 4/],
    [{ a: { dtype: 'f33', shape: [1], data: new Uint8Array(1) } }, /unknown dtype "f33"/],
    [{ a: { dtype: 'U8', shape: [-1], data: new Uint8Array(1) } }, /non-negative integers/],
    [{ a: { dtype: 'U8', shape: [1.5], data: new Uint8Array(1) } }, /non-negative integers/],
    [{ a: { dtype: 'U8', shape: [1], data: [1] } }, /typed array/],
    [{ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, /reserved/],
    [{ ['\ud800']: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }, /lone UTF-16 surrogate/],
    [{ a: { dtype: 'F4', shape: [3], data: new Uint8Array(2) } }, /whole, representable number of bytes/],
  ];
  for (const [t, re] of bad) {
    const q = path.join(dir, 'bad.safetensors');
    assert.throws(() => writeSafetensors(q, t as Record<string, TensorToWrite>), (e: Error) => e.message.includes(q) && re.test(e.message));
    assert.equal(fs.existsSync(q), false);
  }
  assert.throws(() => writeSafetensors(path.join(dir, 'm.safetensors'), {}, { a: 1 } as unknown as Record<string, string>), /metadata "a" must be a string/);
  assert.throws(() => writeSafetensors(path.join(dir, 'no', 'such', 'dir.safetensors'), {}), /cannot create temporary file/);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['is-a-dir.safetensors', 'x.safetensors']);
  // Stale temps from dead writers are removed; our own pid's are kept.
  fs.writeFileSync(path.join(dir, 'x.safetensors.tmp-999999999-abc123'), 'junk');
  fs.writeFileSync(path.join(dir, `x.safetensors.tmp-${process.pid}-abc123`), 'junk');
  assert.deepEqual(removeStaleTempFiles(dir), ['x.safetensors.tmp-999999999-abc123']);
  assert.ok(fs.existsSync(path.join(dir, `x.safetensors.tmp-${process.pid}-abc123`)));
  // Pooled Buffers (byteOffset != 0) are written from the right bytes.
  const pooled = Buffer.from([5, 6, 7, 8]);
  const q = path.join(dir, 'pooled.safetensors');
  writeSafetensors(q, { p: { dtype: 'U8', shape: [4], data: pooled } });
  const sf = SafetensorsFile.open(q);
  assert.deepEqual(Array.from(sf.readRaw('p')), [5, 6, 7, 8]);
  sf.close();
});

test('header length limit: exactly 100 MB accepted, one more byte refused before reading', () => {
  const p = tmp();
  const n = 100_000_000;
  const fd = fs.openSync(p, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(n));
  fs.writeSync(fd, len);
  fs.writeSync(fd, Buffer.from('{}'));
  fs.writeSync(fd, Buffer.alloc(n - 2, 0x20));
  fs.closeSync(fd);
  const sf = SafetensorsFile.open(p);
  assert.deepEqual(sf.keys(), []);
  sf.close();
  fs.writeFileSync(p, Buffer.concat([Buffer.from([0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0]), Buffer.from('{}')]));
  assert.throws(() => SafetensorsFile.open(p), (e: Error) => e.message.includes(p) && /header length 100000001 exceeds the limit/.test(e.message));
});

test('special files: a directory and a FIFO are refused without blocking', () => {
  assert.throws(() => SafetensorsFile.open(TMP), (e: Error) => e.message.includes(TMP) && /not a regular file|EISDIR/.test(e.message));
  const fifo = path.join(TMP, 'fifo.safetensors');
  try {
    execFileSync('mkfifo', [fifo]);
  } catch {
    return; // no mkfifo here
  }
  assert.throws(() => SafetensorsFile.open(fifo), (e: Error) => e.message.includes(fifo) && /not a regular file/.test(e.message));
});

test('tensors over 2 GiB read through chunked I/O (CHIMERA_BIG_TESTS=1)', { skip: process.env['CHIMERA_BIG_TESTS'] !== '1' }, () => {
  const p = tmp();
  const n = 2 ** 31 + 16;
  const header = Buffer.from(`{"big":{"dtype":"U8","shape":[${n}],"data_offsets":[0,${n}]},"tail":{"dtype":"F32","shape":[2],"data_offsets":[${n},${n + 8}]}}`.padEnd(256, ' '));
  const fd = fs.openSync(p, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, header);
  const data = 8 + header.length;
  fs.ftruncateSync(fd, data + n + 8); // sparse zeros
  for (const [at, v] of [[0, 11], [2 ** 31 - 1, 22], [2 ** 31, 33], [n - 1, 44]] as const) fs.writeSync(fd, Buffer.from([v]), 0, 1, data + at);
  fs.writeSync(fd, Buffer.from(new Float32Array([1.5, -2]).buffer), 0, 8, data + n);
  fs.closeSync(fd);
  const sf = SafetensorsFile.open(p);
  const t0 = Date.now();
  const big = sf.readRaw('big');
  const ms = Date.now() - t0;
  assert.equal(big.length, n);
  assert.deepEqual([big[0], big[2 ** 31 - 1], big[2 ** 31], big[n - 1], big[12345]], [11, 22, 33, 44, 0]);
  assert.deepEqual(Array.from(sf.readF32('tail')), [1.5, -2]);
  sf.close();
  console.log(`# read ${n} bytes in ${ms} ms`);
});
