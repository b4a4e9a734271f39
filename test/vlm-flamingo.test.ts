// Flamingo (SPEC §7.5): zero gates leave the language model exactly as it was; with open gates a
// token before the first image gets no cross-attention, a token after image 2 sees only image 2,
// and a cached decoding step attends to the last image. The real preset plans as `chimera plan`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { llamaForward } from '../src/models/llama.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import type { FlamingoConfig, FlamingoParams } from '../src/models/vlm/flamingo.ts';
import { parseVlmConfig, type VlmModel } from '../src/models/vlm/model.ts';
import type { HookStep } from '../src/models/vlm/system.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const randn = (shape: number[], seed: number): Tensor => F.randn(shape, { rng: new Rng(seed) });

function twoImagePrompt(m: VlmModel): number[] {
  const I = m.config.imageTokenId;
  return [1, 30, 31, I, 40, 41, 42, I, 50, 51, 52];
}

function setGates(m: VlmModel, attn: number, ff: number): void {
  for (const p of Object.values((m.params as unknown as FlamingoParams).gated_cross_attn_layers)) {
    p.attn_gate.data[0] = attn;
    p.ff_gate.data[0] = ff;
  }
}

test('flamingo: with gates at 0 the logits equal the language model\'s on the same tokens, bit for bit', () => {
  const m = tinyModel('flamingo', 3);
  noGrad(() => {
    const ids = twoImagePrompt(m);
    const images = [m.prepareImage(testImage(60, 40, 1)), m.prepareImage(testImage(40, 70, 2))];
    const out = m.forward([{ ids, images }]).logits;
    const lm = llamaForward(m.params.language_model, m.config.text, fromData(Int32Array.from(ids), [1, ids.length], 'i32'));
    assert.deepEqual(out.shape, lm.shape);
    assert.deepEqual(Array.from(F.denseData(out)), Array.from(F.denseData(lm)));
  });
});

test('flamingo: with open gates, text before the first image does not depend on the images; text after depends on them', () => {
  const m = tinyModel('flamingo', 4);
  setGates(m, 0.7, 0.4);
  noGrad(() => {
    const ids = twoImagePrompt(m);
    const a = m.prepareImage(testImage(60, 40, 1)), b = m.prepareImage(testImage(40, 70, 2)), c = m.prepareImage(testImage(50, 50, 9));
    const x = F.denseData(m.forward([{ ids, images: [a, b] }]).logits);
    const y = F.denseData(m.forward([{ ids, images: [c, b] }]).logits);
    const V = m.config.text.vocabSize, first = ids.indexOf(m.config.imageTokenId);
    assert.deepEqual(Array.from(x.subarray(0, first * V)), Array.from(y.subarray(0, first * V)), 'positions before the first <image>');
    let diff = 0;
    for (let i = first * V; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    assert.ok(diff > 1e-4, `positions from the first <image> on must see it (max diff ${diff})`);
    // the language model alone differs once the gates are open
    const lm = F.denseData(llamaForward(m.params.language_model, m.config.text, fromData(Int32Array.from(ids), [1, ids.length], 'i32')));
    assert.ok(Math.abs(lm[first * V]! - x[first * V]!) + Math.abs(lm[(ids.length - 1) * V]! - x[(ids.length - 1) * V]!) > 1e-5);
  });
});

function blockStep(mediaIndex: number[], media: Tensor[], P = 0): HookStep {
  const T = mediaIndex.length;
  return { B: 1, T, P, imageMask: new Uint8Array(T), mediaIndex: Int32Array.from(mediaIndex), media: [media], hasImage: [media.length > 0] };
}

test('flamingo: the gated block is zero before the first image and sees only the latest image (only_attend_immediate)', () => {
  const m = tinyModel('flamingo', 5);
  setGates(m, 0.9, 0); // ff gate 0: the block's change is the cross-attention alone
  const cfg = m.config.vision as FlamingoConfig;
  const L = cfg.perceiver.numLatents!, Dv = cfg.xattn.dimVisual, D = m.config.text.hiddenSize;
  noGrad(() => {
    const x = randn([1, 6, D], 1);
    const m0 = randn([L, Dv], 2), m0b = randn([L, Dv], 3), m1 = randn([L, Dv], 4);
    const run = (media: Tensor[], idx: number[], P = 0, xx = x): Float32Array => {
      const h = m.system.hooks!(cfg, m.params, m.config.text, blockStep(idx, media, P));
      return F.denseData(h.beforeLayer!(0, xx));
    };
    const idx = [-1, -1, 0, 0, 1, 1];
    const out = run([m0, m1], idx), alt = run([m0b, m1], idx), xd = F.denseData(x);
    const row = (a: Float32Array, t: number): number[] => Array.from(a.subarray(t * D, (t + 1) * D));
    for (const t of [0, 1]) assert.deepEqual(row(out, t), row(xd, t), `position ${t}: before any image the block is the identity`);
    for (const t of [4, 5]) assert.deepEqual(row(out, t), row(alt, t), `position ${t}: after image 2, image 1 is invisible`);
    for (const t of [2, 3]) assert.notDeepEqual(row(out, t), row(alt, t), `position ${t}: sees image 1`);
    // a cached decoding step (T = 1, P > 0) with mediaIndex 1 attends to the last image only
    const x1 = randn([1, 1, D], 7);
    const d1 = run([m0, m1], [1], 11, x1), d2 = run([m0b, m1], [1], 11, x1), d3 = run([m0, m0b], [1], 11, x1);
    assert.deepEqual(Array.from(d1), Array.from(d2));
    assert.notDeepEqual(Array.from(d1), Array.from(d3));
  });
});

test('flamingo: a cached session decodes the same tokens as a full pass with open gates and two images', () => {
  const m = tinyModel('flamingo', 6);
  setGates(m, 0.5, 0.3);
  noGrad(() => {
    const ids = twoImagePrompt(m), more = [60, 61];
    const images = [m.prepareImage(testImage(60, 40, 1)), m.prepareImage(testImage(40, 70, 2))];
    const full = F.denseData(m.forward([{ ids: [...ids, ...more], images }]).logits);
    const s = m.session({ ids, images });
    const V = m.config.text.vocabSize, Lp = ids.length;
    const cache = s.newCache(1, Lp + more.length);
    s.forward(fromData(Int32Array.from(ids), [1, Lp], 'i32'), cache).dispose();
    more.forEach((t, k) => {
      const step = F.denseData(s.forward(fromData(Int32Array.of(t), [1, 1], 'i32'), cache));
      const want = full.subarray((Lp + k) * V, (Lp + k + 1) * V);
      for (let i = 0; i < V; i++) assert.ok(Math.abs(step[i]! - want[i]!) < 2e-4, `token ${k} logit ${i}`);
    });
    s.dispose();
  });
});

test('flamingo: the real preset plans 0 positions per image, as chimera plan, with 8 xattn layers and 64 latents', () => {
  const pc = presetConfig('flamingo');
  const cfg = parseVlmConfig({ system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config }, 'preset flamingo');
  const v = cfg.vision as FlamingoConfig;
  assert.deepEqual(v.xattnLayers, [3, 7, 11, 15, 19, 23, 27, 31]);
  assert.equal(v.perceiver.numLatents, 64);
  assert.equal(v.perceiver.depth, 6);
  assert.equal(v.patches, 256); // SPEC §7.4
  for (const [W, H] of [[224, 224], [640, 480]] as const) {
    const ours = cfg.system.plan(cfg.vision, W, H, 'high');
    const theirs = planPreset(getPreset('flamingo'), W, H);
    assert.equal(ours.positions, theirs.totalPositions);
    assert.deepEqual(ours.views.map((x) => x.size), theirs.views.map((x) => x.size));
    assert.equal(getPreset('flamingo').xattn!.layers, v.xattnLayers.length);
  }
});
