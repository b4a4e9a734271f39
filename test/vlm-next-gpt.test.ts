// NExT-GPT (SPEC §16): one input position, signal-span extraction, the output projector learning a
// toy conditioning target, and LoRA that starts as the identity.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import type { Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { captionTarget, findSignalSpan, nextGptOutputLoss, setNextGptStage, type NextGptConfig } from '../src/models/vlm/next-gpt.ts';
import { AdamW, paramsOf } from '../src/train/optim.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

test('next-gpt real size: 1 position per image (plan agrees), 4 image signal tokens, 77×768 output', () => {
  const pc = presetConfig('next-gpt');
  const c = parseVlmConfig({ model_type: 'chimera_vlm', system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config });
  const v = c.vision as NextGptConfig;
  assert.equal(c.system.plan(c.vision, 800, 600, 'high').positions, 1);
  assert.equal(planPreset(getPreset('next-gpt'), 800, 600).totalPositions, 1);
  assert.equal(v.signalIds.length, 4);
  assert.deepEqual([v.output.numOutputTokens, v.output.outDim, v.output.hidden, v.output.heads, v.output.encoderLayers, v.output.decoderLayers, v.output.ffn], [77, 768, 512, 4, 4, 4, 2048]);
  assert.deepEqual(v.lora, { r: 32, alpha: 32, dropout: 0.1 });
});

test('signal span: exactly k consecutive signal tokens, in order; partial or missing spans are errors', () => {
  const sig = [500, 501, 502, 503];
  assert.equal(findSignalSpan([1, 5, 500, 501, 502, 503, 2], sig), 2);
  assert.throws(() => findSignalSpan([1, 500, 501, 502, 9], sig), /position 1 is not part of a complete/);
  assert.throws(() => findSignalSpan([1, 501, 500, 502, 503], sig), /not part of a complete/);
  assert.throws(() => findSignalSpan([1, 2, 3], sig), /no \[IMG0\.\.IMG3\] signal span/);
});

test('next-gpt: training the output projector (stage s2) lowers the alignment loss to a fixed caption target', () => {
  const m = tinyModel('next-gpt', 2);
  const cfg = m.config.vision as NextGptConfig;
  const on = setNextGptStage(m, 's2');
  assert.ok(on.length > 0 && on.every((p) => p.startsWith('gen_text_hidden_fcs.')));
  const img = m.prepareImage(testImage(48, 48, 6));
  const ids = [1, m.config.imageTokenId, 40, 41, ...cfg.signalIds, 2];
  const target = captionTarget(cfg, 'a red square');
  const opt = new AdamW(paramsOf(m.params), { lr: 3e-3, weightDecay: 0 });
  const losses: number[] = [];
  for (let step = 0; step < 30; step++) {
    const r = nextGptOutputLoss(m, [{ ids, images: [img] }], [target]);
    assert.deepEqual(r.pred.shape, [1, 6, 16]);
    losses.push(F.item(r.loss));
    backward(r.loss);
    if (step === 0) {
      const wrong = [...flatten<Tensor>(m.params)].filter(([p, t]) => (t.grad !== null) !== on.includes(p)).map(([p]) => p);
      assert.deepEqual(wrong, []);
    }
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(losses[29]! < 0.7 * losses[0]!, `alignment loss ${losses[0]} -> ${losses[29]}`);
  assert.throws(() => nextGptOutputLoss(m, [{ ids: [1, m.config.imageTokenId, 40], images: [img] }], [target]), /no \[IMG0\.\.IMG3\] signal span/);
});

test('next-gpt: LoRA starts at zero (model = frozen LLM); s3 LoRA changes the output once B is non-zero', () => {
  const m = tinyModel('next-gpt', 3);
  const img = m.prepareImage(testImage(40, 40, 2));
  const sample = { ids: [1, m.config.imageTokenId, 7, 8], images: [img] };
  noGrad(() => {
    const a = F.denseData(m.forward([sample]).logits);
    const layers = (m.params as unknown as { lora: { layers: Record<string, { B: { weight: Tensor } }>[] } }).lora.layers;
    const saved = layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v.B.weight])));
    for (const l of layers) for (const v of Object.values(l)) v.B.weight = F.zeros(v.B.weight.shape);
    allclose(F.denseData(m.forward([sample]).logits), a, { atol: 0, rtol: 0 });
    layers[0]!.q_proj!.B.weight = F.full(layers[0]!.q_proj!.B.weight.shape, 0.1);
    const b = F.denseData(m.forward([sample]).logits);
    assert.ok(b.some((v, i) => Math.abs(v - a[i]!) > 1e-4));
    layers.forEach((l, i) => { for (const [k, v] of Object.entries(l)) v.B.weight = saved[i]![k]!; });
  });
  assert.deepEqual(m.setStage('s3').filter((p) => p.startsWith('lora')).every((p) => /\.(A|B)\.weight$/.test(p)), true);
});
