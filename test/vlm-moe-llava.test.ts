// MoE-LLaVA (SPEC §11.3): right after upcycling, every expert is a copy of the dense FFN, so the
// MoE model equals the stage-2 dense model for any routing; the balance loss is 1 per MoE layer
// under uniform routing (× router_aux_loss_coef, summed over layers) and grows as routing
// concentrates; stage 3 trains every FFN, the experts and routers, nothing else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { untracked } from '../src/engine/tensor.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { IGNORE_INDEX, initVlm, parseVlmConfig, VlmModel } from '../src/models/vlm/model.ts'; // before the system module (model -> systems -> moe-llava)
import { moeLayers, upcycleMoeLlava, type MoeLlavaConfig } from '../src/models/vlm/moe-llava.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import type { SparseMoe } from '../src/nn/moe.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const fourLayers = (dense: boolean) => (j: Record<string, unknown>): void => {
  (j.text_config as Record<string, unknown>).num_hidden_layers = 4;
  if (dense) ((j.vision_config as Record<string, unknown>).moe as Record<string, unknown>) = { ...((j.vision_config as Record<string, unknown>).moe as object), moe_enable: false };
};

test('moe-llava: moe_mode picks the layers (sparse = every other from 0)', () => {
  assert.deepEqual(moeLayers('sparse', 6, null), [0, 2, 4]);
  assert.deepEqual(moeLayers('dense', 3, null), [0, 1, 2]);
  assert.deepEqual(moeLayers('first_half', 6, null), [0, 1, 2]);
  assert.deepEqual(moeLayers('second_half', 6, null), [3, 4, 5]);
  assert.deepEqual(moeLayers('sparse', 6, [5, 1, 1]), [1, 5]);
  assert.throws(() => moeLayers('every_third', 6, null), /moe_mode/);
  assert.throws(() => moeLayers('sparse', 6, [6]), /outside \[0, 6\)/);
});

test('moe-llava: the upcycled model equals the dense stage-2 model, for any router', () => {
  const dense = tinyModel('moe-llava', 3, fourLayers(true));
  assert.ok(dense.params.language_model.model.layers.every((l) => l.mlp !== null));
  noGrad(() => {
    const img = dense.prepareImage(testImage(60, 50, 2));
    const ids = [1, dense.config.imageTokenId, 30, 31, 32, 33, 34];
    const want = F.denseData(dense.forward([{ ids, images: [img] }]).logits);
    // the same weights, upcycled in place: layers 0 and 2 become 4 experts each with a random router
    const pc = presetConfig('moe-llava:tiny');
    const sparseCfg = parseVlmConfig({ ...pc, image_token_id: dense.config.imageTokenId, text_config: { ...pc.text_config, num_hidden_layers: 4 } }, 'moe-llava');
    untracked(() => upcycleMoeLlava((sparseCfg.vision as MoeLlavaConfig).moe, dense.params.language_model, new Rng(11)));
    const moe = new VlmModel(dense.params, sparseCfg);
    const layers = moe.params.language_model.model.layers;
    assert.deepEqual(layers.map((l) => l.mlp === null), [true, false, true, false]);
    const sm = (layers[0] as unknown as { block_sparse_moe: SparseMoe }).block_sparse_moe;
    assert.equal(sm.experts.length, 4);
    const got = F.denseData(moe.forward([{ ids, images: [img] }]).logits);
    allclose(got, want, { atol: 2e-5, rtol: 1e-4 });
    assert.throws(() => upcycleMoeLlava((sparseCfg.vision as MoeLlavaConfig).moe, moe.params.language_model, null), /no dense mlp/);
  });
});

test('moe-llava: balance loss is router_aux_loss_coef × (MoE layers) under uniform routing', () => {
  const m = tinyModel('moe-llava', 4, fourLayers(false));
  m.setStage('moe');
  const moeL = m.params.language_model.model.layers.filter((l) => l.mlp === null) as unknown as { block_sparse_moe: SparseMoe }[];
  assert.equal(moeL.length, 2);
  const img = m.prepareImage(testImage(60, 50, 2));
  const ids = [1, m.config.imageTokenId, 30, 31, 32, 33, 34];
  const labels = ids.map((t, i) => (i >= 4 ? t : IGNORE_INDEX));
  for (const l of moeL) l.block_sparse_moe.gate.weight.data.fill(0); // uniform softmax
  const out = m.forward([{ ids, labels, images: [img] }]);
  assert.ok(Math.abs(F.item(out.aux!) - 0.01 * 2) < 1e-7, `aux ${F.item(out.aux!)}`);
  allclose(F.denseData(out.loss!), [F.item(out.ce!) + F.item(out.aux!)], { atol: 1e-6 });
  noGrad(() => assert.equal(m.forward([{ ids, images: [img] }]).aux, null, 'no auxiliary loss at inference'));
});

test('moe-llava: concentrated routing gives E·P_0 × coef (SPEC §11.1 normalisation)', () => {
  const m = tinyModel('moe-llava', 5);
  m.setStage('moe');
  const cfg = m.config.vision as MoeLlavaConfig;
  const D = m.config.text.hiddenSize, N = 6;
  const u = F.denseData(F.randn([D], { rng: new Rng(3) }));
  const hData = new Float32Array(N * D);
  for (let n = 0; n < N; n++) hData.set(u, n * D);
  const gate = (m.params.language_model.model.layers[0] as unknown as { block_sparse_moe: SparseMoe }).block_sparse_moe.gate.weight;
  gate.data.fill(0);
  let uu = 0;
  for (let d = 0; d < D; d++) { gate.data[d] = 0.05 * u[d]!; uu += u[d]! * u[d]!; }
  const a = 0.05 * uu; // expert 0's logit; the others are 0
  const P0 = Math.exp(a) / (Math.exp(a) + 3);
  const step = { B: 1, T: N, P: 0, imageMask: new Uint8Array(N), mediaIndex: new Int32Array(N).fill(-1), media: [[]], hasImage: [false] };
  const hooks = m.system.hooks!(cfg, m.params, m.config.text, step);
  const h = F.reshape(untracked(() => F.tensor(hData, [N, D])), [1, N, D]);
  const out = hooks.mlp!(0, h, null)!;
  assert.deepEqual(out.shape, [1, N, D]);
  const aux = F.item(hooks.auxLoss!()!);
  assert.ok(Math.abs(aux - 0.01 * 4 * P0) < 1e-6, `aux ${aux}, expected ${0.01 * 4 * P0}`);
  assert.ok(aux > 0.01 * 1.5);
  assert.equal(hooks.mlp!(1, h, null), null, 'layer 1 is dense');
});

test('moe-llava: stage 3 trains every FFN (dense layers too), the experts and the routers; nothing else', () => {
  const m = tinyModel('moe-llava', 6, fourLayers(false));
  const on = m.setStage('moe');
  assert.ok(on.length > 0);
  for (const p of on) assert.match(p, /^language_model\.model\.layers\.\d+\.(mlp|block_sparse_moe)\./, p);
  assert.ok(on.some((p) => /layers\.1\.mlp\.gate_proj/.test(p)), 'non-MoE FFN');
  assert.ok(on.some((p) => /layers\.0\.block_sparse_moe\.gate\.weight/.test(p)), 'router');
  assert.ok(on.some((p) => /layers\.2\.block_sparse_moe\.experts\.3\.w2/.test(p)), 'expert');
  assert.ok(!on.some((p) => /self_attn|embed|mm_projector|vision_tower/.test(p)));
  assert.deepEqual(m.setStage('pretrain').every((p) => p.startsWith('mm_projector')), true);
});

test('moe-llava: a fresh zero-initialised model (weights to be loaded) has the upcycled layout', () => {
  const pc = presetConfig('moe-llava:tiny');
  const cfg = parseVlmConfig(pc, 'moe-llava');
  const p = untracked(() => initVlm(cfg, null));
  assert.deepEqual(p.language_model.model.layers.map((l) => l.mlp === null), [true, false]);
});

test('moe-llava: the real preset plans 576 positions (LLaVA-1.5 at 336), as chimera plan, with MoE in 16 of 32 layers', () => {
  const pc = presetConfig('moe-llava');
  const cfg = parseVlmConfig({ system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config }, 'preset moe-llava');
  const v = cfg.vision as MoeLlavaConfig;
  assert.equal(v.moe.layers.length, 16);
  assert.equal(v.moe.auxLossCoef, 0.01);
  assert.equal(v.moe.numExperts, getPreset('moe-llava').llm.moe!.experts);
  for (const [W, H] of [[336, 336], [640, 480], [300, 900]] as const) {
    const ours = cfg.system.plan(cfg.vision, W, H, 'high');
    const theirs = planPreset(getPreset('moe-llava'), W, H);
    assert.equal(ours.positions, theirs.totalPositions);
    assert.deepEqual(ours.views.map((x) => x.size), theirs.views.map((x) => x.size));
  }
});
