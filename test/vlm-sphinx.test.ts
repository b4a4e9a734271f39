// SPHINX as SPEC §1 describes it: positions per variant at real size, view order and crops,
// shared start/end vectors, Q-Former tokens first, the ConvNeXt duplication and mean token,
// DINOv2's re-normalisation, label alignment, the MoE auxiliary loss and the conversation template.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { fromData } from '../src/engine/tensor.ts';
import { parseVlmConfig, IGNORE_INDEX } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { clipToImagenet } from '../src/models/vlm/towers.ts';
import { templateFor, tokenizeSegments } from '../src/models/vlm/templates.ts';
import { getPreset } from '../src/models/presets.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, meanFill, normalize, padToSquare, resizeBicubic, type RgbImage } from '../src/vision/preprocess.ts';
import { convnextTokens, type SphinxConfig } from '../src/models/vlm/sphinx.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel, tinyTokenizer } from './helpers/vlm.ts';

function realConfig(name: string) {
  const pc = presetConfig(name);
  return parseVlmConfig({ model_type: 'chimera_vlm', preset: name, system: pc.system, image_token_id: 4, vision_config: pc.vision_config, text_config: pc.text_config });
}

test('SPHINX positions at real size: 291 per view; 1k 1455, 2k 2910, Tiny 259, MoE 291 (SPEC §1.2), equal to the planner', () => {
  const want: [string, number, number][] = [['sphinx', 224, 291], ['sphinx-1k', 448, 1455], ['sphinx-2k', 672, 2910], ['sphinx-tiny', 512, 259], ['sphinx-moe', 512, 291]];
  for (const [name, size, positions] of want) {
    const cfg = realConfig(name);
    const p = cfg.system.plan(cfg.vision, size, size, 'high');
    assert.equal(p.positions, positions, name);
    const q = planPreset(getPreset(name), size, size, 'high');
    assert.equal(q.totalPositions, positions, `${name} planner`);
    assert.deepEqual(p.views.map((v) => v.name), q.views.map((v) => v.name), `${name} view names`);
    assert.equal(cfg.system.plan(cfg.vision, size, size, 'low').positions, positions / p.views.length, `${name} low detail = the global view`);
  }
  assert.deepEqual(realConfig('sphinx-1k').system.plan(realConfig('sphinx-1k').vision, 448, 448, 'high').views.map((v) => v.name), ['global', 'tl', 'tr', 'bl', 'br']);
});

test('SPHINX-1k views: global bicubic resize, then TL, TR, BL, BR crops of the native input', () => {
  const m = tinyModel('sphinx-1k');
  noGrad(() => {
    const img = testImage(90, 60, 4);
    const p = m.prepareImage(img);
    const vit = p.pixels.vit!; // [5, 3, r, r]
    const r = vit.shape[2]!;
    const S = 2 * r;
    const x = F.reshape(fromData(normalize(padResize(img, S)), [1, 3, S, S]), [1, 3, S, S]);
    const crops = [[0, 0], [0, r], [r, 0], [r, r]];
    crops.forEach(([y0, x0], k) => {
      const want = F.slice(F.slice(x, 2, y0!, y0! + r), 3, x0!, x0! + r);
      allclose(F.denseData(F.slice(vit, 0, k + 1, k + 2)), F.denseData(want), { atol: 1e-6 });
    });
    const g = F.interpolate(x, { size: [r, r], mode: 'bicubic', alignCorners: false });
    allclose(F.denseData(F.slice(vit, 0, 0, 1)), F.denseData(g), { atol: 1e-5 });
  });
});

function padResize(img: RgbImage, S: number): RgbImage {
  return resizeBicubic(padToSquare(img, meanFill(CLIP_MEAN)), S, S);
}

test('SPHINX views share start_img/end_img; Q-Former tokens come first', () => {
  const m = tinyModel('sphinx-1k', 3);
  const cfg = m.config.vision as { qformer: { numQueryTokens: number }; gridSide: number };
  noGrad(() => {
    const p = m.prepareImage(testImage(64, 64, 2));
    const [e] = m.encodeImages([p]); // [5 * perView, D]
    const D = m.config.text.hiddenSize, Q = cfg.qformer.numQueryTokens, G = cfg.gridSide;
    const per = 2 + Q + 1 + G * G;
    assert.equal(e!.shape[0], 5 * per);
    const params = m.params as unknown as { start_img: never; end_img: never };
    for (let v = 0; v < 5; v++) {
      allclose(F.denseData(F.slice(e!, 0, v * per, v * per + 1)), F.denseData(F.reshape(params.start_img, [1, D])), { atol: 0 });
      allclose(F.denseData(F.slice(e!, 0, (v + 1) * per - 1, (v + 1) * per)), F.denseData(F.reshape(params.end_img, [1, D])), { atol: 0 });
    }
    // Q-Former block: the rows right after start are the LayerNormed projections of the queries, which do not depend on the
    // visual branch; zeroing the visual projection's weights changes rows after the Q-Former block only.
    const vp = (m.params as unknown as { visual_proj: [{ weight: { data: Float32Array } }] }).visual_proj[0].weight;
    const saved = vp.data.slice();
    vp.data.fill(0);
    const [e2] = m.encodeImages([p]);
    vp.data.set(saved);
    const diff = (a: number, b: number): boolean => F.denseData(F.slice(e!, 0, a, b)).some((x, i) => x !== F.denseData(F.slice(e2!, 0, a, b))[i]);
    assert.equal(diff(1, 1 + Q), false, 'the Q-Former rows come first and ignore the visual projection');
    assert.equal(diff(1 + Q, per - 1), true, 'the visual rows follow');
  });
});

test('ConvNeXt branch: nearest resize of the view, the map duplicated into 2x2 blocks, the mean token first (SPEC §1.4 E4)', () => {
  const m = tinyModel('sphinx', 4);
  const cfg = m.config.vision as SphinxConfig;
  noGrad(() => {
    const p = m.prepareImage(testImage(50, 50, 6));
    assert.deepEqual(p.pixels.convnext!.shape, [1, 3, cfg.convnextSize, cfg.convnextSize]);
    const t = convnextTokens(cfg, (m.params as unknown as { openclip_convnext_xxl: never }).openclip_convnext_xxl, p.pixels.convnext!); // [1, 1 + G², C]
    const G = cfg.gridSide, C = t.shape[2]!, d = F.denseData(t);
    assert.equal(t.shape[1], 1 + G * G);
    const tok = (i: number): Float32Array => d.subarray((1 + i) * C, (2 + i) * C);
    for (let r = 0; r < G; r++) for (let c = 0; c < G; c++) {
      allclose(tok(r * G + c), tok((r - (r % 2)) * G + (c - (c % 2))), { atol: 0 }); // each cell repeats its 2x2 block's top-left
    }
    const mean = new Float32Array(C);
    for (let i = 0; i < G * G; i++) for (let k = 0; k < C; k++) mean[k]! += tok(i)[k]! / (G * G);
    allclose(d.subarray(0, C), mean, { atol: 1e-5 });
  });
});

test('DINOv2 input: CLIP-normalised pixels re-normalised equal ImageNet normalisation of the raw image (SPEC §1.4 E3)', () => {
  const img = testImage(16, 12, 8);
  const clipN = fromData(normalize(img, CLIP_MEAN, CLIP_STD), [1, 3, 12, 16]);
  allclose(F.denseData(clipToImagenet(clipN)), normalize(img, IMAGENET_MEAN, IMAGENET_STD), { atol: 1e-5 });
});

test('label alignment: output i is scored against label i + 1, images and prompt ignored (SPEC §1.5)', () => {
  const m = tinyModel('sphinx-tiny', 2);
  noGrad(() => {
    const p = m.prepareImage(testImage(40, 30));
    const ids = [1, 30, 31, 32, 33, 34];
    const labels = [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 32, 33, 34];
    const out = m.forward([{ ids, labels, images: [p] }]);
    const n = p.positions;
    // assembled: [BOS, image(n), 30, 31, 32, 33, 34]; targets 32, 33, 34 are predicted at positions n+2, n+3, n+4.
    const logits = out.logits;
    let want = 0;
    [[n + 2, 32], [n + 3, 33], [n + 4, 34]].forEach(([pos, t]) => {
      const row = F.denseData(F.slice(logits, 1, pos!, pos! + 1));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      want += lse - row[t!]!;
    });
    assert.ok(Math.abs(F.denseData(out.loss!)[0]! - want / 3) < 1e-4);
  });
});

test('SPHINX-MoE: training adds the mean balance loss times its coefficient; inference adds none', () => {
  const m = tinyModel('sphinx-moe', 1);
  m.setStage('finetune');
  const p = m.prepareImage(testImage(40, 40));
  const ids = [1, 40, 41, 42];
  const out = m.forward([{ ids, labels: ids, images: [p] }]);
  assert.ok(out.aux !== null);
  const aux = F.denseData(out.aux!)[0]!;
  assert.ok(aux > 0 && aux >= 0.1 * 0.99, `aux ${aux}: balance loss >= 1 per layer (E·Σ f·P with f, P summing to 1), times 0.1`);
  const inf = noGrad(() => m.forward([{ ids, labels: ids, images: [p] }]));
  assert.equal(inf.aux, null);
});

test('SPHINX template: conv_v1_2 text, only replies and their "\\n###" supervised, generation ends with " Assistant:"', () => {
  const t = templateFor('sphinx');
  const turns = [{ role: 'user' as const, parts: [{ text: 'What is it?' }] }, { role: 'assistant' as const, parts: [{ text: 'A cat.' }] }, { role: 'user' as const, parts: [{ text: 'Colour?' }] }];
  const segs = t.render(turns, true);
  const text = segs.map((s) => ('text' in s ? s.text : 'special' in s ? `<${s.special}>` : '<image>')).join('');
  assert.equal(text, "<bos>A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n\n### Human: What is it?\n### Assistant: A cat.\n### Human: Colour?\n### Assistant:");
  const sup = segs.filter((s) => 'text' in s && s.supervised).map((s) => ('text' in s ? s.text : '')).join('');
  assert.equal(sup, ' A cat.\n###');
  const tok = tinyTokenizer();
  const { ids, labels } = tokenizeSegments(tok, t.render(turns.slice(0, 2), false), 4);
  assert.equal(tok.decode(ids.filter((_, i) => labels[i] !== IGNORE_INDEX)), ' A cat.\n###');
  const prompt = tokenizeSegments(tok, t.render(turns.slice(0, 1), true), 4).ids;
  assert.deepEqual(ids.slice(0, prompt.length), prompt, 'the generation prompt is a prefix of the training sequence');
  assert.deepEqual(t.stopStrings, ['\n###']);
  assert.throws(() => t.render(turns.slice(0, 2), true), /last turn must be the user's/);
});

test('frozen-feature cache: a batch mixing cached (pixels dropped) and fresh images equals an uncached pass', () => {
  const m = tinyModel('sphinx-1k', 7);
  noGrad(() => {
    const a = m.prepareImage(testImage(40, 60, 1)), b = m.prepareImage(testImage(60, 40, 2));
    const want = m.encodeImages([m.prepareImage(testImage(40, 60, 1)), m.prepareImage(testImage(60, 40, 2))]);
    m.encodeImages([a]); // caches a's features
    for (const k of Object.keys(a.pixels)) if (!k.startsWith('feature:')) { a.pixels[k]!.dispose(); delete a.pixels[k]; }
    const got = m.encodeImages([a, b]);
    got.forEach((g, i) => allclose(F.denseData(g), F.denseData(want[i]!), { atol: 1e-5 }));
    assert.ok(Object.keys(b.pixels).some((k) => k.startsWith('feature:')), 'the fresh image is cached too');
  });
});
