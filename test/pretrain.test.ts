// Encoder pre-training at fast settings: each paradigm's loss goes down, the held-out probe is
// above chance where it is a retrieval task, and the tower folder loads as its HF family.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { useBackend } from '../src/backends/index.ts';
import { loadModel } from '../src/models/load.ts';
import { towerConfigs, DEMO_VIEW } from '../src/train/demo/config.ts';
import { pretrainClip, pretrainDino, pretrainQFormer, pretrainSupervised, saveTower } from '../src/train/pretrain/index.ts';
import { infoNce } from '../src/train/pretrain/clip.ts';
import { bceWithLogits } from '../src/train/pretrain/supervised.ts';
import * as F from '../src/engine/ops/index.ts';

useBackend('auto');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-pretrain-'));

test('infoNCE is log(B) for uninformative embeddings and small for matched ones; BCE matches its formula', () => {
  const B = 4, zero = F.fromData(new Float32Array([0]), []);
  const same = F.ones([B, 3]);
  assert.ok(Math.abs(F.item(infoNce(same, same, zero)) - Math.log(B)) < 1e-5);
  const eye = F.fromData(Float32Array.from({ length: B * B }, (_, i) => (i % (B + 1) === 0 ? 1 : 0)), [B, B]);
  assert.ok(F.item(infoNce(eye, eye, F.fromData(new Float32Array([Math.log(50)]), []))) < 0.01);
  const x = F.fromData(new Float32Array([2, -1]), [1, 2]), y = F.fromData(new Float32Array([1, 0]), [1, 2]);
  const want = (Math.log(1 + Math.exp(-2)) + Math.log(1 + Math.exp(-1))) / 2;
  assert.ok(Math.abs(F.item(bceWithLogits(x, y)) - want) < 1e-6);
});

test('CLIP contrastive pre-training lowers the loss and retrieves held-out captions above chance; the folder loads', async () => {
  const r = pretrainClip(towerConfigs.clip(), { steps: 100, seed: 1, batch: 24, poolSize: 256 });
  assert.ok(r.last < r.first * 0.85, `loss ${r.first} -> ${r.last}`);
  assert.ok(r.probe.value >= 2 * r.probe.chance, `retrieval ${r.probe.value} vs chance ${r.probe.chance}`);
  const dir = tmp();
  saveTower(dir, 'clip', towerConfigs.clip(), r);
  const m = await loadModel(dir);
  assert.equal(m.modelType, 'clip_vision_model');
  assert.ok(JSON.parse(fs.readFileSync(path.join(dir, 'pretrain.json'), 'utf8')).losses.length === 100);
});

test('DINO self-distillation lowers its loss (EMA teacher, centring, multi-crop)', async () => {
  const r = pretrainDino(towerConfigs.dinov2(), { steps: 70, seed: 1, batch: 16, poolSize: 192, localCrops: 2 });
  assert.ok(r.last < r.first, `loss ${r.first} -> ${r.last}`);
  const dir = tmp();
  saveTower(dir, 'dino', towerConfigs.dinov2(), r);
  assert.equal((await loadModel(dir)).modelType, 'dinov2');
});

test('supervised ConvNeXt pre-training lowers the multi-label loss', async () => {
  const r = pretrainSupervised(towerConfigs.convnext(), { steps: 60, seed: 1, batch: 24, poolSize: 256, viewSize: DEMO_VIEW });
  assert.ok(r.last < r.first, `loss ${r.first} -> ${r.last}`);
  const dir = tmp();
  saveTower(dir, 'supervised', towerConfigs.convnext(), r);
  assert.equal((await loadModel(dir)).modelType, 'convnext');
});

test('BLIP-2 stage 1 (ITC + ITM + ITG) lowers the Q-Former loss over a frozen CLIP ViT; the Q-Former folder loads', async () => {
  const vision = pretrainClip(towerConfigs.clip(), { steps: 20, seed: 2, batch: 16, poolSize: 128 });
  const r = pretrainQFormer(towerConfigs.qformer(), towerConfigs.queries, { config: towerConfigs.clip(), params: vision.params }, { steps: 40, seed: 2, batch: 12, poolSize: 128 });
  assert.ok(r.last < r.first, `loss ${r.first} -> ${r.last}`);
  const dir = tmp();
  saveTower(dir, 'qformer', towerConfigs.qformer(), r, { vision: { config: towerConfigs.clip(), params: vision.params }, queries: towerConfigs.queries });
  assert.equal((await loadModel(dir)).modelType, 'blip_2_qformer');
  assert.equal((await loadModel(path.join(dir, 'vision'))).modelType, 'clip_vision_model');
  assert.ok(fs.existsSync(path.join(dir, 'query_tokens.safetensors')));
});
