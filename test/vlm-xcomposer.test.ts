// InternLM-XComposer v1 (SPEC §14): 64 queries + two zero flags that never train.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { templateFor } from '../src/models/vlm/templates.ts';
import type { XComposerConfig } from '../src/models/vlm/internlm-xcomposer.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

test('internlm-xcomposer real size: 64 queries × 768, 66 positions as chimera plan says', () => {
  const pc = presetConfig('internlm-xcomposer');
  const c = parseVlmConfig({ model_type: 'chimera_vlm', system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config });
  const v = c.vision as XComposerConfig;
  assert.deepEqual([v.numQueries, v.qformer.hiddenSize, v.qformer.useQformerTextInput], [64, 768, false]);
  for (const [W, H] of [[224, 224], [800, 600]] as const) {
    assert.equal(c.system.plan(c.vision, W, H, 'high').positions, 66);
    assert.equal(planPreset(getPreset('internlm-xcomposer'), W, H).totalPositions, 66);
  }
});

test('internlm-xcomposer: flag_image_start/end are zero rows around the queries and no stage trains them', () => {
  const m = tinyModel('internlm-xcomposer');
  for (const stage of Object.keys(m.config.info.stages)) {
    const on = m.setStage(stage);
    assert.ok(!on.some((p) => p.startsWith('flag_image')), stage);
  }
  noGrad(() => {
    const [e] = m.encodeImages([m.prepareImage(testImage(64, 48))]);
    const d = F.denseData(e!), D = 64, n = e!.shape[0]!;
    assert.equal(n, 8 + 2);
    for (let i = 0; i < D; i++) { assert.equal(d[i], 0); assert.equal(d[(n - 1) * D + i], 0); }
    assert.ok(d.slice(D, 2 * D).some((v) => v !== 0));
  });
});

test('internlm_xcomposer template: " <|User|>:" image text "\\n<TOKENS_UNUSED_0> <|Bot|>:"', () => {
  const segs = templateFor('internlm_xcomposer').render([{ role: 'user', parts: [{ image: 0 }, { text: 'Hi' }] }, { role: 'assistant', parts: [{ text: 'Hello' }] }], false);
  assert.deepEqual(segs, [{ special: 'bos' }, { text: ' <|User|>:' }, { image: 0 }, { text: 'Hi' }, { text: '\n<TOKENS_UNUSED_0> <|Bot|>:' }, { text: 'Hello<TOKENS_UNUSED_1>', supervised: true }, { text: '\n' }]);
});
