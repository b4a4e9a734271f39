// High-resolution systems (SPEC §2 SliME, §4 LLaVA-NeXT, §5 LLaVA-UHD, §6 Monkey, §13 Fuyu): each
// system's plan at real size agrees with the token planner on SPEC's worked examples, and the
// "How to test" properties hold on the tiny presets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { initLora, lora } from '../src/bridges/lora.ts';
import { mlpProjector } from '../src/bridges/mlp-projector.ts';
import { resampler, sincos2d } from '../src/bridges/resampler.ts';
import { selectTopP } from '../src/bridges/slime-gate.ts';
import { getPreset } from '../src/models/presets.ts';
import { plan as plannerPlan } from '../src/models/plan.ts';
import { parseVlmConfig, type VlmConfig } from '../src/models/vlm/model.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { fuyuPatches } from '../src/models/vlm/fuyu.ts';
import { spatialUnpad } from '../src/models/vlm/llava-next.ts';
import { clipPatches, tokenEmbeds, type UhdConfig } from '../src/models/vlm/llava-uhd.ts';
import { monkeyVit, type MonkeyConfig, type MonkeyParams } from '../src/models/vlm/monkey.ts';
import { selectTopK, slimeKeepCount, type SlimeConfig, type SlimeParams } from '../src/models/vlm/slime.ts';
import { normalize, resizeBicubic } from '../src/vision/preprocess.ts';
import { slimeGrid, uhdGrid } from '../src/vision/views.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const realConfig = (name: string): VlmConfig => {
  const pc = presetConfig(name);
  return parseVlmConfig({ model_type: 'chimera_vlm', preset: name, system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config }, `preset ${name}`);
};

const rows = (t: Tensor, a: number, b: number): Float32Array => F.denseData(F.slice(t, 0, a, b));
const disposeImage = (p: { pixels: Record<string, Tensor> }): void => { for (const t of Object.values(p.pixels)) t.dispose(); };

// ---- plan consistency (real presets vs src/models/plan.ts) ------------------------------------

test('real presets: system plan() equals the token planner on SPEC worked examples and other sizes', () => {
  const cases: [string, number, number, 'low' | 'high', number | null][] = [
    ['llava-next', 800, 600, 'high', 2340], ['llava-next', 672, 672, 'high', 48 * 49 + 576], ['llava-next', 800, 600, 'low', 577],
    ['slime', 1008, 672, 'high', 576 + 1 + 864], ['slime', 1008, 672, 'low', 576],
    ['llava-uhd', 672, 1088, 'high', 454], ['llava-uhd', 672, 1088, 'low', 64],
    ['monkey', 896, 896, 'high', 1280], ['monkey', 896, 896, 'low', 256],
    ['fuyu', 600, 300, 'high', 210],
  ];
  for (const name of ['llava-next', 'slime', 'llava-uhd', 'monkey', 'fuyu']) {
    for (const [W, H] of [[1, 1], [336, 336], [300, 900], [1000, 300], [4000, 3000], [1920, 1080]] as const) {
      for (const d of ['low', 'high'] as const) cases.push([name, W, H, d, null]);
    }
  }
  const cfgs = new Map<string, VlmConfig>();
  for (const [name, W, H, detail, want] of cases) {
    const cfg = cfgs.get(name) ?? realConfig(name);
    cfgs.set(name, cfg);
    const mine = cfg.system.plan(cfg.vision, W, H, detail);
    const ref = plannerPlan(getPreset(name), W, H, detail);
    const what = `${name} ${W}x${H} ${detail}`;
    if (want !== null) assert.equal(mine.positions, want, what);
    assert.equal(mine.positions, ref.totalPositions, what);
    assert.deepEqual(mine.views.map((v) => [v.name, v.size]), ref.views.map((v) => [v.name, v.size]), what);
  }
});

// ---- LLaVA-NeXT -------------------------------------------------------------------------------

test('LLaVA-NeXT: spatial unpad keeps the image rows of the merged tile grid, row-major, a newline per row', () => {
  const G = 3, D = 2, grid: [number, number] = [2, 2]; // cols, rows
  // value = tile * 100 + patch index; channel 1 = -value
  const data = new Float32Array(4 * G * G * D);
  for (let t = 0; t < 4; t++) for (let i = 0; i < G * G; i++) { data[(t * G * G + i) * D] = t * 100 + i; data[(t * G * G + i) * D + 1] = -(t * 100 + i); }
  const nl = fromData(Float32Array.of(7777, 8888), [D]);
  const out = F.denseData(spatialUnpad(fromData(data, [4, G * G, D]), grid, G, [1, 5], [0, 6], nl));
  const want: number[] = [];
  for (let y = 1; y < 5; y++) {
    for (let x = 0; x < 6; x++) {
      const v = (Math.floor(y / G) * 2 + Math.floor(x / G)) * 100 + (y % G) * G + (x % G);
      want.push(v, -v);
    }
    want.push(7777, 8888);
  }
  assert.deepEqual(Array.from(out), want);
});

test('LLaVA-NeXT tiny: positions = base + unpadded rows·(cols+1); one view ends with image_newline', () => {
  const m = tinyModel('llava-next');
  noGrad(() => {
    // 800x600 scaled by 56/336: 133x100 -> canvas 112x112 (2x2), 8x8 grid unpadded to 6x8 rows
    const p = m.prepareImage(testImage(133, 100));
    assert.equal(p.views.length, 5);
    assert.equal(p.positions, 16 + 6 * 9);
    const [e] = m.encodeImages([p]);
    const nl = F.denseData(m.params.image_newline as Tensor);
    for (let r = 0; r < 6; r++) allclose(rows(e!, 16 + r * 9 + 8, 16 + r * 9 + 9), nl, { atol: 0 });
    const low = m.prepareImage(testImage(133, 100), 'low');
    const [el] = m.encodeImages([low]);
    assert.equal(el!.shape[0], 17);
    allclose(rows(el!, 16, 17), nl, { atol: 0 });
    // the base view's tokens are the same in both
    allclose(rows(el!, 0, 16), rows(e!, 0, 16), { atol: 1e-6 });
    disposeImage(p); disposeImage(low);
  });
});

// ---- LLaVA-UHD --------------------------------------------------------------------------------

test('LLaVA-UHD: grid choice (SPEC §5.7) and the 2D sin-cos table (SPEC §9.4)', () => {
  assert.deepEqual(uhdGrid(672, 1088), [2, 3]);
  assert.deepEqual(uhdGrid(336, 336), [1, 1]);
  const D = 8, q = D / 4, t = F.denseData(sincos2d(D, 2, 3));
  for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) for (let i = 0; i < q; i++) {
    const w = 10000 ** (-i / q), o = (r * 3 + c) * D;
    assert.ok(Math.abs(t[o + i]! - Math.sin(c * w)) < 1e-6 && Math.abs(t[o + q + i]! - Math.cos(c * w)) < 1e-6);
    assert.ok(Math.abs(t[o + 2 * q + i]! - Math.sin(r * w)) < 1e-6 && Math.abs(t[o + 3 * q + i]! - Math.cos(r * w)) < 1e-6);
  }
});

test('LLaVA-UHD tiny: separators read ", \\n , \\n , \\n", overview last, variable slices on adapted patch grids', () => {
  const m = tinyModel('llava-uhd');
  const cfg = m.config.vision as UhdConfig;
  assert.deepEqual(uhdGrid(112, 182, 56), [2, 3]); // the 672x1088 example at 56/336 scale
  noGrad(() => {
    const img = testImage(112, 182);
    const p = m.prepareImage(img);
    const Q = 4;
    assert.equal(p.views.length, 7);
    assert.equal(p.positions, 6 * (Q + 1) + Q);
    // every view (slices and overview) adapts to a patch grid of at most 16 patches
    for (const v of p.views) assert.ok((v.size[0] / 14) * (v.size[1] / 14) <= 16, JSON.stringify(v));
    const [e] = m.encodeImages([p]);
    const emb = tokenEmbeds(m.params.language_model, m.config.text, [cfg.commaId, cfg.newlineId]);
    const seps = [0, 1, 0, 1, 0, 1].map((k) => rows(emb, k, k + 1));
    for (let s = 0; s < 6; s++) allclose(rows(e!, s * (Q + 1) + Q, s * (Q + 1) + Q + 1), seps[s]!, { atol: 0 });
    // overview tokens last = resampler(CLIP(overview)) computed directly
    const ov = p.views[6]!;
    const px = fromData(normalize(resizeBicubic(img, ov.size[0], ov.size[1])), [1, 3, ov.size[1], ov.size[0]]);
    const params = m.params as unknown as { vision_tower: Parameters<typeof clipPatches>[1]; resampler: Parameters<typeof resampler>[1] };
    const direct = resampler(cfg.resampler, params.resampler, clipPatches(cfg.vision, params.vision_tower, px, cfg.featureLayer), { grid: [ov.size[1] / 14, ov.size[0] / 14] });
    allclose(rows(e!, 6 * (Q + 1), 6 * (Q + 1) + Q), F.denseData(direct), { atol: 1e-5 });
    disposeImage(p);
  });
});

// ---- Monkey -----------------------------------------------------------------------------------

test('LoRA: B initialised to zero adds nothing; a non-zero B does', () => {
  const p = initLora(6, 5, 2, new Rng(3));
  const x = fromData(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), [2, 6]);
  assert.ok(F.denseData(lora(p, x)).every((v) => v === 0));
  p.B.weight.data.fill(0.5);
  assert.ok(F.denseData(lora(p, x)).some((v) => Math.abs(v) > 1e-3));
});

test('Monkey tiny: untrained window LoRA = plain ViT features of the crops; window order TL, TR, BL, BR; 5 views', () => {
  const m = tinyModel('monkey');
  const cfg = m.config.vision as MonkeyConfig, vis = (m.params as unknown as MonkeyParams).visual;
  noGrad(() => {
    const img = testImage(90, 70);
    const p = m.prepareImage(img);
    assert.deepEqual(p.views.map((v) => v.name), ['window-0', 'window-1', 'window-2', 'window-3', 'global']);
    assert.equal(p.positions, 5 * 4);
    const S = 2 * cfg.window, w = cfg.window;
    const big = fromData(normalize(resizeBicubic(img, S, S)), [1, 3, S, S]);
    [[0, 0], [0, 1], [1, 0], [1, 1]].forEach(([r, c], i) => {
      const crop = F.slice(F.slice(big, 2, r! * w, (r! + 1) * w), 3, c! * w, (c! + 1) * w);
      allclose(F.denseData(p.pixels[`window${i}`]!), F.denseData(crop), { atol: 0 });
      const withLora = monkeyVit(cfg, vis, p.pixels[`window${i}`]!, i);
      allclose(F.denseData(withLora), F.denseData(monkeyVit(cfg, vis, crop, null)), { atol: 0 });
    });
    // a trained (non-zero B) LoRA changes window 2 only
    const B = vis.transformer.resblocks[0]!.lora_mlp[2]!.B.weight;
    B.data.fill(0.3);
    const x = p.pixels.window2!;
    assert.ok(F.denseData(F.sub(monkeyVit(cfg, vis, x, 2), monkeyVit(cfg, vis, x, null))).some((v) => Math.abs(v) > 1e-4));
    allclose(F.denseData(monkeyVit(cfg, vis, x, 1)), F.denseData(monkeyVit(cfg, vis, x, null)), { atol: 0 });
    B.data.fill(0);
    const [e] = m.encodeImages([p]);
    assert.deepEqual(e!.shape, [20, m.config.text.hiddenSize]);
    disposeImage(p);
  });
});

// ---- SliME ------------------------------------------------------------------------------------

test('SliME: tiling 3x2 for 1008x672 and 2 tiles for 336x336 (SPEC §2.7)', () => {
  assert.deepEqual(slimeGrid(1008, 672), [3, 2]);
  const g = slimeGrid(336, 336);
  assert.equal(g[0] * g[1], 2);
});

test('SliME selector: top-p 1.0 keeps every token in order; 0.95 keeps the smallest prefix with mass > 0.95', () => {
  const scores = Float32Array.from([0.3, 2.5, -1, 1.7, 0.9, 3.1, 0.2, -0.4]);
  assert.deepEqual(Array.from(selectTopP(scores, { topp: 1 })), [0, 1, 2, 3, 4, 5, 6, 7]);
  const p = Array.from(scores, Math.exp), z = p.reduce((a, b) => a + b, 0);
  const order = p.map((_, i) => i).sort((a, b) => p[b]! - p[a]!);
  let k = 0, cum = 0;
  while (cum <= 0.95) cum += p[order[k++]!]! / z; // smallest prefix whose mass exceeds 0.95
  const kept = Array.from(selectTopP(scores, { topp: 0.95 }));
  assert.deepEqual(kept, order.slice(0, k).sort((a, b) => a - b));
  // fixed-count selection (Chimera's deterministic K): the K best, ascending; ties keep the lower index
  assert.deepEqual(Array.from(selectTopK(scores, 3)), [1, 3, 5]);
  assert.deepEqual(Array.from(selectTopK(new Float32Array(5), 2)), [0, 1]);
  assert.equal(slimeKeepCount(864, 1), 864);
  assert.equal(slimeKeepCount(864, 0.75), 648);
});

test('SliME tiny: at init the global view is 0.5·MLP(x) + 0.5·MLP(Resampler(x)); forcing an expert picks it', () => {
  for (const force of [-1, 0, 1]) {
    const m = tinyModel('slime', 0, (j) => { (j.vision_config as Record<string, unknown>).mm_learnable_gated = force; });
    const cfg = m.config.vision as SlimeConfig, p = m.params as unknown as SlimeParams;
    noGrad(() => {
      const img = m.prepareImage(testImage(80, 60), 'low');
      const [e] = m.encodeImages([img]);
      const x = clipPatches(cfg.vision, p.vision_tower, img.pixels.clip!, cfg.featureLayer); // [1, 16, Dv]
      const e0 = F.denseData(mlpProjector(cfg.projector, p.mm_projector.projection, x));
      const e1 = F.denseData(mlpProjector(cfg.projector, p.mm_projector.projection, resampler(cfg.globalResampler, p.mm_projector.attn, x)));
      const want = force === 0 ? e0 : force === 1 ? e1 : e0.map((v, i) => 0.5 * v + 0.5 * e1[i]!);
      allclose(F.denseData(e!), want, { atol: 1e-6 });
      assert.ok(e0.some((v, i) => Math.abs(v - e1[i]!) > 1e-3), 'experts differ, so the check can fail');
      disposeImage(img);
    });
  }
});

test('SliME tiny: [global ; "," ; K local], K fixed by local_keep whatever the instruction; keep 1 = full raster in order', () => {
  const m = tinyModel('slime');
  const full = tinyModel('slime', 0, (j) => { (j.vision_config as Record<string, unknown>).local_keep = 1; });
  const cfg = m.config.vision as SlimeConfig;
  noGrad(() => {
    const p = m.prepareImage(testImage(112, 56)); // 2 tiles (n forced to 2): [1 x 2] or [2 x 1]
    const n = p.views.length - 1, q = 4, K = slimeKeepCount(n * q, 0.75);
    assert.equal(p.positions, 16 + 1 + K);
    const a = m.encodeImages([{ ...p, instruction: [40, 41, 42] }])[0]!;
    const b = m.encodeImages([{ ...p, instruction: [100, 7, 300, 9] }])[0]!;
    const c = m.encodeImages([p])[0]!;
    for (const e of [a, b, c]) assert.deepEqual(e.shape, [p.positions, m.config.text.hiddenSize]);
    allclose(rows(a, 16, 17), F.denseData(tokenEmbeds(m.params.language_model, m.config.text, [cfg.separatorId])), { atol: 0 });
    // every kept token is one of the full raster's tokens, in increasing raster order
    const fp = full.prepareImage(testImage(112, 56));
    assert.equal(fp.positions, 16 + 1 + n * q);
    const f = full.encodeImages([{ ...fp, instruction: [40, 41, 42] }])[0]!;
    const D = m.config.text.hiddenSize;
    const fullLocal = F.denseData(F.slice(f, 0, 17)), kept = F.denseData(F.slice(a, 0, 17));
    let last = -1;
    for (let k = 0; k < K; k++) {
      let at = -1;
      for (let i = last + 1; i < n * q && at < 0; i++) if (fullLocal.subarray(i * D, (i + 1) * D).every((v, j) => Math.abs(v - kept[k * D + j]!) < 1e-6)) at = i;
      assert.ok(at > last, `kept token ${k} is not a later raster token`);
      last = at;
    }
    disposeImage(p); disposeImage(fp);
  });
});

// ---- Fuyu -------------------------------------------------------------------------------------

test('Fuyu: patches flatten in (patch_h, patch_w, channel) order, rows outer', () => {
  const p = 2, R = 2, C = 3;
  const x = new Float32Array(3 * R * p * C * p);
  for (let c = 0; c < 3; c++) for (let y = 0; y < R * p; y++) for (let xx = 0; xx < C * p; xx++) x[(c * R * p + y) * C * p + xx] = c * 10000 + y * 100 + xx;
  const out = F.denseData(fuyuPatches(fromData(x, [3, R * p, C * p]), p));
  const want: number[] = [];
  for (let r = 0; r < R; r++) for (let cc = 0; cc < C; cc++) for (let py = 0; py < p; py++) for (let px = 0; px < p; px++) for (let c = 0; c < 3; c++) {
    want.push(c * 10000 + (r * p + py) * 100 + cc * p + px);
  }
  assert.deepEqual(Array.from(out), want);
});

test('Fuyu tiny: one newline per patch row (300x600 h×w real = 210), padding with 1.0', () => {
  const m = tinyModel('fuyu');
  const D = m.config.text.hiddenSize;
  noGrad(() => {
    const p = m.prepareImage(testImage(70, 37)); // 16-px patches: 3 rows × 5 cols
    assert.equal(p.positions, 3 * 6);
    const px = F.denseData(p.pixels.image!); // [3, 48, 80], normalised: pad 1.0 -> 1
    assert.equal(px[47 * 80 + 79], 1);
    assert.equal(px[40 * 80 + 0], 1);
    assert.notEqual(px[36 * 80 + 0], 1);
    const [e] = m.encodeImages([p]);
    const nl = F.denseData(tokenEmbeds(m.params.language_model, m.config.text, [15]));
    for (let r = 0; r < 3; r++) allclose(rows(e!, r * 6 + 5, r * 6 + 6), nl, { atol: 0 });
    assert.ok(!F.denseData(F.slice(e!, 0, 0, 1)).every((v, j) => v === nl[j]), 'a patch row is not a newline');
    assert.equal(e!.shape[1], D);
    disposeImage(p);
  });
  assert.equal(realConfig('fuyu').system.plan(realConfig('fuyu').vision, 600, 300, 'high').positions, 210);
});
