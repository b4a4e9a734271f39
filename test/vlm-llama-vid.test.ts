// LLaMA-VID (SPEC §12): 2 tokens per frame for video, the instruction drives the context token only,
// and the image plan agrees with `chimera plan`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { layoutSample, parseVlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { parseCompress, planFrames, prepareFrames, type LlamaVidConfig } from '../src/models/vlm/llama-vid.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

test('llama-vid real size: an image at 336 takes 1 context + 576 content positions, as chimera plan says; a video 2 per frame', () => {
  const pc = presetConfig('llama-vid');
  const c = parseVlmConfig({ model_type: 'chimera_vlm', system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config });
  for (const [W, H] of [[336, 336], [800, 600]] as const) {
    const mine = c.system.plan(c.vision, W, H, 'high');
    assert.equal(mine.positions, 577);
    assert.equal(mine.positions, planPreset(getPreset('llama-vid'), W, H).totalPositions);
  }
  const v = c.vision as LlamaVidConfig;
  assert.equal(v.numQueries, 32);
  assert.equal(planFrames(v, 10), 20);
});

test('llama-vid: a video of F frames gives exactly 2F tokens; it splices into the prompt', () => {
  const m = tinyModel('llama-vid');
  const cfg = m.config.vision as LlamaVidConfig;
  noGrad(() => {
    for (const Fr of [1, 3, 5]) {
      const frames = Array.from({ length: Fr }, (_, i) => testImage(60, 40, i + 1));
      const v = prepareFrames(cfg, frames);
      assert.equal(v.positions, 2 * Fr);
      assert.equal(v.views.length, Fr);
      const [e] = m.encodeImages([{ ...v, instruction: [7, 8] }]);
      assert.deepEqual(e!.shape, [2 * Fr, 64]);
      const lay = layoutSample(m.config, { ids: [1, m.config.imageTokenId, 9], images: [v] });
      assert.equal(lay.ids.length, 2 + 2 * Fr);
    }
  });
  assert.throws(() => prepareFrames(cfg, []), /at least one frame/);
});

test('llama-vid: the instruction changes each frame\'s context token and leaves the content tokens alone', () => {
  const m = tinyModel('llama-vid');
  const v = prepareFrames(m.config.vision as LlamaVidConfig, [testImage(50, 50, 1), testImage(50, 50, 2)]);
  noGrad(() => {
    const a = F.denseData(m.encodeImages([{ ...v, instruction: [7, 8, 9] }])[0]!);
    const b = F.denseData(m.encodeImages([{ ...v, instruction: [30, 31] }])[0]!);
    const D = 64;
    for (const row of [0, 2]) assert.ok(Math.max(...Array.from({ length: D }, (_, i) => Math.abs(a[row * D + i]! - b[row * D + i]!))) > 1e-5, `context row ${row}`);
    for (const row of [1, 3]) for (let i = 0; i < D; i++) assert.equal(a[row * D + i], b[row * D + i], `content row ${row}`);
  });
});

test('llama-vid: image compression none / mean / grid:k', () => {
  for (const [kind, n] of [['none', 1 + 16], ['mean', 2], ['grid:2', 1 + 4]] as const) {
    const m = tinyModel('llama-vid', 0, (j) => { (j.vision_config as Record<string, unknown>).image_compress = kind; });
    assert.equal(m.planImage(40, 40, 'high').positions, n);
    noGrad(() => assert.deepEqual(m.encodeImages([m.prepareImage(testImage(40, 40))])[0]!.shape, [n, 64]));
  }
  assert.throws(() => parseCompress('grid:x', 'cfg'), /"none", "mean", "grid:k"/);
  assert.throws(() => tinyModel('llama-vid', 0, (j) => { (j.vision_config as Record<string, unknown>).image_compress = 'grid:3'; }), /grid:3 does not divide the 4x4 patch grid/);
});
