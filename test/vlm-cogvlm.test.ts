// CogVLM (SPEC §10.3): text-only input is the base language model exactly; image positions
// (boi + image tokens, not eoi) run the visual expert; with copy-initialised experts and
// consecutive positions the model equals the base LLM on the same embeddings; position ids and
// the expert mask match HF CogVLM's build_position_ids / get_expert_mask.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData } from '../src/engine/tensor.ts';
import { ropeInvFreq, ropeTables } from '../src/nn/rope.ts';
import { llamaForward, llamaHidden } from '../src/models/llama.ts';
import { plan as planPreset } from '../src/models/plan.ts';
import { getPreset } from '../src/models/presets.ts';
import { parseVlmConfig, type VlmModel } from '../src/models/vlm/model.ts'; // before the system module (model -> systems -> cogvlm)
import { cogRouting, type CogLayer, type CogVlmConfig } from '../src/models/vlm/cogvlm.ts';
import { presetConfig } from '../src/models/vlm/systems.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const ids = (m: VlmModel): number[] => [1, m.config.imageTokenId, 30, 31, 32, 33];

function perturbExperts(m: VlmModel, seed: number): void {
  const rng = new Rng(seed);
  for (const l of m.params.language_model.model.layers as CogLayer[]) {
    for (const t of [l.self_attn.vision_expert_query_key_value.weight, l.self_attn.vision_expert_dense.weight, l.mlp.vision_mlp.up_proj.weight]) {
      const d = t.data;
      for (let i = 0; i < d.length; i++) d[i]! += 0.05 * rng.normal();
    }
  }
}

test('cogvlm: text-only input equals the base language model exactly, whatever the expert weights', () => {
  const m = tinyModel('cogvlm', 1);
  perturbExperts(m, 7);
  noGrad(() => {
    const t = [1, 20, 21, 22, 23, 24];
    const out = F.denseData(m.forward([{ ids: t, images: [] }]).logits);
    const lm = F.denseData(llamaForward(m.params.language_model, m.config.text, fromData(Int32Array.from(t), [1, t.length], 'i32')));
    assert.deepEqual(Array.from(out), Array.from(lm));
  });
});

test('cogvlm: image positions use the expert weights; positions before the image do not', () => {
  const m = tinyModel('cogvlm', 2);
  noGrad(() => {
    const img = m.prepareImage(testImage(50, 60, 3));
    const a = F.denseData(m.forward([{ ids: ids(m), images: [img] }]).logits);
    // only the expert's attention output of layer 0 changes
    const d = (m.params.language_model.model.layers[0] as CogLayer).self_attn.vision_expert_dense.weight.data;
    for (let i = 0; i < d.length; i++) d[i]! *= 1.5;
    const b = F.denseData(m.forward([{ ids: ids(m), images: [img] }]).logits);
    const V = m.config.text.vocabSize, n = img.positions;
    assert.deepEqual(Array.from(a.subarray(0, V)), Array.from(b.subarray(0, V)), 'BOS before the image');
    const rowDiff = (t: number): number => { let x = 0; for (let i = t * V; i < (t + 1) * V; i++) x = Math.max(x, Math.abs(a[i]! - b[i]!)); return x; };
    assert.ok(rowDiff(1) > 1e-5, 'boi uses the expert');
    assert.ok(rowDiff(2) > 1e-5, 'image tokens use the expert');
    assert.ok(rowDiff(1 + n) > 1e-5, 'later text sees expert-computed keys/values');
  });
});

test('cogvlm: with copy-initialised experts and consecutive positions the model equals the base LLM on the same embeddings', () => {
  const m = tinyModel('cogvlm', 3, (j) => { (j.vision_config as Record<string, unknown>).shared_image_position = false; });
  noGrad(() => {
    const img = m.prepareImage(testImage(70, 40, 5));
    const sample = { ids: ids(m), images: [img] };
    const out = F.denseData(m.forward([sample]).logits);
    const emb = m.assemble([sample]).embeds;
    allclose(out, F.denseData(llamaForward(m.params.language_model, m.config.text, emb)), { atol: 1e-5, rtol: 1e-5 });
  });
});

test('cogvlm: image tokens share one RoPE position — with one layer, text after the image ignores their order', () => {
  for (const shared of [true, false]) {
    const m = tinyModel('cogvlm', 8, (j) => {
      (j.vision_config as Record<string, unknown>).shared_image_position = shared;
      (j.text_config as Record<string, unknown>).num_hidden_layers = 1;
    });
    noGrad(() => {
      const img = m.prepareImage(testImage(50, 50, 4));
      const a = m.assemble([{ ids: ids(m), images: [img] }]);
      const [, L, D] = a.embeds.shape as [number, number, number];
      const n = img.positions;
      const order = Array.from({ length: L }, (_, i) => i);
      const inner = order.slice(2, n); // image tokens between boi (1) and eoi (n)
      inner.reverse();
      order.splice(2, n - 2, ...inner);
      const perm = F.indexSelect(a.embeds, 1, fromData(Int32Array.from(order), [L], 'i32'));
      const last = (e: typeof perm): Float32Array => F.denseData(F.slice(llamaHidden(m.params.language_model, m.config.text, e, { hooks: m.hooksFor(a.step) }), 1, L - 1));
      const x = last(a.embeds), y = last(perm);
      let diff = 0;
      for (let i = 0; i < D; i++) diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
      if (shared) assert.ok(diff < 1e-5, `shared position: order must not matter (max diff ${diff})`);
      else assert.ok(diff > 1e-5, `consecutive positions: order matters (max diff ${diff})`);
    });
  }
});

/** HF CogVLM build_position_ids and get_expert_mask over token types (1 = vision: boi, image, eoi). */
function hfPositions(types: number[]): { pos: number[]; expert: number[] } {
  const tmp = types.slice();
  const n = types.length;
  const boiEoi = types.map((t, i) => (t === 1 && (i === 0 || types[i - 1] === 0)) || (t === 1 && (i === n - 1 || types[i + 1] === 0)));
  boiEoi.forEach((b, i) => { if (b) tmp[i] = 0; });
  const y = tmp.map((t, i) => (i === 0 ? 0 : t === 0 || (t === 1 && tmp[i - 1] === 0) ? 1 : 0));
  const pos: number[] = [];
  let acc = 0;
  for (const v of y) { acc += v; pos.push(acc); }
  const expert = types.map((t, i) => (i < n - 1 && t === 1 && types[i + 1] === 1 ? 1 : 0));
  return { pos, expert };
}

test('cogvlm: position ids and the expert mask follow HF CogVLM for two images, and a continuation step shifts by both', () => {
  const m = tinyModel('cogvlm', 4);
  const cfg = m.config.vision as CogVlmConfig;
  const n = cfg.positions;
  const types = [0, ...Array(n).fill(1), 0, 0, ...Array(n).fill(1), 0];
  const T = types.length;
  const mediaIndex = new Int32Array(T);
  let seen = -1;
  types.forEach((t, i) => { if (t === 1 && (i === 0 || types[i - 1] === 0)) seen++; mediaIndex[i] = seen; });
  const r = cogRouting(cfg, { B: 1, T, P: 0, imageMask: Uint8Array.from(types), mediaIndex, media: [[]], hasImage: [true] });
  const hf = hfPositions(types);
  assert.deepEqual(Array.from(r.delta!, (d, i) => i + d), hf.pos);
  assert.deepEqual(Array.from(r.expert), hf.expert);
  // the next decoding step (slot T) continues right after the last text id
  const next = cogRouting(cfg, { B: 1, T: 1, P: T, imageMask: new Uint8Array(1), mediaIndex: Int32Array.of(1), media: [[]], hasImage: [true] });
  assert.equal(T + next.delta![0]!, hf.pos[T - 1]! + 1);
  assert.equal(next.anyExpert, false);
  assert.throws(() => cogRouting(cfg, { B: 1, T: 3, P: 2, imageMask: Uint8Array.of(0, 1, 1), mediaIndex: Int32Array.of(-1, 0, 0), media: [[]], hasImage: [true] }), /cached continuation/);
});

test('cogvlm: rotating q/k by (position id − slot) equals rotating at the position id (what the hooks rely on)', () => {
  const inv = ropeInvFreq({ theta: 10000, rotaryDim: 16, maxPositions: 4096, scaling: null }, 64);
  const x = F.randn([1, 2, 3, 16], { rng: new Rng(1) });
  const slots = [40, 41, 42], ids = [17, 17, 18];
  const d = ropeTables(inv, ids.map((p, i) => p - slots[i]!), [3]), s = ropeTables(inv, slots, [3]), p = ropeTables(inv, ids, [3]);
  allclose(F.denseData(F.rope(F.rope(x, d.cos, d.sin), s.cos, s.sin)), F.denseData(F.rope(x, p.cos, p.sin)), { atol: 2e-6, rtol: 1e-5 });
});

test('cogvlm: the real preset plans 1227 positions at 490 (SPEC §10.1), as chimera plan', () => {
  const pc = presetConfig('cogvlm');
  const cfg = parseVlmConfig({ system: pc.system, vision_config: pc.vision_config, text_config: pc.text_config }, 'preset cogvlm');
  for (const [W, H] of [[490, 490], [640, 480], [224, 224]] as const) {
    const ours = cfg.system.plan(cfg.vision, W, H, 'high');
    const theirs = planPreset(getPreset('cogvlm'), W, H);
    assert.equal(ours.positions, theirs.totalPositions);
    assert.deepEqual(ours.views.map((v) => v.size), theirs.views.map((v) => v.size));
  }
  assert.equal(cfg.system.plan(cfg.vision, 490, 490, 'high').positions, 1227);
  assert.deepEqual(Object.keys(cfg.info.stages), ['pretrain']);
});
