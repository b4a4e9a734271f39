// The composable multimodal model over every preset's tiny variant: plans agree with encodings,
// stages decide exactly which parameters get gradients, cached decoding equals a full pass, and
// placeholders must match images.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { KVCache } from '../src/nn/kv-cache.ts';
import { IGNORE_INDEX, layoutSample, type VlmModel } from '../src/models/vlm/model.ts';
import { presetNames } from '../src/models/vlm/systems.ts';
import { allclose } from './util.ts';
import { templateFor, tokenizeSegments } from '../src/models/vlm/templates.ts';
import { testImage, tinyModel, tinyTokenizer } from './helpers/vlm.ts';

const PRESETS = presetNames();
const SIZES: [number, number][] = [[64, 48], [37, 90], [130, 130], [1, 97], [97, 1]]; // extreme aspect ratios included

function promptIds(m: VlmModel, images: number, text = [7, 8, 9, 10, 11]): number[] {
  const ids = [1];
  for (let i = 0; i < images; i++) ids.push(m.config.imageTokenId, 12 + i);
  return [...ids, ...text];
}

for (const name of PRESETS) {
  test(`${name}:tiny — plan positions equal encoded positions, low and high detail`, () => {
    const m = tinyModel(name);
    noGrad(() => {
      for (const [W, H] of SIZES) for (const detail of ['low', 'high'] as const) {
        const planned = m.planImage(W, H, detail);
        const p = m.prepareImage(testImage(W, H), detail);
        assert.equal(p.positions, planned.positions, `${W}x${H} ${detail}`);
        assert.equal(p.views.length, planned.views.length);
        const [e] = m.encodeImages([{ ...p, instruction: [7, 8, 9] }]);
        if (p.positions > 0) assert.deepEqual(e!.shape, [p.positions, m.config.text.hiddenSize], `${W}x${H} ${detail}`);
        for (const t of Object.values(p.pixels)) t.dispose();
      }
    });
  });

  test(`${name}:tiny — each stage's gradients reach exactly its trainable parameters`, () => {
    const m = tinyModel(name);
    for (const stage of Object.keys(m.config.info.stages)) {
      const trainable = new Set(m.setStage(stage));
      assert.ok(trainable.size > 0, `stage ${stage} trains nothing`);
      const img = m.prepareImage(testImage(50, 40, 3));
      const ids = promptIds(m, 1);
      const labels = ids.map((t, i) => (i >= ids.length - 3 ? t : IGNORE_INDEX));
      const out = m.forward([{ ids, labels, images: [{ ...img, instruction: [7, 8] }] }]);
      assert.ok(Number.isFinite(F.denseData(out.loss!)[0]!), 'finite loss');
      backward(out.loss!);
      const wrong: string[] = [];
      for (const [path, t] of flatten<Tensor>(m.params)) {
        const has = t.grad !== null;
        if (has !== trainable.has(path)) wrong.push(`${path}: ${has ? 'got a gradient but is frozen' : 'trainable but got no gradient'}`);
        t.grad?.dispose();
        t.grad = null;
      }
      assert.deepEqual(wrong, [], `stage ${stage}`);
      for (const t of Object.values(img.pixels)) t.dispose();
    }
  });

  test(`${name}:tiny — cached decoding equals the full pass`, () => {
    const m = tinyModel(name, 5);
    noGrad(() => {
      const img = m.prepareImage(testImage(70, 52, 9));
      const ids = promptIds(m, 1);
      const more = [20, 21, 22];
      const full = m.forward([{ ids: [...ids, ...more], images: [{ ...img, instruction: [7] }] }]).logits; // [1, L + 3, V]
      const s = m.session({ ids, images: [{ ...img, instruction: [7] }] });
      const L = s.layout.ids.length;
      const cache = s.newCache(1, L + more.length) as KVCache;
      const first = s.forward(fromData(Int32Array.from(s.ids), [1, L], 'i32'), cache);
      allclose(F.denseData(first), F.denseData(F.slice(full, 1, 0, L)), { atol: 2e-4, rtol: 1e-3 });
      more.forEach((t, k) => {
        const step = s.forward(fromData(Int32Array.of(t), [1, 1], 'i32'), cache);
        allclose(F.denseData(step), F.denseData(F.slice(full, 1, L + k, L + k + 1)), { atol: 2e-4, rtol: 1e-3 });
      });
      s.dispose();
      for (const t of Object.values(img.pixels)) t.dispose();
    });
  });

  test(`${name}:tiny — two interleaved images expand in order; count mismatches are errors`, () => {
    const m = tinyModel(name);
    const a = m.prepareImage(testImage(40, 40, 1)), b = m.prepareImage(testImage(80, 40, 2));
    const ids = promptIds(m, 2);
    const lay = layoutSample(m.config, { ids, images: [a, b] });
    const keep = m.config.info.keepPlaceholder;
    assert.equal(lay.ids.length, ids.length + (keep ? 0 : a.positions + b.positions - 2));
    if (!keep) assert.deepEqual(lay.spans.map((s) => [s.image, s.length]), [[0, a.positions], [1, b.positions]]);
    assert.throws(() => layoutSample(m.config, { ids, images: [a] }), /2 '<image>' placeholders but 1 image/);
    assert.throws(() => layoutSample(m.config, { ids: promptIds(m, 1), images: [a, b] }), /1 '<image>' placeholder but 2 images/);
    for (const p of [a, b]) for (const t of Object.values(p.pixels)) t.dispose();
  });
}


test('every preset template: the generation prompt is a prefix of the training sequence, replies are supervised', () => {
  const tok = tinyTokenizer();
  for (const name of new Set(PRESETS.map((p) => tinyModel(p).config.info.template))) {
    const t = templateFor(name);
    const user = { role: 'user' as const, parts: [{ image: 0 }, { text: 'What colour is the circle?' }] };
    const prompt = tokenizeSegments(tok, t.render([user], true), 4).ids;
    const full = tokenizeSegments(tok, t.render([user, { role: 'assistant', parts: [{ text: 'red' }] }], false), 4);
    assert.deepEqual(full.ids.slice(0, prompt.length), prompt, `template ${name}`);
    const sup = tok.decode(full.ids.filter((_, i) => full.labels[i] !== IGNORE_INDEX), { skipSpecialTokens: true });
    assert.ok(sup.includes('red'), `template ${name} supervises the reply (got ${JSON.stringify(sup)})`);
  }
});
