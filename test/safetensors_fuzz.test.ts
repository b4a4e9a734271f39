// Malformed safetensors files: every one must be rejected at open with an Error naming the file;
// seeded random mutations must be rejected or, when still valid, read back exactly what an
// independent parse of the same bytes says.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { Rng } from '../src/engine/rng.ts';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-st-fuzz-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

const enc = new TextEncoder();

function frame(header: string | Uint8Array, data: Uint8Array, n?: bigint): Uint8Array {
  const h = typeof header === 'string' ? enc.encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, n ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

// Base file: 4 tensors over 40 data bytes, metadata, header padded to 8.
const T = {
  w: '{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}',
  b: '{"dtype":"F16","shape":[3],"data_offsets":[24,30]}',
  i: '{"dtype":"I64","shape":[1],"data_offsets":[30,38]}',
  m: '{"dtype":"BOOL","shape":[2],"data_offsets":[38,40]}',
};
const META = '"__metadata__":{"format":"pt"}';
const DATA = (() => {
  const r = new Rng(99);
  const d = new Uint8Array(40);
  for (let i = 0; i < d.length; i++) d[i] = r.nextU32() & 0xff;
  d[0] = 0xaa; // not JSON whitespace, so a header that runs into the data cannot end in padding
  return d;
})();

function header(over: Partial<Record<string, string | null>> = {}, meta: string | null = META, extra = ''): string {
  const parts: string[] = meta === null ? [] : [meta];
  const all: Record<string, string | null> = { ...T, ...over };
  for (const [k, v] of Object.entries(all)) if (v !== null && v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
  const s = `{${parts.join(',')}${extra}}`;
  return s + ' '.repeat((8 - (enc.encode(s).length % 8)) % 8);
}

const BASE = frame(header(), DATA);
const BASE_N = enc.encode(header()).length;

const entry = (dtype: string, shape: string, offs: string): string => `{"dtype":${dtype},"shape":${shape},"data_offsets":${offs}}`;

interface Case { label: string; bytes: Uint8Array }

function malformedCases(): Case[] {
  const cases: Case[] = [];
  const add = (label: string, bytes: Uint8Array): void => { cases.push({ label, bytes }); };
  const addH = (label: string, h: string | Uint8Array, data: Uint8Array = DATA): void => add(label, frame(h, data));

  // Truncation at every byte: length field, header, data.
  for (let len = 0; len < BASE.length; len++) add(`truncate@${len}`, BASE.subarray(0, len));
  // Trailing bytes and a missing byte.
  add('trailing byte', frame(header(), new Uint8Array([...DATA, 0])));
  add('trailing spaces after data', frame(header(), new Uint8Array([...DATA, 32, 32])));
  add('missing last byte', frame(header(), DATA.subarray(0, 39)));

  // Header length lies.
  const lies: bigint[] = [0n, 1n, 7n, 8n, BigInt(BASE_N - 1), BigInt(BASE_N - 2), BigInt(BASE_N + 1), BigInt(BASE_N + 8), BigInt(BASE_N + 40),
    BigInt(BASE.length - 8 + 1), BigInt(BASE.length), 2n ** 32n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n];
  for (const n of lies) add(`header length ${n}`, frame(header(), DATA, n));
  const r = new Rng(2024);
  for (let k = 0; k < 40; k++) {
    const n = (BigInt(r.nextU32()) << 32n) | BigInt(r.nextU32());
    if (n !== BigInt(BASE_N)) add(`random u64 header length ${n}`, frame(header(), DATA, n));
    const small = BigInt(r.nextU32() % (BASE.length + 16));
    if (small !== BigInt(BASE_N)) add(`random small header length ${small}`, frame(header(), DATA, small));
  }

  // Not JSON / not UTF-8 / not an object.
  const badJson = ['', '{', '}', '{"w"', '{"w":}', '{"w":{}', '[]', '[{}]', '"str"', '1', 'null', 'true', '{}}', '{} {}', '{}x', '{}\u0000',
    ' {}', '\n{}', '\ufeff{}', "{'w':1}", '{w:1}', '{"w":1,}', '{,}', '{"a":1 "b":2}', '{"a"::1}', '{/*c*/}', '{"a":NaN}', '{"a":Infinity}',
    '{"a":01}', '{"a":1.}', '{"a":-}', '{"a":1e}', '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":"\\ud800"}', '{"a":"\\udc00\\ud800"}', '{"\\ud834x":{}}',
    '{"a":"unterminated}', '{"a\tb":1}', `{"a":"${'\u0001'}"}`, '{"a":tru}', '{"a":nul}', '{"a":[1,]}',
    `{"w":${'['.repeat(200000)}}`, `{"w":{"shape":${'['.repeat(200000)}}}`, `{"w":{"dtype":"${'x'.repeat(100000)}`];
  for (const h of badJson) addH(`bad json ${JSON.stringify(h.slice(0, 30))}`, h.padEnd(8, h.startsWith('{') ? ' ' : 'x'));
  const badUtf8: number[][] = [[0xff], [0xc0, 0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xfe, 0xfe]];
  for (const bad of badUtf8) {
    const h = enc.encode(header());
    const at = h.indexOf(0x77); // inside the name "w"
    const out = new Uint8Array([...h.subarray(0, at), ...bad, ...h.subarray(at + 1)]);
    addH(`non-utf8 ${bad.map((b) => b.toString(16)).join(' ')}`, out);
  }
  addH('utf16 header', new Uint8Array([...enc.encode(header())].flatMap((b) => [b, 0])));

  // Wrong types for each field.
  const notString = ['1', 'null', 'true', '[]', '{}', '["F32"]', '{"F32":1}'];
  for (const v of notString) addH(`dtype ${v}`, header({ w: entry(v, '[2,3]', '[0,24]') }));
  const badShape = ['"[2,3]"', '6', 'null', '{}', '{"0":2}', '["2",3]', '[2,3.0]', '[2,3e0]', '[2,-3]', '[-0,3]', '[2,3.5]', '[2,null]', '[2,[3]]',
    '[2,true]', '[9007199254740992,1]', '[18446744073709551615]', '[1e400]', '[2,3,]', '[,2]', '[2 3]', `[${'1,'.repeat(1000)}6]`.replace(',6]', ',7]')];
  for (const v of badShape) addH(`shape ${v.slice(0, 30)}`, header({ w: entry('"F32"', v, '[0,24]') }));
  const badOffs = ['"0,24"', '[0]', '[0,24,24]', '[]', '[-1,24]', '[0,24.0]', '[0,"24"]', '[24,0]', '[0,25]', '[0,23]', '[1,25]', '{"0":0,"1":24}', 'null',
    '[0,18446744073709551615]', '[0,9007199254740992]', '[0,1e2]'];
  for (const v of badOffs) addH(`data_offsets ${v}`, header({ w: entry('"F32"', '[2,3]', v) }));
  for (const v of ['1', '"x"', '[]', 'null', 'true', '[{"dtype":"F32"}]']) addH(`tensor value ${v}`, header({ w: v }));
  addH('missing dtype', header({ w: '{"shape":[2,3],"data_offsets":[0,24]}' }));
  addH('missing shape', header({ w: '{"dtype":"F32","data_offsets":[0,24]}' }));
  addH('missing data_offsets', header({ w: '{"dtype":"F32","shape":[2,3]}' }));
  addH('empty tensor object', header({ w: '{}' }));
  addH('extra field', header({ w: '{"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"strides":[3,1]}' }));
  addH('duplicate dtype', header({ w: '{"dtype":"F32","dtype":"F32","shape":[2,3],"data_offsets":[0,24]}' }));
  addH('duplicate shape', header({ w: '{"dtype":"F32","shape":[6],"shape":[2,3],"data_offsets":[0,24]}' }));
  addH('duplicate offsets', header({ w: '{"dtype":"F32","shape":[2,3],"data_offsets":[0,4],"data_offsets":[0,24]}' }));

  // Dtypes.
  for (const d of ['"f32"', '"F128"', '"Q4_0"', '""', '"FLOAT"', '"F32 "', '"F8"', '"__proto__"', '"constructor"', '"toString"', '"I4"']) {
    addH(`dtype ${d}`, header({ w: entry(d, '[2,3]', '[0,24]') }));
  }
  addH('F4 odd element count', header({ w: entry('"F4"', '[3]', '[0,24]'), b: entry('"F4"', '[3]', '[24,30]') }));
  addH('F6 element count not a multiple of 4', header({ w: entry('"F6_E3M2"', '[5]', '[0,24]') }));

  // Layout: overlap, gap, first offset, beyond the end, size mismatch, overflow.
  addH('overlap', header({ b: entry('"F16"', '[3]', '[22,28]'), i: entry('"I64"', '[1]', '[28,36]'), m: entry('"BOOL"', '[4]', '[36,40]') }));
  addH('gap', header({ b: entry('"F16"', '[3]', '[26,32]'), i: entry('"I64"', '[1]', '[32,40]'), m: null }));
  addH('first offset not 0', header({ w: entry('"F32"', '[2,3]', '[2,26]'), b: entry('"F16"', '[2]', '[26,30]') }));
  addH('two tensors on the same bytes', header({ m2: entry('"BOOL"', '[2]', '[38,40]') }));
  addH('identical duplicate tensor entries', header({}, META, `,"m":${T.m}`));
  addH('duplicate tensor names, second differs', header({}, META, `,"w":${entry('"U8"', '[24]', '[0,24]')}`));
  addH('offsets beyond the end', header({ m: entry('"BOOL"', '[4]', '[38,42]') }));
  addH('offsets far beyond the end', header({ m: entry('"BOOL"', '[1099511627776]', '[38,1099511627814]') }));
  addH('size mismatch: shape too big', header({ w: entry('"F32"', '[2,4]', '[0,24]') }));
  addH('size mismatch: dtype too wide', header({ w: entry('"F64"', '[2,3]', '[0,24]') }));
  addH('shape product overflow', header({ w: entry('"F32"', '[67108864,67108864,67108864]', '[0,24]') }));
  addH('shape product overflow before a zero', header({ w: entry('"F32"', '[4294967296,4294967296,0]', '[0,24]') }));
  addH('byte size overflow', header({ w: entry('"F64"', '[2251799813685248]', '[0,24]') }));
  addH('2^40 elements in a small file', header({ w: entry('"U8"', '[1099511627776]', '[0,1099511627776]'), b: null, i: null, m: null }));
  addH('end before begin', header({ w: entry('"F32"', '[0]', '[24,0]') }));
  addH('no tensors but data', '{}      ');
  const many: string[] = [];
  for (let k = 0; k < 100000; k++) many.push(`"t${k}":{"dtype":"U8","shape":[40],"data_offsets":[0,40]}`);
  addH('100k tensors over the same 40 bytes', `{${many.join(',')}}`);

  // Metadata.
  for (const v of ['"x"', '1', '[]', 'true', '{"a":1}', '{"a":null}', '{"a":{}}', '{"a":[]}', '{"a":true}', '{"a":"x","a":"y"}', '{"a":"x",}', '{"__proto__":1}']) {
    addH(`metadata ${v}`, header({}, `"__metadata__":${v}`));
  }
  addH('duplicate __metadata__', header({}, `${META},${META}`));

  // Prototype keys: still validated like any other name.
  addH('__proto__ tensor with bad entry', header({ ['__proto__']: '{"polluted":true}' }));
  addH('__proto__ tensor not an object', header({}, META, ',"__proto__":1'));
  addH('constructor tensor overlapping', header({ constructor: entry('"U8"', '[2]', '[0,2]') }));
  addH('__proto__ duplicated', header({}, META, `,"__proto__":${entry('"U8"', '[0]', '[40,40]')},"__proto__":${entry('"U8"', '[0]', '[40,40]')}`));

  // Pickle and zip magic under a .safetensors name.
  add('zip magic', new Uint8Array([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0]));
  for (let proto = 2; proto <= 5; proto++) add(`pickle protocol ${proto}`, new Uint8Array([0x80, proto, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00]));
  return cases;
}

function openFds(): number {
  try { return fs.readdirSync('/proc/self/fd').length; } catch { return -1; }
}

test('fuzz: handcrafted and systematic malformed files are all rejected with a named error', { timeout: 120_000 }, () => {
  const cases = malformedCases();
  assert.ok(cases.length >= 300, `at least 300 malformed files (${cases.length})`);
  const fds = openFds();
  let worst = 0;
  let worstLabel = '';
  const t0 = performance.now();
  cases.forEach(({ label, bytes }, k) => {
    const file = path.join(TMP, `case-${String(k).padStart(4, '0')}.safetensors`);
    fs.writeFileSync(file, bytes);
    const t = performance.now();
    let sf: SafetensorsFile | null = null;
    try {
      sf = SafetensorsFile.open(file);
    } catch (e) {
      assert.ok(e instanceof Error && Object.getPrototypeOf(e) === Error.prototype, `${label}: plain Error, got ${String(e)}`);
      assert.ok(e.message.includes(file), `${label}: message names the file: ${e.message}`);
      assert.ok(e.message.length < 2000, `${label}: message is bounded (${e.message.length} chars)`);
    }
    const ms = performance.now() - t;
    if (ms > worst) { worst = ms; worstLabel = label; }
    if (sf) { sf.close(); assert.fail(`${label}: malformed file was accepted`); }
    fs.unlinkSync(file);
  });
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype untouched');
  if (fds >= 0) assert.equal(openFds(), fds, 'no file descriptors leaked');
  assert.ok(worst < 5000, `slowest case ${worstLabel} took ${worst.toFixed(1)} ms`);
  console.log(`# ${cases.length} malformed files rejected in ${(performance.now() - t0).toFixed(0)} ms; slowest: ${worstLabel} ${worst.toFixed(1)} ms`);
});

/** Independent check of an accepted file: JSON.parse + direct byte slicing must agree. */
function oracle(file: string, bytes: Uint8Array, sf: SafetensorsFile, label: string): void {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  const parsed = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(parsed).filter((k) => k !== '__metadata__').sort();
  assert.deepEqual(sf.keys(), names, `${label}: keys`);
  for (const name of names) {
    const e = parsed[name]!;
    const info = sf.info(name);
    assert.equal(info.dtype, e.dtype, `${label}: ${name} dtype`);
    assert.deepEqual(info.shape, e.shape, `${label}: ${name} shape`);
    assert.deepEqual(info.dataOffsets, e.data_offsets, `${label}: ${name} offsets`);
    const want = bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    assert.deepEqual(sf.readRaw(name), new Uint8Array(want), `${label}: ${name} bytes`);
  }
  void file;
}

test('fuzz: seeded random mutations are rejected or read back exactly', { timeout: 120_000 }, () => {
  const rng = new Rng(12345);
  const pick = (n: number): number => rng.nextU32() % n;
  const alphabet = enc.encode('{}[]",:0123456789-.eE+ \\abcdtuFIU_\u00e9');
  let rejected = 0;
  let accepted = 0;
  const fds = openFds();
  for (let it = 0; it < 1200; it++) {
    const b = new Uint8Array(BASE);
    let label: string;
    const kind = it % 4;
    if (kind === 0) {
      // 1-3 random byte replacements in the header (length field included).
      const k = 1 + pick(3);
      for (let j = 0; j < k; j++) b[pick(8 + BASE_N)] = pick(256);
      label = `byte flips #${it}`;
    } else if (kind === 1) {
      // Single bit flip anywhere in the header region.
      const at = pick(8 + BASE_N);
      b[at]! ^= 1 << pick(8);
      label = `bit flip @${at} #${it}`;
    } else if (kind === 2) {
      // Structural edit of the header text: delete, duplicate or insert, header length fixed up.
      const h = Array.from(BASE.subarray(8, 8 + BASE_N));
      const at = pick(h.length);
      const op = pick(3);
      if (op === 0) h.splice(at, 1 + pick(6));
      else if (op === 1) h.splice(at, 0, ...h.slice(at, at + 1 + pick(12)));
      else h.splice(at, 0, alphabet[pick(alphabet.length)]!);
      const out = frame(new Uint8Array(h), DATA);
      label = `edit op${op} @${at} #${it}`;
      check(out, label);
      continue;
    } else {
      // Data flips are invisible to validation: the file must open and return the new bytes.
      const at = 8 + BASE_N + pick(DATA.length);
      b[at] = pick(256);
      label = `data flip @${at} #${it}`;
    }
    check(b, label);
  }

  function check(bytes: Uint8Array, label: string): void {
    const file = path.join(TMP, `mut.safetensors`);
    fs.writeFileSync(file, bytes);
    let sf: SafetensorsFile | null = null;
    try {
      sf = SafetensorsFile.open(file);
    } catch (e) {
      assert.ok(e instanceof Error && e.message.includes(file), `${label}: ${String(e)}`);
      rejected++;
      return;
    }
    try {
      oracle(file, bytes, sf, label);
      accepted++;
    } finally {
      sf.close();
    }
  }

  if (fds >= 0) assert.equal(openFds(), fds, 'no file descriptors leaked');
  assert.ok(rejected > 500, `most header mutations are rejected (${rejected})`);
  console.log(`# 1200 mutations: ${rejected} rejected, ${accepted} accepted and matched an independent parse`);
});
