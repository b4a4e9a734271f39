// Qwen-VL (SPEC §9): 256 tokens at any input size, the 2D sin-cos table, the <img> text interface
// and the box syntax.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { sincos2d } from '../src/bridges/resampler.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { templateFor } from '../src/models/vlm/templates.ts';
import { formatQwenBox, parseQwenBoxes, qwenBoxToPixels, type QwenVlConfig } from '../src/models/vlm/qwen-vl.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

function real(image?: number) {
  const pc = presetConfig('qwen-vl');
  const v = structuredClone(pc.vision_config) as { vision_tower: Record<string, unknown> };
  if (image !== undefined) v.vision_tower.image_size = image;
  return parseVlmConfig({ model_type: 'chimera_vlm', system: pc.system, vision_config: v, text_config: pc.text_config });
}

test('qwen-vl real size: 256 queries of width 4096, 32 heads, kv 1664; 256 positions at 448 and at 224; plan agrees', () => {
  const c = real();
  const v = c.vision as QwenVlConfig;
  assert.deepEqual([v.resampler.gridSize, v.resampler.embedDim, v.resampler.heads, v.resampler.kvDim, v.grid], [16, 4096, 32, 1664, 32]);
  for (const [W, H] of [[448, 448], [800, 600]] as const) {
    const mine = c.system.plan(c.vision, W, H, 'high');
    assert.equal(mine.positions, 256);
    assert.equal(mine.positions, planPreset(getPreset('qwen-vl'), W, H).totalPositions);
  }
  const c224 = real(224);
  assert.equal((c224.vision as QwenVlConfig).grid, 16);
  assert.equal(c224.system.plan(c224.vision, 224, 224, 'high').positions, 256);
});

test('qwen-vl tiny: the output has Q tokens whatever the patch grid (key table resized)', () => {
  for (const image of [28, 56, 84]) {
    const m = tinyModel('qwen-vl', 0, (j) => { ((j.vision_config as Record<string, unknown>).vision_tower as Record<string, unknown>).image_size = image; });
    noGrad(() => {
      const p = m.prepareImage(testImage(50, 30));
      const [e] = m.encodeImages([p]);
      assert.deepEqual(e!.shape, [9, 64], `input ${image}`);
    });
  }
});

test('2D sin-cos table: columns then rows, sin | cos, omega_i = 10000^(-i/(d/4)), row-major', () => {
  const D = 8, G = 3;
  const t = F.denseData(sincos2d(D, G));
  const w = [1, 1 / 100]; // 10000^(-i/2), i < 2
  for (let r = 0; r < G; r++) for (let c = 0; c < G; c++) {
    const row = t.slice((r * G + c) * D, (r * G + c + 1) * D);
    const want = [Math.sin(c * w[0]!), Math.sin(c * w[1]!), Math.cos(c * w[0]!), Math.cos(c * w[1]!), Math.sin(r * w[0]!), Math.sin(r * w[1]!), Math.cos(r * w[0]!), Math.cos(r * w[1]!)];
    want.forEach((v, i) => assert.ok(Math.abs(row[i]! - v) < 1e-6, `(${r},${c})[${i}]`));
  }
});

test('qwen-vl stages: the fixed pos_embed never trains; sft trains attn_pool but not ln_post/proj or the ViT', () => {
  const m = tinyModel('qwen-vl');
  for (const stage of Object.keys(m.config.info.stages)) {
    const on = m.setStage(stage);
    assert.ok(!on.includes('visual.attn_pool.pos_embed'), stage);
  }
  const sft = m.setStage('sft');
  assert.ok(sft.includes('visual.attn_pool.query') && !sft.some((p) => p.startsWith('visual.vision_model') || p.startsWith('visual.proj') || p.startsWith('visual.ln_post')));
});

test('qwen_vl template: "Picture k: <img>" image "</img>\\n" inside ChatML', () => {
  const segs = templateFor('qwen_vl').render([{ role: 'user', parts: [{ image: 0 }, { image: 1 }, { text: 'Compare.' }] }], true);
  const text = segs.map((s) => ('text' in s ? s.text : 'image' in s ? `[${s.image}]` : '')).join('');
  assert.equal(text, '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: <img>[0]</img>\nPicture 2: <img>[1]</img>\nCompare.<|im_end|>\n<|im_start|>assistant\n');
});

test('qwen boxes: <ref>…</ref><box>(x1,y1),(x2,y2)</box> in [0, 1000); round trip and errors', () => {
  const s = formatQwenBox({ x1: 0, y1: 30, x2: 640, y2: 240 }, 640, 480, 'the dog');
  assert.equal(s, '<ref>the dog</ref><box>(0,62),(999,500)</box>');
  const parsed = parseQwenBoxes(`Here ${s} and <box>(10,20),(30,40)</box> and <box>(1,2)</box>`);
  assert.deepEqual(parsed.map((p) => [p.ref, p.box]), [['the dog', [0, 62, 999, 500]], [null, [10, 20, 30, 40]]]);
  assert.equal(parsed[0]!.index, 5 + '<ref>the dog</ref>'.length);
  const px = qwenBoxToPixels([500, 250, 750, 1000 - 1], 1000, 2000);
  assert.deepEqual([px.x1, px.y1, px.x2], [500, 500, 750]);
  assert.throws(() => parseQwenBoxes('<box>(0,0),(1000,5)</box>'), /outside \[0, 1000\)/);
  assert.throws(() => formatQwenBox({ x1: 5, y1: 0, x2: 1, y2: 1 }, 10, 10), /x2 < x1/);
});
