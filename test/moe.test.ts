// Sparse MoE routing (Mixtral / SPHINX-MoE / MoE-LLaVA) and the SliME gate and text-guided selector.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/backends/index.ts';
import { backward, noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, tidy, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { initSparseMoe, initSwigluExpert, route, sparseMoe, swigluExpert, upcycleSparseMoe, expertCapacity } from '../src/nn/moe.ts';
import { initSlimeGate, selectTopP, slimeGateMix, slimeGateWeights, textSimilarityScores, gatherTokens } from '../src/bridges/slime-gate.ts';

useBackend('reference');

const randn = (shape: number[], seed: number, std = 1): Tensor => F.randn(shape, { rng: new Rng(seed), std });
function close(a: Tensor, b: Tensor, tol = 1e-5): void {
  const x = F.toArray(a), y = F.toArray(b);
  assert.equal(x.length, y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  assert.ok(worst <= tol, `max abs diff ${worst} > ${tol}`);
}

test('param paths follow Mixtral', () => {
  const moe = initSparseMoe(8, 16, 4, new Rng(1));
  const keys = [...flatten({ block_sparse_moe: moe }).keys()];
  assert.ok(keys.includes('block_sparse_moe.gate.weight'));
  for (const w of ['w1', 'w2', 'w3']) assert.ok(keys.includes(`block_sparse_moe.experts.3.${w}.weight`));
  assert.equal(keys.length, 1 + 4 * 3);
});

test('identical experts equal the dense FFN for any routing', () => tidy(() => {
  const dense = initSwigluExpert(8, 12, new Rng(2));
  const x = randn([2, 5, 8], 3); // [B, T, D]
  const ref = swigluExpert(dense, F.reshape(x, [10, 8]));
  for (const seed of [4, 5, 6]) {
    const moe = upcycleSparseMoe(dense, 4, new Rng(seed));
    const { out } = sparseMoe(moe, x);
    assert.deepEqual(out.shape, [2, 5, 8]);
    close(F.reshape(out, [10, 8]), ref);
  }
  // top-1 (renormalised to weight 1) also reproduces the dense FFN.
  close(F.reshape(sparseMoe(upcycleSparseMoe(dense, 3, new Rng(7)), x, { topK: 1 }).out, [10, 8]), ref);
}));

test('routing weights: renormalised top-2 sums to 1 and picks the two largest probabilities', () => tidy(() => {
  const logits = randn([7, 5], 8, 2);
  const r = route(logits);
  const w = F.toArray(r.weights), p = F.toArray(r.probs);
  for (let n = 0; n < 7; n++) {
    assert.ok(Math.abs(w[2 * n]! + w[2 * n + 1]! - 1) < 1e-6);
    const row = p.slice(5 * n, 5 * n + 5);
    const sorted = row.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
    assert.equal(r.experts[2 * n], sorted[0]![1]);
    assert.equal(r.experts[2 * n + 1], sorted[1]![1]);
    assert.ok(Math.abs(w[2 * n]! - row[sorted[0]![1]]! / (sorted[0]![0] + sorted[1]![0])) < 1e-6);
  }
  const raw = route(logits, { normalize: false });
  const rw = F.toArray(raw.weights);
  for (let n = 0; n < 7; n++) assert.ok(Math.abs(rw[2 * n]! - p[5 * n + r.experts[2 * n]!]!) < 1e-6);
}));

test('balance loss is 1 for uniform routing and larger for skewed routing', () => tidy(() => {
  // Uniform: equal logits (P_e = 1/E) and balanced counts. Tokens rotate their top choices.
  const E = 4, N = 8;
  const uni = new Float32Array(N * E);
  for (let n = 0; n < N; n++) { uni[n * E + (n % E)] = 1e-3; uni[n * E + ((n + 1) % E)] = 5e-4; }
  for (const balance of ['topk', 'top1'] as const) {
    const r = route(fromData(uni, [N, E]), { balance });
    assert.ok(Math.abs(F.item(r.balanceLoss) - 1) < 1e-3, `${balance}: ${F.item(r.balanceLoss)}`);
  }
  // Skewed: every token prefers experts 0 then 1.
  const skew = new Float32Array(N * E);
  for (let n = 0; n < N; n++) { skew[n * E] = 3; skew[n * E + 1] = 2; }
  for (const balance of ['topk', 'top1'] as const) {
    const r = route(fromData(skew, [N, E]), { balance });
    assert.ok(F.item(r.balanceLoss) > 1.5, `${balance}: ${F.item(r.balanceLoss)}`);
  }
  // Exact value: topk, f = [.5, .5, 0, 0] -> L = E·(P0 + P1)/2.
  const r = route(fromData(skew, [N, E]));
  const p = F.toArray(r.probs);
  assert.ok(Math.abs(F.item(r.balanceLoss) - E * (p[0]! + p[1]!) / 2) < 1e-5);
  // z-loss = mean logsumexp^2.
  const lse = Math.log(Math.exp(3) + Math.exp(2) + 2);
  assert.ok(Math.abs(F.item(r.zLoss) - lse * lse) < 1e-4);
}));

test('gradients reach the router and every used expert', () => tidy(() => {
  const moe = initSparseMoe(6, 8, 3, new Rng(9));
  const x = randn([10, 6], 10);
  const { out, routing } = sparseMoe(moe, x);
  const loss = F.add(F.sum(F.square(out)), F.add(F.scale(routing.balanceLoss, 0.1), F.scale(routing.zLoss, 1e-3)));
  backward(loss);
  const nz = (t: Tensor | null): boolean => t !== null && F.toArray(t).some((v) => v !== 0);
  assert.ok(nz(moe.gate.weight.grad), 'router grad');
  for (let e = 0; e < 3; e++) {
    if (routing.counts[e] === 0) continue;
    for (const w of ['w1', 'w2', 'w3'] as const) assert.ok(nz(moe.experts[e]![w].weight.grad), `expert ${e} ${w}`);
  }
}));

test('router gradient matches finite differences', () => {
  const D = 4, E = 3, N = 5;
  const moe = initSparseMoe(D, 6, E, new Rng(11));
  const x = randn([N, D], 12);
  const f = (): number => tidy(() => { const { out, routing } = sparseMoe(moe, x); return F.item(F.add(F.sum(out), routing.balanceLoss)); });
  tidy(() => { const { out, routing } = sparseMoe(moe, x); backward(F.add(F.sum(out), routing.balanceLoss)); });
  const g = F.toArray(moe.gate.weight.grad!);
  const w = moe.gate.weight.data;
  for (const i of [0, 5, 11]) {
    const h = 1e-2, old = w[i]!;
    w[i] = old + h; const up = f();
    w[i] = old - h; const dn = f();
    w[i] = old;
    assert.ok(Math.abs((up - dn) / (2 * h) - g[i]!) < 2e-2 * Math.max(1, Math.abs(g[i]!)), `grad ${i}: fd ${(up - dn) / (2 * h)} vs ${g[i]}`);
  }
});

test('capacity drops the right tokens (first choices first, token order) and renormalises the rest', () => tidy(() => {
  // 4 experts, 6 tokens, top-2, cf 0.5 -> capacity ceil(2·6/4·0.5) = 2.
  assert.equal(expertCapacity(6, 4, 2, 0.5), 2);
  assert.equal(expertCapacity(6, 4, 2, 0.5, 4), 4);
  const E = 4, N = 6;
  const prefs = [[0, 1], [0, 2], [0, 1], [1, 0], [2, 3], [1, 3]];
  const l = new Float32Array(N * E).fill(-5);
  prefs.forEach(([a, b], n) => { l[n * E + a!] = 2; l[n * E + b!] = 1; });
  const r = route(fromData(l, [N, E]), { capacityFactor: 0.5 });
  assert.equal(r.capacity, 2);
  // Queue order: slot-0 picks by token (0->e0, 1->e0, 2->e0 DROP, 3->e1, 4->e2, 5->e1),
  // then slot-1 picks (0->e1 DROP (e1 full), 1->e2, 2->e1 DROP, 3->e0 DROP, 4->e3, 5->e3).
  assert.deepEqual(Array.from(r.kept), [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1]);
  const w = F.toArray(r.weights);
  assert.equal(w[1], 0);
  assert.ok(Math.abs(w[0]! - 1) < 1e-6); // token 0 keeps one slot: renormalised to 1
  assert.equal(w[4], 0); assert.equal(w[5], 0); // token 2: both dropped -> zero output
  assert.ok(Math.abs(w[8]! + w[9]! - 1) < 1e-6);
  // Token 2 produces a zero output through the full layer.
  const moe = initSparseMoe(3, 4, E, new Rng(13));
  moe.gate.weight.data.fill(0);
  const x = randn([N, 3], 14);
  const r2 = sparseMoe(moe, x, { capacityFactor: 0.25, topK: 1 }); // capacity ceil(6/4/4)=1; ties -> expert 0
  assert.equal(r2.routing.capacity, 1);
  assert.deepEqual(Array.from(r2.routing.kept), [1, 0, 0, 0, 0, 0]);
  const o = F.toArray(r2.out);
  assert.ok(o.slice(3).every((v) => v === 0));
  assert.ok(o.slice(0, 3).some((v) => v !== 0));
}));

test('noisy second choice never repeats the first and keeps clean weights', () => tidy(() => {
  const logits = randn([20, 4], 15);
  const r = route(logits, { noiseRng: new Rng(16) });
  const clean = route(logits);
  const p = F.toArray(r.probs);
  for (let n = 0; n < 20; n++) {
    assert.equal(r.experts[2 * n], clean.experts[2 * n]);
    assert.notEqual(r.experts[2 * n], r.experts[2 * n + 1]);
    const a = p[4 * n + r.experts[2 * n]!]!, b = p[4 * n + r.experts[2 * n + 1]!]!;
    assert.ok(Math.abs(F.toArray(r.weights)[2 * n]! - a / (a + b)) < 1e-6);
  }
}));

test('bad MoE config gives clear errors', () => tidy(() => {
  const logits = randn([4, 3], 17);
  assert.throws(() => route(logits, { topK: 4 }), /topK=4 exceeds the number of experts 3/);
  assert.throws(() => route(logits, { topK: 0 }), /topK must be an integer >= 1/);
  assert.throws(() => route(logits, { capacityFactor: 0 }), /capacityFactor must be a positive/);
  assert.throws(() => route(logits, { capacityFactor: 1, minCapacity: -1 }), /minCapacity/);
  assert.throws(() => route(F.reshape(logits, [12])), /router logits must be \[N, E\]/);
  assert.throws(() => route(logits, { balance: 'bogus' as never }), /balance must be/);
  const moe = initSparseMoe(4, 6, 3, new Rng(18));
  assert.throws(() => sparseMoe(moe, randn([2, 5], 19)), /must end in D=4/);
  assert.throws(() => initSparseMoe(4, 6, 0, new Rng(1)), /numExperts must be an integer >= 1/);
}));

// ---- SliME -------------------------------------------------------------------------------------

test('SliME gate at init mixes 0.5 / 0.5 exactly; gradient reaches w_gate', () => tidy(() => {
  const gate = initSlimeGate(6);
  assert.deepEqual([...flatten(gate).keys()], ['w_gate']);
  const x = randn([2, 4, 6], 20), e0 = randn([2, 4, 5], 21), e1 = randn([2, 4, 5], 22);
  const g = F.toArray(slimeGateWeights(gate, x));
  assert.ok(g.every((v) => v === 0.5));
  const y = slimeGateMix(gate, x, e0, e1);
  close(y, F.scale(F.add(e0, e1), 0.5), 1e-6);
  backward(F.sum(F.mul(y, e0)));
  assert.ok(F.toArray(gate.w_gate.grad!).some((v) => v !== 0));
  // Forced expert, and training noise keeps a valid mix.
  close(slimeGateMix(gate, x, e0, e1, { force: 1 }), e1, 0);
  const gn = F.toArray(noGrad(() => slimeGateWeights({ w_gate: randn([6, 2], 23) }, x, { training: true, rng: new Rng(24) })));
  for (let i = 0; i < gn.length; i += 2) assert.ok(Math.abs(gn[i]! + gn[i + 1]! - 1) < 1e-6);
  assert.throws(() => slimeGateMix(gate, randn([2, 4, 7], 25), e0, e1), /must end in C=6/);
  assert.throws(() => slimeGateMix(gate, x, e0, randn([2, 3, 5], 26)), /expert 1 output/);
  assert.throws(() => slimeGateMix(gate, x, e0, e1, { force: 2 }), /force must be 0 or 1/);
  assert.throws(() => slimeGateWeights(gate, x, { training: true }), /needs an rng/);
}));

test('text similarity scores are summed cosines over unmasked text', () => tidy(() => {
  const local = fromData(new Float32Array([1, 0, 0, 2, 3, 3]), [3, 2]);
  const text = fromData(new Float32Array([5, 0, 0, 1]), [2, 2]);
  const s = F.toArray(textSimilarityScores(local, text));
  const r = Math.SQRT1_2;
  [1, 1, 2 * r].forEach((v, i) => assert.ok(Math.abs(s[i]! - v) < 1e-6));
  const m = F.toArray(textSimilarityScores(local, text, fromData(new Uint8Array([1, 0]), [2], 'bool')));
  [1, 0, r].forEach((v, i) => assert.ok(Math.abs(m[i]! - v) < 1e-6));
  assert.throws(() => textSimilarityScores(local, randn([2, 3], 1)), /same C/);
}));

test('top-p selector: 1.0 keeps all in order, keep-plus-one, at least one, order preserved', () => {
  const s = new Float32Array([0.1, 3, -1, 2, 0.5]);
  assert.deepEqual(Array.from(selectTopP(s, { topp: 1 })), [0, 1, 2, 3, 4]);
  // p ≈ [.036, .656, .013, .241, .054]; sorted 1, 3, 4, 0, 2; cumsum .656, .897, .951, .987, 1.
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0.9 })), [1, 3, 4]); // prefix {1, 3} + one (4)
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0.95 })), [1, 3, 4]); // .951 > .95: prefix {1,3} + 4
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0.5 })), [1]); // empty prefix + one
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0 })), [1]);
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0.98 })), [0, 1, 3, 4]); // prefix {1, 3, 4} + 0
  assert.deepEqual(Array.from(selectTopP(s, { topp: 0.99 })), [0, 1, 2, 3, 4]); // prefix of 4 + the last
  // Uniform scores with topp 0.5 over 4 tokens: prefix of 2 (cum .5) + one = 3, lowest indices.
  assert.deepEqual(Array.from(selectTopP(new Float32Array(4), { topp: 0.5 })), [0, 1, 2]);
  assert.equal(selectTopP(new Float32Array(0), { topp: 0.5 }).length, 0);
  tidy(() => {
    const toks = randn([5, 3], 2);
    const keep = selectTopP(F.tensor(s), { topp: 0.9, noiseStd: 0.1, rng: new Rng(3), temp: 1 });
    const g = gatherTokens(toks, keep);
    assert.deepEqual(g.shape, [keep.length, 3]);
    assert.deepEqual(F.toArray(F.slice(g, 0, 0, 1)), F.toArray(F.slice(toks, 0, keep[0]!, keep[0]! + 1)));
  });
  assert.throws(() => selectTopP(s, { topp: 1.5 }), /topp must be in \[0, 1\]/);
  assert.throws(() => selectTopP(s, { topp: 0.5, temp: 0 }), /temp must be a positive/);
  assert.throws(() => selectTopP(s, { topp: 0.5, noiseStd: 0.1 }), /needs an rng/);
});
