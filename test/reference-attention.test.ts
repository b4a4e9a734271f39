import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import type { AttentionArgs } from '../src/engine/backend.ts';
import { assertClose, dot, fdCheck, rand, rng, throwsKernel } from './reference-helpers.ts';

function mk(over: Partial<AttentionArgs> & Pick<AttentionArgs, 'B' | 'H' | 'Hkv' | 'Tq' | 'Tk' | 'D' | 'Dv'>, r?: () => number): AttentionArgs {
  const { B, H, Hkv, Tq, Tk, D, Dv } = over;
  const g = r ?? ((): number => 0);
  return {
    q: over.q ?? rand(B * H * Tq * D, g), k: over.k ?? rand(B * Hkv * Tk * D, g), v: over.v ?? rand(B * Hkv * Tk * Dv, g),
    B, H, Hkv, Tq, Tk, D, Dv, scale: over.scale ?? 1 / Math.sqrt(D), causal: over.causal ?? false,
    mask: over.mask ?? null, maskStrideB: over.maskStrideB ?? 0, maskStrideH: over.maskStrideH ?? 0, maskStrideQ: over.maskStrideQ ?? 0,
  };
}

function run(a: AttentionArgs): { out: Float32Array; lse: Float32Array } {
  const out = new Float32Array(a.B * a.H * a.Tq * a.Dv);
  const lse = new Float32Array(a.B * a.H * a.Tq);
  R.attention(a, out, lse);
  return { out, lse };
}

test('attention known values', () => {
  // equal scores: the mean of v, lse = log 2
  let res = run(mk({ B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 2, D: 1, Dv: 2, q: Float32Array.of(1), k: Float32Array.of(0, 0), v: Float32Array.of(1, 2, 3, 6) }));
  assertClose(res.out, [2, 4], 'equal scores', 1e-7);
  assertClose(res.lse, [Math.log(2)], 'lse', 1e-7);
  // scores [0, ln 3] -> p = [1/4, 3/4]
  res = run(mk({ B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 2, D: 1, Dv: 2, scale: 1, q: Float32Array.of(1), k: Float32Array.of(0, Math.log(3)), v: Float32Array.of(1, 0, 0, 1) }));
  assertClose(res.out, [0.25, 0.75], 'p = [1/4, 3/4]', 1e-6);
  assertClose(res.lse, [Math.log(4)], 'lse = log 4', 1e-6);
});

test('attention causal is bottom-right aligned; fully masked rows give 0 and -Infinity', () => {
  const same = { D: 1, Dv: 1, q: new Float32Array(0), k: new Float32Array(0) };
  // Tq 2, Tk 3: query 0 sees keys 0..1, query 1 sees 0..2
  let res = run(mk({ ...same, B: 1, H: 1, Hkv: 1, Tq: 2, Tk: 3, causal: true, q: new Float32Array(2), k: new Float32Array(3), v: Float32Array.of(1, 2, 6) }));
  assertClose(res.out, [1.5, 3], 'Tq < Tk', 1e-7);
  // Tq 3, Tk 1: queries 0 and 1 see nothing
  res = run(mk({ ...same, B: 1, H: 1, Hkv: 1, Tq: 3, Tk: 1, causal: true, q: new Float32Array(3), k: new Float32Array(1), v: Float32Array.of(5) }));
  assert.deepEqual(Array.from(res.out), [0, 0, 5]);
  assert.deepEqual(Array.from(res.lse), [-Infinity, -Infinity, 0]);
  // broadcast bool mask (all strides 0): one row [1, 0, 1] for every (b, h, i), ANDed with causal
  const mask = Uint8Array.of(1, 0, 1);
  res = run(mk({ ...same, B: 2, H: 1, Hkv: 1, Tq: 3, Tk: 3, q: new Float32Array(6), k: new Float32Array(6), v: Float32Array.of(1, 100, 3, 10, 100, 30), mask }));
  assertClose(res.out, [2, 2, 2, 20, 20, 20], 'broadcast mask', 1e-7);
  res = run(mk({ ...same, B: 1, H: 1, Hkv: 1, Tq: 3, Tk: 3, causal: true, q: new Float32Array(3), k: new Float32Array(3), v: Float32Array.of(1, 100, 3), mask }));
  assertClose(res.out, [1, 1, 2], 'mask AND causal', 1e-7);
  // per-query mask row (maskStrideQ) with one fully masked row
  const m2 = Uint8Array.of(0, 0, 1, 1);
  res = run(mk({ ...same, B: 1, H: 1, Hkv: 1, Tq: 2, Tk: 2, q: new Float32Array(2), k: new Float32Array(2), v: Float32Array.of(4, 8), mask: m2, maskStrideQ: 2 }));
  assert.deepEqual(Array.from(res.out), [0, 6]);
  assert.equal(res.lse[0], -Infinity);
});

test('grouped-query attention equals attention over repeated kv heads (forward and backward)', () => {
  const r = rng(9);
  const B = 2, H = 4, Hkv = 2, Tq = 3, Tk = 4, D = 3, Dv = 2;
  const g = mk({ B, H, Hkv, Tq, Tk, D, Dv, causal: true }, r);
  // expanded: kv head h = kv head floor(h / 2) of g
  const ke = new Float32Array(B * H * Tk * D), ve = new Float32Array(B * H * Tk * Dv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const src = b * Hkv + Math.floor(h / 2);
      ke.set(g.k.subarray(src * Tk * D, (src + 1) * Tk * D), (b * H + h) * Tk * D);
      ve.set(g.v.subarray(src * Tk * Dv, (src + 1) * Tk * Dv), (b * H + h) * Tk * Dv);
    }
  }
  const e = { ...g, Hkv: H, k: ke, v: ve };
  const rg = run(g), re = run(e);
  assertClose(rg.out, re.out, 'GQA out', 1e-7, 1e-7);
  assertClose(rg.lse, re.lse, 'GQA lse', 1e-7, 1e-7);
  const gOut = rand(rg.out.length, r);
  const gq = new Float32Array(g.q.length), gk = new Float32Array(g.k.length), gv = new Float32Array(g.v.length);
  R.attentionBackward(g, rg.out, rg.lse, gOut, gq, gk, gv);
  const gqe = new Float32Array(g.q.length), gke = new Float32Array(ke.length), gve = new Float32Array(ve.length);
  R.attentionBackward(e, re.out, re.lse, gOut, gqe, gke, gve);
  assertClose(gq, gqe, 'GQA gq', 1e-6, 1e-7);
  const sumGroup = (x: Float32Array, w: number): number[] => {
    const o = new Array<number>(B * Hkv * Tk * w).fill(0);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Tk * w; i++) o[(b * Hkv + Math.floor(h / 2)) * Tk * w + i] += x[(b * H + h) * Tk * w + i];
    return o;
  };
  assertClose(gk, sumGroup(gke, D), 'GQA gk', 1e-6, 1e-6);
  assertClose(gv, sumGroup(gve, Dv), 'GQA gv', 1e-6, 1e-6);
});

test('attentionBackward matches finite differences', () => {
  const r = rng(4);
  const configs: AttentionArgs[] = [
    mk({ B: 1, H: 2, Hkv: 1, Tq: 3, Tk: 4, D: 3, Dv: 2, causal: true }, r),
    mk({ B: 2, H: 2, Hkv: 2, Tq: 2, Tk: 3, D: 2, Dv: 3, mask: Uint8Array.of(1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1), maskStrideB: 6, maskStrideH: 0, maskStrideQ: 3 }, r),
    mk({ B: 1, H: 3, Hkv: 3, Tq: 4, Tk: 2, D: 2, Dv: 2, causal: true, scale: 0.9 }, r), // rows 0-1 see no key
  ];
  for (const [ci, a] of configs.entries()) {
    const out = new Float32Array(a.B * a.H * a.Tq * a.Dv), lse = new Float32Array(a.B * a.H * a.Tq);
    const gOut = rand(out.length, r);
    const loss = (): number => {
      R.attention(a, out, lse);
      return dot(out, gOut);
    };
    loss();
    const gq = new Float32Array(a.q.length), gk = new Float32Array(a.k.length).fill(9), gv = new Float32Array(a.v.length).fill(9);
    R.attentionBackward(a, out, lse, gOut, gq, gk, gv); // gk/gv are overwritten
    fdCheck(`attentionBackward config ${ci}`, [a.q, a.k, a.v], [gq, gk, gv], loss);
  }
});

test('attention validation errors', () => {
  const a = mk({ B: 1, H: 3, Hkv: 2, Tq: 1, Tk: 1, D: 1, Dv: 1 });
  throwsKernel(() => run(a), 'attention', /H = 3 is not a multiple of Hkv = 2/);
  const b = mk({ B: 1, H: 2, Hkv: 1, Tq: 2, Tk: 2, D: 2, Dv: 2 });
  throwsKernel(() => run({ ...b, q: new Float32Array(7) }), 'attention', /q \[1, 2, 2, 2\] has length 7, expected 8/);
  throwsKernel(() => run({ ...b, v: new Float32Array(3) }), 'attention', /v \[1, 1, 2, 2\]/);
  throwsKernel(() => run({ ...b, mask: new Uint8Array(3), maskStrideQ: 2 }), 'attention', /mask .* needs index 3 .* length 3/);
  throwsKernel(() => R.attention(b, new Float32Array(8), new Float32Array(3)), 'attention', /lse \[1, 2, 2\] has length 3/);
  const out = new Float32Array(8), lse = new Float32Array(4);
  throwsKernel(() => R.attentionBackward(b, out, lse, out, new Float32Array(8), new Float32Array(3), new Float32Array(4)), 'attentionBackward', /gk \[1, 1, 2, 2\] has length 3/);
});
