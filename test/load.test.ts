// Model folders: save -> load round trips (single file, shards, tied weights, half-precision
// checkpoints) and every way a folder can be wrong, each a one-line error naming file and key.
// Uses a tiny fake family registered for the test, so it does not depend on real families.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { f32ToBf16, f32ToF16 } from '../src/engine/dtype.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { liveBuffers, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { writeSafetensors, type TensorToWrite } from '../src/io/safetensors.ts';
import { ConfigReader } from '../src/models/config.ts';
import { loadModel, saveModel } from '../src/models/load.ts';
import { registerFamilyForTest, type ModelFamily } from '../src/models/registry.ts';
import { constInit, normalInit } from '../src/nn/init.ts';

// ---- a fake two-layer LM: embed [V, D] -> layers (proj [D, D] + bias) -> norm [D] -> lm_head [V, D]

export interface FakeConfig { vocab: number; hidden: number; layers: number; tie: boolean }
export interface FakeParams {
  model: { embed_tokens: { weight: Tensor }; layers: { proj: { weight: Tensor; bias: Tensor } }[]; norm: { weight: Tensor } };
  lm_head: { weight: Tensor } | null;
}

export const fakeFamily: ModelFamily<FakeConfig, FakeParams> = {
  modelType: 'fake_lm',
  parseConfig(json, source) {
    const r = new ConfigReader(json, source);
    return { vocab: r.int('vocab_size'), hidden: r.int('hidden_size'), layers: r.int('num_hidden_layers'), tie: r.bool('tie_word_embeddings', false) };
  },
  init(c, rng) {
    const mk = (shape: number[]): Tensor => (rng ? normalInit(shape, 0.5, rng) : constInit(shape, 0));
    const embed = mk([c.vocab, c.hidden]);
    return {
      model: {
        embed_tokens: { weight: embed },
        layers: Array.from({ length: c.layers }, () => ({ proj: { weight: mk([c.hidden, c.hidden]), bias: mk([c.hidden]) } })),
        norm: { weight: mk([c.hidden]) },
      },
      lm_head: { weight: c.tie ? embed : mk([c.vocab, c.hidden]) },
    };
  },
  ignoreKeys: [/\.rotary_emb\.inv_freq$/],
  inputs: ['input_ids'],
  forward(p, _c, inputs) {
    let h = F.embedding(p.model.embed_tokens.weight, inputs.get('input_ids')!); // [B, T, D]
    for (const l of p.model.layers) h = F.add(h, F.linear(h, l.proj.weight, l.proj.bias));
    h = F.rmsNorm(h, p.model.norm.weight, 1e-6);
    return new Map([['logits', F.linear(h, p.lm_head!.weight)]]); // [B, T, V]
  },
};
registerFamilyForTest('fake_lm', fakeFamily as ModelFamily);

export const fakeConfig = { model_type: 'fake_lm', vocab_size: 11, hidden_size: 6, num_hidden_layers: 2 };

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-load-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));
let seq = 0;
const tmpDir = (): string => {
  const d = path.join(TMP, `m${seq++}`);
  fs.mkdirSync(d);
  return d;
};

function randomParams(cfg: Record<string, unknown> = fakeConfig, seed = 1): FakeParams {
  return fakeFamily.init(fakeFamily.parseConfig(cfg), new Rng(seed));
}

function values(tree: unknown): Map<string, number[]> {
  return new Map([...flatten<Tensor>(tree)].map(([k, t]) => [k, Array.from(t.data)]));
}

function dispose(tree: unknown): void {
  for (const t of flatten<Tensor>(tree).values()) t.dispose();
}

/** A folder whose checkpoint is `tensors` written as given (F32 from the random params by default). */
function folderWith(mutate: (m: Map<string, TensorToWrite>) => void, config: Record<string, unknown> = fakeConfig): string {
  const dir = tmpDir();
  const p = randomParams();
  const m = new Map<string, TensorToWrite>([...flatten<Tensor>(p)].map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }]));
  mutate(m);
  writeSafetensors(path.join(dir, 'model.safetensors'), m);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  dispose(p);
  return dir;
}

async function loadError(dir: string): Promise<string> {
  const before = liveBuffers();
  try {
    await loadModel(dir);
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.equal(liveBuffers(), before, 'a failed load frees what it allocated');
    if (process.env['SHOW_ERRORS']) console.log(e.message);
    return e.message;
  }
  assert.fail(`loading ${dir} should fail`);
}

test('save -> load round trip: same values, not trainable unless asked', async () => {
  const dir = tmpDir();
  const p = randomParams();
  saveModel(dir, 'fake_lm', fakeConfig, p);
  assert.ok(fs.existsSync(path.join(dir, 'model.safetensors')));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), fakeConfig);
  const m = await loadModel<FakeConfig, FakeParams>(dir);
  assert.equal(m.modelType, 'fake_lm');
  assert.deepEqual(m.config, { vocab: 11, hidden: 6, layers: 2, tie: false });
  assert.deepEqual(values(m.params), values(p));
  for (const t of flatten<Tensor>(m.params).values()) assert.equal(t.requiresGrad, false);
  const tr = await loadModel<FakeConfig, FakeParams>(dir, { trainable: true });
  for (const t of flatten<Tensor>(tr.params).values()) assert.equal(t.requiresGrad, true);
  // no temporary files left behind
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  dispose(p); dispose(m.params); dispose(tr.params);
});

test('sharded save loads back; re-saving as one file removes the shards', async () => {
  const dir = tmpDir();
  const p = randomParams();
  saveModel(dir, fakeFamily as ModelFamily, fakeConfig, p, { maxShardBytes: 200 });
  const files = fs.readdirSync(dir).sort();
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length > 1, files.join(' '));
  const m = await loadModel(dir);
  assert.deepEqual(values(m.params), values(p));
  saveModel(dir, 'fake_lm', fakeConfig, p);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  const m2 = await loadModel(dir);
  assert.deepEqual(values(m2.params), values(p));
  dispose(p); dispose(m.params); dispose(m2.params);
});

test('tied weights are written once and load into both keys', async () => {
  const cfg = { ...fakeConfig, tie_word_embeddings: true };
  const dir = tmpDir();
  const p = randomParams(cfg);
  saveModel(dir, 'fake_lm', cfg, p);
  const m = await loadModel<FakeConfig, FakeParams>(dir);
  assert.equal(m.params.lm_head!.weight, m.params.model.embed_tokens.weight);
  assert.deepEqual(Array.from(m.params.lm_head!.weight.data), Array.from(p.model.embed_tokens.weight.data));
  dispose(p); dispose(m.params);
});

test('F16, BF16 and F64 checkpoints convert to f32; ignored buffers are skipped', async () => {
  const p = randomParams();
  const dir = folderWith((m) => {
    const e = m.get('model.embed_tokens.weight')!;
    const f = e.data as Float32Array;
    m.set('model.embed_tokens.weight', { dtype: 'F16', shape: e.shape, data: Uint16Array.from(f, f32ToF16) });
    const n = m.get('model.norm.weight')!;
    m.set('model.norm.weight', { dtype: 'BF16', shape: n.shape, data: Uint16Array.from(n.data as Float32Array, f32ToBf16) });
    const l = m.get('lm_head.weight')!;
    m.set('lm_head.weight', { dtype: 'F64', shape: l.shape, data: Float64Array.from(l.data as Float32Array) });
    m.set('model.layers.0.rotary_emb.inv_freq', { dtype: 'F32', shape: [3], data: new Float32Array(3) });
  });
  const m = await loadModel<FakeConfig, FakeParams>(dir);
  const near = (a: Float32Array, b: Float32Array, tol: number): void => {
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)), `${a[i]} vs ${b[i]}`);
  };
  near(m.params.model.embed_tokens.weight.data, p.model.embed_tokens.weight.data, 1e-3);
  near(m.params.model.norm.weight.data, p.model.norm.weight.data, 1e-2);
  assert.deepEqual(Array.from(m.params.lm_head!.weight.data), Array.from(p.lm_head!.weight.data));
  dispose(p); dispose(m.params);
});

test('missing and unexpected keys: one error listing them with counts', async () => {
  const dir = folderWith((m) => {
    m.delete('model.norm.weight');
    m.set('model.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) });
  });
  const msg = await loadError(dir);
  assert.match(msg, /model\.safetensors/);
  assert.match(msg, /1 missing key \('model\.norm\.weight'\)/);
  assert.match(msg, /1 unexpected key \('model\.extra\.weight'\)/);
  assert.ok(!msg.includes('\n'), 'one line');

  const many = folderWith((m) => { for (const k of [...m.keys()]) if (k.startsWith('model.layers')) m.delete(k); });
  const msg2 = await loadError(many);
  assert.match(msg2, /4 missing keys \('model\.layers\.0\.proj\.weight', 'model\.layers\.0\.proj\.bias', 'model\.layers\.1\.proj\.weight', 'model\.layers\.1\.proj\.bias'\)$/);
  const lots = folderWith((m) => { for (let i = 0; i < 9; i++) m.set(`junk.${i}`, { dtype: 'F32', shape: [1], data: new Float32Array(1) }); });
  assert.match(await loadError(lots), /9 unexpected keys \('junk\.0', 'junk\.1', 'junk\.2', 'junk\.3', 'junk\.4' and 4 more\)/);
});

test('wrong shape names the key, the file and both shapes', async () => {
  const dir = folderWith((m) => m.set('model.norm.weight', { dtype: 'F32', shape: [7], data: new Float32Array(7) }));
  const msg = await loadError(dir);
  assert.match(msg, /model\.safetensors: tensor 'model\.norm\.weight' has shape \[7\] but .* expects \[6\]/);
});

test('a non-float dtype for a weight is refused', async () => {
  const dir = folderWith((m) => m.set('model.norm.weight', { dtype: 'I64', shape: [6], data: new BigInt64Array(6) }));
  assert.match(await loadError(dir), /model\.safetensors: tensor 'model\.norm\.weight' has dtype I64; a parameter needs F32/);
});

test('config problems name config.json and the key', async () => {
  const missingKey = folderWith(() => {}, { model_type: 'fake_lm', vocab_size: 11, num_hidden_layers: 2 });
  assert.match(await loadError(missingKey), /config\.json: 'hidden_size' is missing/);
  const badValue = folderWith(() => {}, { ...fakeConfig, hidden_size: 'six' });
  assert.match(await loadError(badValue), /config\.json: 'hidden_size' must be/);
  const noType = folderWith(() => {}, { vocab_size: 11 });
  assert.match(await loadError(noType), /config\.json: 'model_type' is missing/);
  const unknown = folderWith(() => {}, { ...fakeConfig, model_type: 'gpt9' });
  assert.match(await loadError(unknown), /config\.json: unsupported model_type 'gpt9'/);

  const badJson = folderWith(() => {});
  fs.writeFileSync(path.join(badJson, 'config.json'), '{"model_type": "fake_lm",');
  assert.match(await loadError(badJson), /config\.json: not valid JSON/);
  const arr = folderWith(() => {});
  fs.writeFileSync(path.join(arr, 'config.json'), '[1, 2]');
  assert.match(await loadError(arr), /config\.json: expected a JSON object/);
  const noConfig = folderWith(() => {});
  fs.rmSync(path.join(noConfig, 'config.json'));
  assert.match(await loadError(noConfig), /config\.json: missing/);
});

test('non-existent folder, file instead of folder', async () => {
  assert.match(await loadError(path.join(TMP, 'nope')), /model directory '.*nope' does not exist/);
  const f = path.join(TMP, 'afile');
  fs.writeFileSync(f, 'x');
  assert.match(await loadError(f), /is not a directory/);
});

test('pickle checkpoints are refused; a folder without weights says so', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(fakeConfig));
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), Buffer.from('PK\x03\x04 not really a zip'));
  assert.match(await loadError(dir), /refusing to load .*pytorch_model\.bin: pickle/);
  fs.rmSync(path.join(dir, 'pytorch_model.bin'));
  assert.match(await loadError(dir), /no model\.safetensors/);
});

test('a truncated checkpoint is rejected naming the file', async () => {
  const dir = folderWith(() => {});
  const file = path.join(dir, 'model.safetensors');
  const bytes = fs.readFileSync(file);
  for (const cut of [bytes.length - 1, Math.floor(bytes.length / 2), 20, 4]) {
    fs.writeFileSync(file, bytes.subarray(0, cut));
    const msg = await loadError(dir);
    assert.match(msg, /model\.safetensors/, msg);
    assert.ok(!msg.includes('\n'));
  }
});

test('saveModel refuses a config whose model_type disagrees', () => {
  const p = randomParams();
  assert.throws(() => saveModel(tmpDir(), 'fake_lm', { ...fakeConfig, model_type: 'llama' }, p), /model_type "llama" but the model is 'fake_lm'/);
  dispose(p);
});

test('a real family: a golden llama folder survives load -> save -> load', async (t) => {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
  const src = path.join(root, 'test/golden/models/llama_tied_llama3');
  if (!fs.existsSync(path.join(src, 'config.json'))) return t.skip('fixture not present');
  const a = await loadModel(src);
  const dir = tmpDir();
  saveModel(dir, a.family, a.configJson, a.params);
  const b = await loadModel(dir);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), a.configJson);
  assert.deepEqual([...values(b.params).keys()], [...values(a.params).keys()]);
  assert.deepEqual(values(b.params), values(a.params));
  dispose(a.params); dispose(b.params);
});
