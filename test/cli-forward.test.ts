// `chimera forward`: in-process with a fake family (inputs, outputs, errors), the real command
// line for usage errors, and every golden model folder under test/golden/models/ end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBackend } from '../src/backends/index.ts';
import { forward } from '../src/cli/forward.ts';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.ts';
import { ConfigReader } from '../src/models/config.ts';
import { loadModel, saveModel } from '../src/models/load.ts';
import { registerFamilyForTest, type ModelFamily } from '../src/models/registry.ts';
import { constInit, normalInit } from '../src/nn/init.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

// A one-layer fake LM: logits = rmsNorm(embed(ids)) @ lm_head^T.
interface Cfg { vocab: number; hidden: number }
interface Params { embed: { weight: Tensor }; norm: { weight: Tensor }; lm_head: { weight: Tensor } }
const fake: ModelFamily<Cfg, Params> = {
  modelType: 'fake_fwd',
  parseConfig: (json, source) => {
    const r = new ConfigReader(json, source);
    return { vocab: r.int('vocab_size'), hidden: r.int('hidden_size') };
  },
  init: (c, rng) => {
    const mk = (s: number[]): Tensor => (rng ? normalInit(s, 1, rng) : constInit(s, 0));
    return { embed: { weight: mk([c.vocab, c.hidden]) }, norm: { weight: mk([c.hidden]) }, lm_head: { weight: mk([c.vocab, c.hidden]) } };
  },
  inputs: ['input_ids'],
  forward: (p, _c, inputs) => {
    const h = F.rmsNorm(F.embedding(p.embed.weight, inputs.get('input_ids')!), p.norm.weight, 1e-6); // [B, T, D]
    return new Map([['logits', F.linear(h, p.lm_head.weight)]]); // [B, T, V]
  },
};
registerFamilyForTest('fake_fwd', fake as ModelFamily);
useBackend('reference');

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-fwd-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));
const cfgJson = { model_type: 'fake_fwd', vocab_size: 13, hidden_size: 8 };
const MODEL = path.join(TMP, 'model');
const params = fake.init(fake.parseConfig(cfgJson), new Rng(7));
saveModel(MODEL, 'fake_fwd', cfgJson, params);

async function quiet<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const orig = process.stdout.write;
  let out = '';
  process.stdout.write = ((s: string | Uint8Array) => { out += String(s); return true; }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = orig;
  }
}

const ids = [1, 5, 12, 0, 3, 3, 7, 2]; // [2, 4]

test('forward: I64 and I32 input_ids give the model\'s logits in F32 [B, T, V]', async () => {
  const m = await loadModel<Cfg, Params>(MODEL);
  const want = noGrad(() => {
    const x = fromData(Int32Array.from(ids), [2, 4], 'i32');
    return Array.from(fake.forward(m.params, m.config, new Map([['input_ids', x]])).get('logits')!.data);
  });
  for (const dtype of ['I64', 'I32'] as const) {
    const dir = fs.mkdtempSync(path.join(TMP, 'io-'));
    const inp = path.join(dir, 'in.safetensors');
    const out = path.join(dir, 'out.safetensors');
    const data = dtype === 'I64' ? BigInt64Array.from(ids, BigInt) : Int32Array.from(ids);
    writeSafetensors(inp, { input_ids: { dtype, shape: [2, 4], data } });
    const { out: printed } = await quiet(() => forward(['--model', MODEL, '--inputs', inp, '--out', out, '--backend', 'reference', '--json']));
    const summary = JSON.parse(printed) as { outputs: Record<string, number[]> };
    assert.deepEqual(summary.outputs, { logits: [2, 4, 13] });
    const f = SafetensorsFile.open(out);
    assert.deepEqual(f.keys(), ['logits']);
    assert.deepEqual(f.info('logits').dtype, 'F32');
    assert.deepEqual(f.info('logits').shape, [2, 4, 13]);
    assert.deepEqual(Array.from(f.readF32('logits')), want);
    f.close();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['in.safetensors', 'out.safetensors'], 'no temporary files left');
  }
});

test('forward: a missing or mistyped input names the tensor and the file', async () => {
  const inp = path.join(TMP, 'wrong.safetensors');
  writeSafetensors(inp, { pixel_values: { dtype: 'F32', shape: [1, 3, 2, 2], data: new Float32Array(12) } });
  await assert.rejects(() => forward(['--model', MODEL, '--inputs', inp, '--out', path.join(TMP, 'o.safetensors')]),
    /wrong\.safetensors: no tensor named 'input_ids' \(a fake_fwd model takes input_ids; the file has pixel_values\)/);
  writeSafetensors(inp, { input_ids: { dtype: 'F32', shape: [1, 2], data: new Float32Array(2) } });
  await assert.rejects(() => forward(['--model', MODEL, '--inputs', inp, '--out', path.join(TMP, 'o.safetensors')]),
    /wrong\.safetensors: tensor 'input_ids' has dtype F32; expected I64 or I32/);
  writeSafetensors(inp, { input_ids: { dtype: 'I64', shape: [1, 1], data: BigInt64Array.of(1n << 40n) } });
  await assert.rejects(() => forward(['--model', MODEL, '--inputs', inp, '--out', path.join(TMP, 'o.safetensors')]), /wrong\.safetensors: .*outside int32/);
  assert.ok(!fs.existsSync(path.join(TMP, 'o.safetensors')));
});

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, CHIMERA_BACKEND: 'reference' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('chimera forward: --help, usage errors exit 2, bad input exits 1, one line each', () => {
  const h = cli('forward', '--help');
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^usage: chimera forward --model DIR --inputs IN\.safetensors --out OUT\.safetensors/);
  const none = cli('forward');
  assert.equal(none.code, 2);
  assert.equal(none.stderr, 'chimera forward: --model is required\n');
  const unknown = cli('forward', '--modle', 'x');
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, 'chimera forward: unknown option --modle\n');
  const nodir = cli('forward', '--model', path.join(TMP, 'nope'), '--inputs', 'x', '--out', 'y');
  assert.equal(nodir.code, 1);
  assert.match(nodir.stderr, /^chimera forward: model directory '.*nope' does not exist\n$/);
});

/** Golden folders: config.json + model.safetensors + inputs.safetensors + outputs.safetensors. */
function goldenDirs(): string[] {
  const base = path.join(ROOT, 'test/golden/models');
  if (!fs.existsSync(base)) return [];
  return fs.readdirSync(base).map((d) => path.join(base, d))
    .filter((d) => ['config.json', 'inputs.safetensors', 'outputs.safetensors'].every((f) => fs.existsSync(path.join(d, f))));
}

for (const dir of goldenDirs()) {
  test(`chimera forward reproduces test/golden/models/${path.basename(dir)}`, () => {
    const out = path.join(TMP, `${path.basename(dir)}-out.safetensors`);
    const r = cli('forward', '--model', dir, '--inputs', path.join(dir, 'inputs.safetensors'), '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const got = SafetensorsFile.open(out);
    const want = SafetensorsFile.open(path.join(dir, 'outputs.safetensors'));
    const outputs = got.keys();
    assert.ok(outputs.length > 0);
    for (const k of outputs) {
      if (!want.has(k)) continue; // the golden file may hold only some outputs
      assert.deepEqual(got.info(k).shape, want.info(k).shape, k);
      const a = got.readF32(k), b = want.readF32(k);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1e-3 + Math.abs(b[i]!)));
      assert.ok(worst < 1e-2, `${k}: worst relative error ${worst}`);
    }
    assert.ok(outputs.some((k) => want.has(k)), `none of ${outputs.join(', ')} is in the golden outputs (${want.keys().join(', ')})`);
    got.close(); want.close();
  });
}
