// End-to-end learning on both backends: a small MLP and a 2-layer transformer reach a loss
// threshold, and the same seed gives bit-identical runs on each backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBackend, useBackend, type BackendName } from '../src/backends/index.ts';
import { backward } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { tidy } from '../src/engine/tensor.ts';
import { initTinyGpt, initTinyMlp, tinyGptForward, tinyMlpForward } from '../src/models/tiny-gpt.ts';
import { sortingBatch } from '../src/cli/demo.ts';
import { AdamW, clipGradNorm, paramsOf, SGD } from '../src/train/optim.ts';

const backends: BackendName[] = nativeBackend() ? ['reference', 'native'] : ['reference'];

/** Two-moons-like toy classification: label = sign of x0 * x1 (XOR quadrants). */
function trainMlp(seed: number): number[] {
  const model = initTinyMlp(2, 32, 2, seed);
  const params = paramsOf(model);
  const opt = new SGD(params, { lr: 0.2, momentum: 0.9 });
  const rng = new Rng(seed + 7);
  const losses: number[] = [];
  for (let step = 0; step < 150; step++) {
    const n = 64;
    const xs = new Float32Array(n * 2), ys = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const a = rng.uniform() * 2 - 1, b = rng.uniform() * 2 - 1;
      xs[2 * i] = a; xs[2 * i + 1] = b;
      ys[i] = a * b > 0 ? 1 : 0;
    }
    losses.push(tidy(() => {
      const loss = F.crossEntropy(tinyMlpForward(model, F.fromData(xs, [n, 2])), F.fromData(ys, [n], 'i32'));
      backward(loss);
      return F.item(loss);
    }));
    opt.step();
    opt.zeroGrad();
  }
  return losses;
}

function trainGpt(seed: number, steps: number): number[] {
  const cfg = { vocab: 11, width: 32, heads: 4, layers: 2, context: 17 };
  const model = initTinyGpt(cfg, seed);
  const params = paramsOf(model);
  const opt = new AdamW(params, { lr: 3e-3 });
  const rng = new Rng(seed + 1);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const { tokens, targets, T } = sortingBatch(rng, 32);
    losses.push(tidy(() => {
      const logits = tinyGptForward(model, cfg, F.fromData(tokens, [32, T], 'i32'));
      const loss = F.crossEntropy(logits, F.fromData(targets, [32, T], 'i32'));
      backward(loss);
      return F.item(loss);
    }));
    clipGradNorm(params, 1);
    opt.step();
    opt.zeroGrad();
  }
  return losses;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

for (const name of backends) {
  test(`MLP learns XOR quadrants on ${name}`, () => {
    useBackend(name);
    const a = trainMlp(3), b = trainMlp(3);
    assert.deepEqual(a, b, 'same seed, same losses');
    assert.ok(mean(a.slice(-20)) < 0.25, `final loss ${mean(a.slice(-20))} should be < 0.25 (start ${a[0]})`);
  });

  test(`2-layer transformer learns to sort digits on ${name}`, () => {
    useBackend(name);
    const steps = name === 'native' ? 150 : 60;
    const a = trainGpt(5, steps);
    const first = mean(a.slice(0, 5)), last = mean(a.slice(-10));
    // Chance is ln(11) = 2.40; sorted outputs are predictable from counts of the input.
    assert.ok(last < (name === 'native' ? 1.2 : 1.9), `loss ${first} -> ${last}`);
    if (name === 'native') assert.deepEqual(trainGpt(5, 20), a.slice(0, 20), 'same seed, same losses');
  });
}

test('backends agree on a training trajectory', { skip: backends.length < 2 ? 'native addon not built' : false }, () => {
  useBackend('reference');
  const r = trainGpt(9, 8);
  useBackend('native');
  const n = trainGpt(9, 8);
  for (let i = 0; i < r.length; i++) assert.ok(Math.abs(r[i]! - n[i]!) < 1e-3 * Math.max(1, Math.abs(r[i]!)), `step ${i}: reference ${r[i]} vs native ${n[i]}`);
});
