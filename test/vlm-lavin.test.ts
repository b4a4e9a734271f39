// LaVIN (SPEC §15): with the adapters' up-projections (B, D) at their zero init the LLM computes
// exactly the frozen LLaMA; the modality router picks different mixing weights for image and
// text-only samples, and once B/D train the two paths differ; 6 CLS tokens at real size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData } from '../src/engine/tensor.ts';
import { llamaForward } from '../src/models/llama.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig } from '../src/models/vlm/model.ts'; // before the system module (model -> systems -> lavin)
import { lavinRouterWeights, type LavinConfig, type RouterAdapter } from '../src/models/vlm/lavin.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { templateFor } from '../src/models/vlm/templates.ts';
import type { LlamaLayer } from '../src/models/llama.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

type LavinLayer = LlamaLayer & { adapter_attn: RouterAdapter };

test('lavin: with zero-initialised up-projections the LLM equals the frozen LLaMA exactly (image and text-only)', () => {
  const m = tinyModel('lavin', 1);
  noGrad(() => {
    const img = m.prepareImage(testImage(60, 40, 2));
    const sample = { ids: [1, 40, 41, m.config.imageTokenId, 42, 43], images: [img] };
    const out = F.denseData(m.forward([sample]).logits);
    const base = F.denseData(llamaForward(m.params.language_model, m.config.text, m.assemble([sample]).embeds));
    assert.deepEqual(Array.from(out), Array.from(base));
    const ids = [1, 40, 41, 42, 43];
    const t = F.denseData(m.forward([{ ids, images: [] }]).logits);
    assert.deepEqual(Array.from(t), Array.from(F.denseData(llamaForward(m.params.language_model, m.config.text, fromData(Int32Array.from(ids), [1, ids.length], 'i32')))));
  });
});

test('lavin: the router picks different mixing weights for image and text-only inputs; trained adapters then differ by modality', () => {
  const m = tinyModel('lavin', 2);
  const cfg = m.config.vision as LavinConfig;
  const layers = m.params.language_model.model.layers as LavinLayer[];
  noGrad(() => {
    const emb = (m.params as unknown as { adapter_modality_embedding: { weight: ReturnType<typeof F.zeros> } }).adapter_modality_embedding.weight; // [2, D]
    for (const [l, layer] of layers.entries()) {
      const w = F.denseData(lavinRouterWeights(cfg, layer.adapter_attn, layer, emb, m.config.text.rmsNormEps)); // [2, 2]: text-only row, image row
      assert.ok(Math.abs(w[0]! + w[1]! - 1) < 1e-6 && Math.abs(w[2]! + w[3]! - 1) < 1e-6);
      assert.ok(Math.abs(w[0]! - w[2]!) > 1e-4, `layer ${l}: text ${w[0]} vs image ${w[2]}`);
    }
    // give B and D different non-zero weights: the same text now computes differently per modality
    const rng = new Rng(5);
    for (const layer of layers) for (const c of [layer.adapter_attn.conv_B, layer.adapter_attn.conv_D]) rng.fillNormal(c.weight.data, 0, 0.5);
    const img = m.prepareImage(testImage(60, 40, 2));
    const I = m.config.imageTokenId;
    const withImg = F.denseData(m.forward([{ ids: [1, 40, I, 41, 42], images: [img] }]).logits);
    const V = m.config.text.vocabSize;
    const textOnly = F.denseData(m.forward([{ ids: [1, 40, 41, 42], images: [] }]).logits);
    // positions 0 and 1 (BOS, 40) precede the image: same tokens, different routing only
    let diff = 0;
    for (let i = 0; i < 2 * V; i++) diff = Math.max(diff, Math.abs(withImg[i]! - textOnly[i]!));
    assert.ok(diff > 1e-5, `routing by modality must change the text path (max diff ${diff})`);
    // with B = D the mixture no longer depends on the weights: the paths agree again
    for (const layer of layers) layer.adapter_attn.conv_D.weight.data.set(layer.adapter_attn.conv_B.weight.data);
    for (const layer of layers) layer.adapter_attn.conv_D.bias!.data.set(layer.adapter_attn.conv_B.bias!.data);
    const a = F.denseData(m.forward([{ ids: [1, 40, I, 41, 42], images: [img] }]).logits);
    const b = F.denseData(m.forward([{ ids: [1, 40, 41, 42], images: [] }]).logits);
    let same = 0;
    for (let i = 0; i < 2 * V; i++) same = Math.max(same, Math.abs(a[i]! - b[i]!));
    assert.ok(same < 1e-5, `equal branches: max diff ${same}`);
  });
});

test('lavin: the template writes "Image: " before the image and "Image: N/A" without one', () => {
  const t = templateFor('lavin');
  const segs = t.render([{ role: 'user', parts: [{ image: 0 }, { text: 'What is it?' }] }], true);
  assert.deepEqual(segs.slice(0, 4), [{ special: 'bos' }, { text: 'Image: ' }, { image: 0 }, { text: '\n' }]);
  const none = t.render([{ role: 'user', parts: [{ text: 'Hi' }] }], true);
  assert.ok(none.some((s) => 'text' in s && s.text === 'N/A'));
});

test('lavin: the real preset reads 6 CLS tokens (every 4th of 24 blocks) and plans as chimera plan', () => {
  const pc = presetConfig('lavin');
  const cfg = parseVlmConfig({ system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config }, 'preset lavin');
  assert.equal((cfg.vision as LavinConfig).tokens, 6);
  for (const [W, H] of [[224, 224], [640, 480]] as const) {
    const ours = cfg.system.plan(cfg.vision, W, H, 'high');
    const theirs = planPreset(getPreset('lavin'), W, H);
    assert.equal(ours.positions, theirs.totalPositions);
    assert.deepEqual(ours.views.map((v) => v.size), theirs.views.map((v) => v.size));
  }
  assert.deepEqual(Object.keys(cfg.info.stages), ['finetune']);
});
