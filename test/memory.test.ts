// Ownership: tidy disposes temporaries, backward releases saved tensors, nothing leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/backends/index.ts';
import { backward, param } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { keep, liveBuffers, tidy } from '../src/engine/tensor.ts';
import { initTinyGpt, tinyGptForward } from '../src/models/tiny-gpt.ts';
import { AdamW, paramsOf } from '../src/train/optim.ts';

useBackend('auto');

test('tidy disposes every temporary and keeps the result', () => {
  const before = liveBuffers();
  const r = tidy(() => {
    const a = F.randn([4, 5]);
    const b = F.exp(F.mul(a, 2));
    return F.sum(b, 1);
  });
  assert.equal(liveBuffers(), before + 1);
  r.dispose();
  assert.equal(liveBuffers(), before);
});

test('views share storage: the buffer lives until the last handle goes', () => {
  const before = liveBuffers();
  const a = F.randn([3, 4]);
  const t = F.transpose(a);
  a.dispose();
  assert.equal(liveBuffers(), before + 1);
  assert.equal(F.toArray(t).length, 12);
  t.dispose();
  assert.equal(liveBuffers(), before);
  assert.throws(() => F.toArray(t), /disposed/);
});

test('a forward+backward step inside tidy leaves only parameters and their grads', () => {
  const cfg = { vocab: 11, width: 16, heads: 2, layers: 2, context: 8 };
  const model = initTinyGpt(cfg, 1);
  const params = paramsOf(model);
  const opt = new AdamW(params, { lr: 1e-3 });
  const base = liveBuffers();
  for (let i = 0; i < 3; i++) {
    tidy(() => {
      const x = F.randint([2, 8], 11);
      const logits = tinyGptForward(model, cfg, x);
      const loss = F.crossEntropy(logits, F.randint([2, 8], 11));
      backward(loss);
    });
    assert.equal(liveBuffers(), base + params.size, 'one gradient buffer per parameter');
    opt.step();
    opt.zeroGrad();
    assert.equal(liveBuffers(), base);
  }
});

test('a graph dropped without backward releases its saved tensors', () => {
  const w = keep(param(F.randn([8, 8])));
  const before = liveBuffers();
  tidy(() => {
    F.sum(F.softmax(F.matmul(F.randn([4, 8]), w)));
  });
  assert.equal(liveBuffers(), before);
  w.dispose();
});
