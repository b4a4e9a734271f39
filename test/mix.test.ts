// Weight mixing: bit-exact endpoints, f32 arithmetic cast back per dtype, refusals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bf16ToF32, f32ToBf16 } from '../src/engine/dtype.ts';
import { openCheckpoint, writeSafetensors } from '../src/io/safetensors.ts';
import { mixArrays, mixCheckpoints } from '../src/train/mix.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

function model(dir: string, scale: number, opts: { ids?: number[]; extraKey?: boolean; shape?: number[]; config?: Record<string, unknown> } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const w = Float32Array.from({ length: 6 }, (_, i) => (i + 1) * scale + 0.1);
  const h = Uint16Array.from([1.5, -2, 0.25].map((v) => f32ToBf16(v * scale)));
  const t: Record<string, { dtype: string; shape: number[]; data: ArrayBufferView }> = {
    'layer.weight': { dtype: 'F32', shape: opts.shape ?? [2, 3], data: w },
    'layer.bias': { dtype: 'BF16', shape: [3], data: h },
    'pos.ids': { dtype: 'I32', shape: [3], data: Int32Array.from(opts.ids ?? [0, 1, 2]) },
  };
  if (opts.extraKey) t['extra'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
  writeSafetensors(path.join(dir, 'model.safetensors'), t as never);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(opts.config ?? { model_type: 'llama', hidden_size: 3 }));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), `{"scale": ${scale}}`);
}

const bytes = (dir: string, key: string): Buffer => { const c = openCheckpoint(dir); try { return Buffer.from(c.readRaw(key)); } finally { c.close(); } };

test('beta 1 returns A and beta 0 returns B bit-exactly; 0.25 mixes in f32', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-mix-'));
  const A = path.join(d, 'a'), B = path.join(d, 'b');
  model(A, 1); model(B, -3.7);
  for (const [beta, src] of [[1, A], [0, B]] as const) {
    const out = path.join(d, `o${beta}`);
    const r = mixCheckpoints(A, B, out, beta);
    assert.equal(r.tensors, 3);
    for (const k of ['layer.weight', 'layer.bias', 'pos.ids']) assert.ok(bytes(out, k).equals(bytes(src, k)), `${k} beta ${beta}`);
    assert.equal(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), '{"scale": 1}');
    assert.ok(fs.existsSync(path.join(out, 'config.json')));
  }
  const out = path.join(d, 'q');
  mixCheckpoints(A, B, out, 0.25);
  const c = openCheckpoint(out), ca = openCheckpoint(A), cb = openCheckpoint(B);
  assert.deepEqual(c.readF32('layer.weight'), mixArrays(ca.readF32('layer.weight'), cb.readF32('layer.weight'), 0.25));
  assert.equal(c.info('layer.bias').dtype, 'BF16');
  const want = mixArrays(ca.readF32('layer.bias'), cb.readF32('layer.bias'), 0.25);
  c.readF32('layer.bias').forEach((v, i) => assert.equal(v, bf16ToF32(f32ToBf16(want[i]!))));
  assert.equal(c.metadata()['chimera.mix.beta'], '0.25');
  c.close(); ca.close(); cb.close();
  // --only: keys outside it come from A
  const o2 = path.join(d, 'only');
  mixCheckpoints(A, B, o2, 0.5, { only: /weight$/ });
  assert.ok(bytes(o2, 'layer.bias').equals(bytes(A, 'layer.bias')));
  assert.ok(!bytes(o2, 'layer.weight').equals(bytes(A, 'layer.weight')));
  fs.rmSync(d, { recursive: true });
});

test('mixArrays arithmetic', () => {
  assert.deepEqual(mixArrays(Float32Array.from([1, 2]), Float32Array.from([3, 6]), 0.5), Float32Array.from([2, 4]));
  assert.throws(() => mixArrays(new Float32Array(1), new Float32Array(2), 0.5), /lengths/);
});

test('refuses mismatched keys, shapes, configs, differing integer tensors, bad beta', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-mix-'));
  const A = path.join(d, 'a');
  model(A, 1);
  const cases: [Parameters<typeof model>[2], RegExp][] = [
    [{ extraKey: true }, /different keys; only in B: extra/],
    [{ shape: [3, 2] }, /'layer.weight' has shape \[2,3\] in A but \[3,2\] in B/],
    [{ ids: [0, 1, 3] }, /non-float tensor 'pos.ids' \(I32\) differs/],
    [{ config: { model_type: 'llama', hidden_size: 4 } }, /config.json of A and B differ at hidden_size: 3 vs 4/],
  ];
  cases.forEach(([o, re], i) => {
    const B = path.join(d, `b${i}`);
    model(B, 2, o);
    assert.throws(() => mixCheckpoints(A, B, path.join(d, `o${i}`), 0.5), re);
    assert.ok(!fs.existsSync(path.join(d, `o${i}`, 'model.safetensors')), 'nothing written on refusal');
  });
  assert.throws(() => mixCheckpoints(A, A, path.join(d, 'x'), 1.5), /beta must be a number in \[0, 1\]/);
  assert.throws(() => mixCheckpoints(A, A, A, 0.5), /output folder must differ/);
  fs.rmSync(d, { recursive: true });
});

test('chimera mix on the command line', () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-mix-'));
  model(path.join(d, 'a'), 1); model(path.join(d, 'b'), 2);
  const r = spawnSync(process.execPath, [MAIN, 'mix', '--a', path.join(d, 'a'), '--b', path.join(d, 'b'), '--beta', '1', '--out', path.join(d, 'c'), '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).tensors, 3);
  assert.ok(bytes(path.join(d, 'c'), 'layer.weight').equals(bytes(path.join(d, 'a'), 'layer.weight')));
  const bad = spawnSync(process.execPath, [MAIN, 'mix', '--a', path.join(d, 'a'), '--b', path.join(d, 'b'), '--beta', 'x', '--out', path.join(d, 'e')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /beta must be a number/);
  const noData = spawnSync(process.execPath, [MAIN, 'mix', '--a', path.join(d, 'a'), '--b', path.join(d, 'b'), '--search', '0,1', '--out', path.join(d, 'e')], { encoding: 'utf8' });
  assert.equal(noData.status, 2);
  assert.match(noData.stderr, /--data/);
  fs.rmSync(d, { recursive: true });
});
