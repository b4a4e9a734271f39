// Bridges (issue 4 building blocks): LLaVA MLP projector, Resampler-1L with the 2D sin-cos table,
// Flamingo Perceiver Resampler and gated cross-attention with media masking. Shapes, checkpoint
// key names, exactness at gate 0, mask semantics, permutation invariance, gradients, errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/backends/index.ts';
import { backward } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, type Tensor } from '../src/engine/tensor.ts';
import { flatten, trainable } from '../src/engine/tree.ts';
import { initMlpProjector, mlpProjector, type MlpProjectorConfig } from '../src/bridges/mlp-projector.ts';
import { initResampler, resampler, resizePosTable, sincos2d, type ResamplerConfig } from '../src/bridges/resampler.ts';
import { initPerceiver, perceiver, type PerceiverConfig } from '../src/bridges/perceiver.ts';
import { gatedXAttn, initGatedXAttn, maskedCrossAttention, mediaMask, type GatedXAttnConfig } from '../src/bridges/gated-xattn.ts';

useBackend('auto');

function randn(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return fromData(new Rng(seed).fillNormal(new Float32Array(n), 0, 1), shape);
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

/** Backprops sum(out * r) and checks every trainable leaf got a finite, non-zero gradient. */
function checkGrads(tree: unknown, out: Tensor): void {
  backward(F.sum(F.mul(out, randn([...out.shape], 99))));
  const params = trainable(tree);
  assert.ok(params.size > 0);
  for (const [k, t] of params) {
    assert.ok(t.grad !== null, `no gradient for ${k}`);
    const g = F.toArray(t.grad);
    assert.ok(g.every(Number.isFinite), `non-finite gradient for ${k}`);
    assert.ok(g.some((v) => v !== 0), `zero gradient for ${k}`);
  }
}

describe('mlp projector', () => {
  test('mlp2x_gelu: keys, shape and value', () => {
    const cfg: MlpProjectorConfig = { type: 'mlp2x_gelu', inDim: 6, outDim: 8 };
    const p = initMlpProjector(cfg, new Rng(1));
    assert.deepEqual([...flatten(p, 'model.mm_projector').keys()], ['model.mm_projector.0.weight', 'model.mm_projector.0.bias', 'model.mm_projector.2.weight', 'model.mm_projector.2.bias']);
    const x = randn([2, 5, 6], 2);
    const y = mlpProjector(cfg, p, x);
    assert.deepEqual(y.shape, [2, 5, 8]);
    const q = p as Record<string, { weight: Tensor; bias: Tensor | null }>;
    const ref = F.linear(F.gelu(F.linear(x, q['0']!.weight, q['0']!.bias)), q['2']!.weight, q['2']!.bias);
    close(F.toArray(y), F.toArray(ref), 0, 'mlp2x');
    checkGrads(p, y);
  });
  test('linear and mlp3x_gelu; bad config and shapes', () => {
    const lin: MlpProjectorConfig = { type: 'linear', inDim: 4, outDim: 3 };
    const pl = initMlpProjector(lin, new Rng(3));
    assert.deepEqual([...flatten(pl).keys()], ['weight', 'bias']);
    assert.deepEqual(mlpProjector(lin, pl, randn([7, 4], 4)).shape, [7, 3]);
    const m3: MlpProjectorConfig = { type: 'mlp3x_gelu', inDim: 4, outDim: 3 };
    assert.deepEqual([...flatten(initMlpProjector(m3, null)).keys()], ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
    assert.throws(() => initMlpProjector({ type: 'identity2', inDim: 4, outDim: 3 }, null), /unknown mm_projector_type 'identity2'/);
    assert.throws(() => mlpProjector(lin, pl, randn([2, 5], 5)), /input must be \[\.\.\., 4\]/);
  });
});

describe('resampler', () => {
  test('2D sin-cos table on a 2x2 grid, width 8, by hand', () => {
    const s1 = Math.sin(1), c1 = Math.cos(1), s2 = Math.sin(0.01), c2 = Math.cos(0.01); // w = 1, 10000^(-1/2)
    const want = [
      [0, 0, 1, 1, 0, 0, 1, 1], // row 0, col 0
      [s1, s2, c1, c2, 0, 0, 1, 1], // row 0, col 1: first half encodes the column
      [0, 0, 1, 1, s1, s2, c1, c2], // row 1, col 0: second half encodes the row
      [s1, s2, c1, c2, s1, s2, c1, c2],
    ].flat();
    const t = sincos2d(8, 2);
    assert.deepEqual(t.shape, [4, 8]);
    close(F.toArray(t), want, 1e-7, 'sincos');
    assert.deepEqual(sincos2d(4, 2, 3).shape, [6, 4]);
    assert.throws(() => sincos2d(6, 2), /multiple of 4/);
  });
  test('position table resize matches torch bicubic (align_corners=False)', () => {
    const t = sincos2d(8, 2);
    assert.equal(resizePosTable(t, 2), t);
    const r = F.toArray(resizePosTable(t, 3)); // [9, 8]; torch 1.13 numbers
    close(r.slice(0, 8), [-0.073044, -0.000868, 1.039905, 1.000005, -0.073044, -0.000868, 1.039905, 1.000005], 2e-6, 'r[0]');
    close(r.slice(32, 40), [0.420736, 0.005, 0.770151, 0.999975, 0.420736, 0.005, 0.770151, 0.999975], 2e-6, 'r[4]');
  });
  const cfg: ResamplerConfig = { gridSize: 2, embedDim: 16, kvDim: 12, heads: 2 };
  test('shape [B, Q, D], Qwen-VL keys, gradients', () => {
    const p = initResampler(cfg, new Rng(7));
    assert.deepEqual([...flatten(p, 'transformer.visual').keys()], [
      'attn_pool.query', 'attn_pool.pos_embed', 'attn_pool.kv_proj.weight', 'attn_pool.attn.in_proj_weight', 'attn_pool.attn.in_proj_bias',
      'attn_pool.attn.out_proj.weight', 'attn_pool.attn.out_proj.bias', 'attn_pool.ln_q.weight', 'attn_pool.ln_q.bias',
      'attn_pool.ln_kv.weight', 'attn_pool.ln_kv.bias', 'ln_post.weight', 'ln_post.bias', 'proj',
    ].map((k) => `transformer.visual.${k}`));
    const x = randn([3, 16, 12], 8); // 4x4 key grid: table resized 2x2 -> 4x4
    const y = resampler(cfg, p, x);
    assert.deepEqual(y.shape, [3, 4, 16]);
    assert.deepEqual(resampler(cfg, p, randn([1, 6, 12], 9), { grid: [2, 3] }).shape, [1, 4, 16]);
    checkGrads(p, y);
    assert.equal(p.attn_pool.pos_embed.grad, null, 'the sin-cos table is fixed');
  });
  test('without positions the output is invariant to permuting the image tokens', () => {
    const c: ResamplerConfig = { ...cfg, positions: false };
    const p = initResampler(c, new Rng(10));
    const x = randn([2, 5, 12], 11);
    const perm = [3, 0, 4, 1, 2];
    const xp = F.indexSelect(x, 1, fromData(Int32Array.from(perm), [5], 'i32'));
    close(F.toArray(resampler(c, p, xp)), F.toArray(resampler(c, p, x)), 1e-5, 'permuted');
    // with positions the order matters
    const pp = initResampler(cfg, new Rng(10));
    const x4 = randn([1, 4, 12], 12), x4p = F.indexSelect(x4, 1, fromData(Int32Array.from([1, 0, 3, 2]), [4], 'i32'));
    assert.ok(F.toArray(resampler(cfg, pp, x4)).some((v, i) => Math.abs(v - F.toArray(resampler(cfg, pp, x4p))[i]!) > 1e-4));
  });
  test('bad shapes give clear errors', () => {
    const p = initResampler(cfg, null);
    assert.throws(() => resampler(cfg, p, randn([2, 16, 16], 1)), /input must be \[B, N, 12\]/);
    assert.throws(() => resampler(cfg, p, randn([2, 5, 12], 1)), /5 image tokens do not form a square grid/);
    assert.throws(() => resampler(cfg, p, randn([1, 6, 12], 1), { grid: [2, 2] }), /grid 2x2 does not match 6/);
    assert.throws(() => initResampler({ ...cfg, heads: 3 }, null), /not divisible by heads/);
  });
});

describe('perceiver resampler', () => {
  const cfg: PerceiverConfig = { dim: 8, depth: 2, dimHead: 4, heads: 2, numLatents: 3, maxNumMedia: 4, maxNumFrames: 2, ffMult: 2 };
  test('shape [B, T, L, D], OpenFlamingo keys, gradients', () => {
    const p = initPerceiver(cfg, new Rng(20));
    const keys = [...flatten(p).keys()];
    assert.deepEqual(keys.slice(0, 14), ['latents', 'frame_embs', 'media_time_embs', 'layers.0.0.norm_media.weight', 'layers.0.0.norm_media.bias',
      'layers.0.0.norm_latents.weight', 'layers.0.0.norm_latents.bias', 'layers.0.0.to_q.weight', 'layers.0.0.to_kv.weight', 'layers.0.0.to_out.weight',
      'layers.0.1.0.weight', 'layers.0.1.0.bias', 'layers.0.1.1.weight', 'layers.0.1.3.weight']);
    assert.deepEqual(keys.slice(-2), ['norm.weight', 'norm.bias']);
    assert.deepEqual(p.layers[0]![1]['1'].weight.shape, [16, 8]);
    const y = perceiver(cfg, p, randn([2, 3, 2, 5, 8], 21));
    assert.deepEqual(y.shape, [2, 3, 3, 8]);
    checkGrads(p, y);
  });
  test('bad shapes give clear errors', () => {
    const p = initPerceiver(cfg, null);
    assert.throws(() => perceiver(cfg, p, randn([2, 3, 5, 8], 1)), /input must be \[B, T, F, V, 8\]/);
    assert.throws(() => perceiver(cfg, p, randn([1, 5, 1, 2, 8], 1)), /5 media items exceed max_num_media 4/);
    assert.throws(() => perceiver(cfg, p, randn([1, 1, 3, 2, 8], 1)), /3 frames exceed max_num_frames 2/);
  });
});

describe('gated cross-attention', () => {
  const cfg: GatedXAttnConfig = { dim: 8, dimVisual: 6, dimHead: 4, heads: 2, ffMult: 2 };
  // text: t t <image> t t <image> t  -> text_time 0 0 1 1 1 2 2
  const locs = fromData(Uint8Array.from([0, 0, 1, 0, 0, 1, 0]), [1, 7], 'bool');
  test('gates at 0 leave the input unchanged exactly; keys', () => {
    const p = initGatedXAttn(cfg, new Rng(30));
    assert.deepEqual([...flatten(p).keys()], ['attn.norm.weight', 'attn.norm.bias', 'attn.to_q.weight', 'attn.to_kv.weight', 'attn.to_out.weight',
      'attn_gate', 'ff.0.weight', 'ff.0.bias', 'ff.1.weight', 'ff.3.weight', 'ff_gate']);
    const x = randn([1, 7, 8], 31);
    const y = gatedXAttn(cfg, p, x, randn([1, 2, 3, 6], 32), locs);
    assert.deepEqual(F.toArray(y), F.toArray(x));
  });
  test('media mask: immediate and >= modes by hand', () => {
    const m = mediaMask(locs, 2, 2, true);
    assert.deepEqual([...m.textTime], [0, 0, 1, 1, 1, 2, 2]);
    const rows = (t: Tensor): number[][] => { const a = [...t.u8]; return Array.from({ length: 7 }, (_, i) => a.slice(i * 4, i * 4 + 4)); };
    assert.deepEqual(rows(m.mask), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]);
    assert.deepEqual([...m.uniform.u8], [0, 0, 0, 0, 0, 0, 0]);
    const g = mediaMask(locs, 2, 2, false);
    assert.deepEqual(rows(g.mask), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]);
    assert.deepEqual([...g.uniform.u8], [1, 1, 0, 0, 0, 0, 0], '>= mode: no visible media -> uniform softmax, as OpenFlamingo');
  });
  test('tokens before the first image get 0; each token sees only the latest image', () => {
    const p = initGatedXAttn(cfg, new Rng(33));
    const x = randn([1, 7, 8], 34);
    const media = randn([1, 2, 3, 6], 35);
    const a = F.toArray(maskedCrossAttention(cfg, p.attn, x, media, locs)); // [1, 7, 8]
    assert.deepEqual(a.slice(0, 16), new Array(16).fill(0));
    assert.ok(a.slice(16).some((v) => v !== 0));
    // changing media 2 changes only tokens 5, 6
    const media2 = F.concat([F.slice(media, 1, 0, 1), randn([1, 1, 3, 6], 36)], 1);
    const b = F.toArray(maskedCrossAttention(cfg, p.attn, x, media2, locs));
    assert.deepEqual(b.slice(0, 40), a.slice(0, 40));
    assert.ok(b.slice(40).some((v, i) => v !== a[40 + i]));
    // ">=" mode: text_time 0 rows average all media values (OpenFlamingo semantics), not 0
    const ge = F.toArray(maskedCrossAttention({ ...cfg, onlyAttendImmediateMedia: false }, p.attn, x, media, locs));
    assert.ok(ge.slice(0, 8).some((v) => v !== 0));
  });
  test('gradients reach every parameter (gates opened)', () => {
    const p = initGatedXAttn(cfg, new Rng(37));
    p.attn_gate.data[0] = 0.5;
    p.ff_gate.data[0] = -0.3;
    const y = gatedXAttn(cfg, p, randn([2, 7, 8], 38), randn([2, 2, 3, 6], 39), fromData(Uint8Array.from([0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]), [2, 7], 'bool'));
    assert.deepEqual(y.shape, [2, 7, 8]);
    checkGrads(p, y);
  });
  test('bad shapes give clear errors', () => {
    const p = initGatedXAttn(cfg, null);
    const x = randn([1, 7, 8], 1);
    assert.throws(() => gatedXAttn(cfg, p, randn([1, 7, 6], 1), randn([1, 2, 3, 6], 1)), /x must be \[B, T, 8\]/);
    assert.throws(() => gatedXAttn(cfg, p, x, randn([1, 3, 6], 1)), /media must be \[1, Ti, L, 6\]/);
    assert.throws(() => gatedXAttn(cfg, p, x, randn([1, 2, 3, 6], 1), fromData(Uint8Array.from([0, 1]), [1, 2], 'bool')), /media_locations must be \[1, 7\]/);
  });
});
