// BLIP-2 / InstructBLIP (SPEC §8): real-size shapes and plan agreement, instruction conditioning,
// and the stage-1 objectives (ITC, ITM, ITG).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { normalInit } from '../src/nn/init.ts';
import * as qf from '../src/models/blip2-qformer.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { templateFor } from '../src/models/vlm/templates.ts';
import {
  blip2QueryOutputs, initStage1Heads, itcLoss, itgLoss, itgMask, itmLoss, stage1Loss,
  type Blip2Config, type Blip2Params, type QFormerStage1, type Stage1Text,
} from '../src/models/vlm/blip2.ts';
import { AdamW, paramsOf } from '../src/train/optim.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const realCfg = (name: string) => {
  const pc = presetConfig(name);
  return parseVlmConfig({ model_type: 'chimera_vlm', system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config });
};

for (const name of ['blip-2', 'instructblip']) {
  test(`${name} real size: 32 queries × 768 from a 1408-wide EVA ViT-g at 224; plan agrees with chimera plan`, () => {
    const cfg = realCfg(name);
    const v = cfg.vision as Blip2Config;
    assert.equal(v.tower.numQueryTokens, 32);
    assert.equal(v.tower.qformer.hiddenSize, 768);
    assert.equal(v.tower.qformer.numHiddenLayers, 12);
    assert.equal(v.tower.qformer.crossAttentionFrequency, 2);
    assert.equal(v.tower.vision.cfg.hiddenSize, 1408);
    assert.equal(v.tower.vision.cfg.numHiddenLayers, 39);
    for (const [W, H] of [[224, 224], [800, 600], [37, 90]] as const) {
      const mine = cfg.system.plan(cfg.vision, W, H, 'high');
      const table = planPreset(getPreset(name), W, H);
      assert.deepEqual(mine.views.map(() => 32), table.views.map((x) => x.positions));
      assert.equal(mine.positions, table.totalPositions);
    }
    assert.equal(v.instruct, name === 'instructblip');
    if (v.instruct) assert.equal(v.maxInstruction, 128);
  });
}

function queryOut(name: string, instruction: number[]): Float32Array {
  const m = tinyModel(name);
  return noGrad(() => {
    const p = m.prepareImage(testImage(60, 50, 4));
    const q = blip2QueryOutputs(m.config.vision as Blip2Config, m.params as unknown as Blip2Params, [{ ...p, instruction }]);
    const v = cfg(m).tower;
    assert.deepEqual(q.shape, [1, v.numQueryTokens, v.qformer.hiddenSize]);
    return F.denseData(q);
  });
}
const cfg = (m: ReturnType<typeof tinyModel>): Blip2Config => m.config.vision as Blip2Config;

test('InstructBLIP: the instruction changes the query outputs (any length gives Q × Dq); BLIP-2 ignores it', () => {
  const a = queryOut('instructblip', [7, 8, 9]), b = queryOut('instructblip', [7, 8, 10]);
  const c = queryOut('instructblip', Array.from({ length: 15 }, (_, i) => 20 + i)), none = queryOut('instructblip', []);
  const diff = (x: Float32Array, y: Float32Array) => Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
  assert.ok(diff(a, b) > 1e-4, 'instruction change moves the queries');
  assert.ok(diff(a, c) > 1e-4 && diff(a, none) > 1e-4);
  assert.equal(diff(queryOut('blip-2', [7, 8, 9]), queryOut('blip-2', [1, 2])), 0);
});

test('InstructBLIP: instruction ids outside the Q-Former vocabulary are a clear error', () => {
  const m = tinyModel('instructblip');
  const p = m.prepareImage(testImage(40, 40));
  assert.throws(() => noGrad(() => m.encodeImages([{ ...p, instruction: [100000] }])), /text id 100000 is outside the Q-Former vocabulary of 512/);
});

// ---- stage 1 ----------------------------------------------------------------------------------

function stage1(seed = 0): QFormerStage1 {
  const rng = new Rng(seed);
  const cfg = qf.parseConfig({ hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, encoder_hidden_size: 24, use_qformer_text_input: true });
  return { cfg, qformer: qf.init(cfg, rng), query_tokens: normalInit([1, 4, 32], 0.02, rng), heads: initStage1Heads(cfg, { vocabSize: 40, maxPositions: 16, embedDim: 16 }, rng) };
}

function toy(B: number, T: number, seed = 3): { image: Tensor; text: Stage1Text } {
  const r = new Rng(seed);
  const image = fromData(Float32Array.from({ length: B * 5 * 24 }, () => r.normal()), [B, 5, 24]);
  const ids = new Int32Array(B * T), mask = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) {
    const pad = t >= T - b; // row b has b padding positions
    ids[b * T + t] = t === 0 ? 1 : pad ? 0 : 3 + ((b * 7 + t * 3) % 30);
    mask[b * T + t] = pad ? 0 : 1;
  }
  return { image, text: { ids: fromData(ids, [B, T], 'i32'), mask: fromData(mask, [B, T]) } };
}

test('ITC: B×B similarities, max over queries / temp, symmetric CE with label smoothing 0.1 (hand computation)', () => {
  const m = stage1();
  const { image, text } = toy(3, 6);
  noGrad(() => {
    const r = itcLoss(m, image, text);
    assert.deepEqual(r.simI2T.shape, [3, 3]);
    const s = F.denseData(r.simI2T), t = F.denseData(r.simT2I);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      assert.equal(t[i * 3 + j], s[j * 3 + i]);
      assert.ok(Math.abs(s[i * 3 + j]!) <= 1 / 0.07 + 1e-3, 'cosine / temp');
    }
    const ce = (x: Float32Array, rowMajor: boolean): number => {
      let tot = 0;
      for (let i = 0; i < 3; i++) {
        const row = [0, 1, 2].map((j) => (rowMajor ? x[i * 3 + j]! : x[j * 3 + i]!));
        const mx = Math.max(...row), lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
        const nll = lse - row[i]!, smooth = row.reduce((a, v) => a + (lse - v), 0) / 3;
        tot += 0.9 * nll + 0.1 * smooth;
      }
      return tot / 3;
    };
    const want = (ce(s, true) + ce(s, false)) / 2;
    assert.ok(Math.abs(F.item(r.loss) - want) < 1e-4, `${F.item(r.loss)} vs ${want}`);
  });
});

test('ITM: labels [1]·B + [0]·2B, hard negatives never the positive, logits [3B, 2]; B = 1 is an error', () => {
  const m = stage1();
  const { image, text } = toy(4, 5);
  noGrad(() => {
    const c = itcLoss(m, image, text);
    const r = itmLoss(m, image, text, c, new Rng(5));
    assert.deepEqual([...r.labels], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(r.logits.shape, [12, 2]);
    for (let b = 0; b < 4; b++) { assert.notEqual(r.negImage[b], b); assert.notEqual(r.negText[b], b); }
    const one = toy(1, 5);
    assert.throws(() => itmLoss(m, one.image, one.text, itcLoss(m, one.image, one.text), new Rng(1)), /at least 2/);
  });
});

test('ITG mask: queries see only queries; text sees all queries and earlier unpadded text', () => {
  const mk = F.denseU8(itgMask(1, 2, 3, Float32Array.of(1, 1, 0)));
  const rows = [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]];
  assert.deepEqual([...mk], rows.flat());
});

test('ITG: text positions never see later text (changing a later token leaves earlier logits unchanged)', () => {
  const m = stage1();
  const { image, text } = toy(2, 6);
  noGrad(() => {
    const a = F.denseData(itgLoss(m, image, text, 2).logits);
    const ids = Int32Array.from(F.denseI32(text.ids)); ids[4] = 39;
    const b = F.denseData(itgLoss(m, image, { ids: fromData(ids, [2, 6], 'i32'), mask: text.mask }, 2).logits);
    const V = 40;
    for (let i = 0; i < 4 * V; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5);
    assert.ok(Math.max(...Array.from({ length: V }, (_, i) => Math.abs(a[4 * V + i]! - b[4 * V + i]!))) > 1e-5);
  });
});

test('stage 1: ITC + ITM + ITG decreases under AdamW on a toy batch, and every trained leaf gets a gradient', () => {
  const m = stage1(1);
  const { image, text } = toy(3, 6, 9);
  const opt = new AdamW(paramsOf({ q: m.qformer, t: m.query_tokens, h: m.heads }), { lr: 3e-3, weightDecay: 0 });
  const losses: number[] = [];
  for (let step = 0; step < 25; step++) {
    const r = stage1Loss(m, image, text, { decBosId: 2, rng: new Rng(11) });
    losses.push(F.item(r.loss));
    backward(r.loss);
    if (step === 0) {
      const missing = [...flatten<Tensor>({ q: m.qformer, t: m.query_tokens, h: m.heads })].filter(([, t]) => t.grad === null).map(([p]) => p);
      assert.deepEqual(missing, []);
    }
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(losses[losses.length - 1]! < losses[0]! * 0.8, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
});

test('templates: BLIP-2 wraps the question; InstructBLIP passes the instruction through', () => {
  const segs = templateFor('blip2').render([{ role: 'user', parts: [{ image: 0 }, { text: 'what is it?' }] }], true);
  assert.deepEqual(segs, [{ image: 0 }, { special: 'bos' }, { text: 'Question: what is it? Answer:' }]);
  const ib = templateFor('instructblip').render([{ role: 'user', parts: [{ image: 0 }, { text: 'Describe.' }] }, { role: 'assistant', parts: [{ text: 'A cat.' }] }], false);
  assert.deepEqual(ib, [{ image: 0 }, { special: 'bos' }, { text: 'Describe.' }, { text: ' A cat.', supervised: true }, { special: 'eos', supervised: true }]);
});
