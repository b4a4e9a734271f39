// dtype conversion, RNG reproducibility, parameter trees, views and broadcasting rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBackend } from '../src/backends/index.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/engine/dtype.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { broadcastShapes } from '../src/engine/shape.ts';
import { flatten, mapTree, unflatten } from '../src/engine/tree.ts';
import { Tensor } from '../src/engine/tensor.ts';

useBackend('auto');

test('f16 and bf16 round trips, rounding and specials', () => {
  for (const x of [0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, Infinity, -Infinity]) {
    assert.equal(f16ToF32(f32ToF16(x)), x, `f16 ${x}`);
  }
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
  assert.equal(f16ToF32(f32ToF16(1e6)), Infinity, 'overflow to inf');
  assert.equal(f16ToF32(f32ToF16(1 + 2 ** -11)), 1, 'ties to even');
  assert.equal(f16ToF32(f32ToF16(1 + 3 * 2 ** -11)), 1 + 2 ** -9, 'ties to even (odd)');
  for (const x of [0, 1, -3.140625, 1e30, -1e-30]) assert.equal(bf16ToF32(f32ToBf16(x)), Math.fround(bf16ToF32(f32ToBf16(x))));
  assert.equal(bf16ToF32(f32ToBf16(1 + 2 ** -8)), 1, 'bf16 ties to even');
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  const t = F.cast(F.tensor([1.5, -2, 3.25]), 'f16');
  assert.equal(t.dtype, 'f16');
  assert.deepEqual(F.toArray(t), [1.5, -2, 3.25]);
});

test('RNG: same seed same stream, moments of normal and truncated normal, state round trip', () => {
  const a = new Rng(42), b = new Rng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.nextU32(), b.nextU32());
  const x = new Rng(1).fillNormal(new Float32Array(100000));
  const m = x.reduce((s, v) => s + v, 0) / x.length;
  const v = x.reduce((s, u) => s + (u - m) ** 2, 0) / x.length;
  assert.ok(Math.abs(m) < 0.02 && Math.abs(v - 1) < 0.02, `mean ${m} var ${v}`);
  const t = new Rng(2).fillTruncNormal(new Float32Array(20000), 0, 1, -0.5, 0.5);
  assert.ok(t.every((u) => u >= -0.5 && u <= 0.5));
  const r = new Rng(5);
  r.normal();
  const s = r.state();
  const want = [r.normal(), r.uniform()];
  r.setState(s);
  assert.deepEqual([r.normal(), r.uniform()], want);
});

test('parameter trees: paths are checkpoint keys; unflatten inverts flatten', () => {
  const tree = { model: { layers: [{ w: F.zeros([2]) }, { w: F.zeros([3]) }], norm: { weight: F.ones([2]) }, bias: null } };
  const flat = flatten<Tensor>(tree);
  assert.deepEqual([...flat.keys()], ['model.layers.0.w', 'model.layers.1.w', 'model.norm.weight']);
  const back = unflatten(flat) as typeof tree;
  assert.ok(Array.isArray(back.model.layers));
  assert.equal(back.model.layers[1]!.w, tree.model.layers[1]!.w);
  const shapes = mapTree<Tensor, number>(tree, (t) => t.size);
  assert.deepEqual(flatten<number>(shapes, '', (x) => typeof x === 'number').get('model.layers.1.w'), 3);
  assert.throws(() => unflatten([['a', 1], ['a.b', 2]]), /both a leaf and a branch/);
});

test('broadcasting rules and errors name the op and shapes', () => {
  assert.deepEqual(broadcastShapes('x', [3, 1, 5], [4, 1]), [3, 4, 5]);
  assert.throws(() => F.add(F.zeros([2, 3]), F.zeros([4])), /add: shapes \[2, 3\] and \[4\] do not broadcast/);
  assert.throws(() => F.matmul(F.zeros([2, 3]), F.zeros([4, 5])), /matmul: inner dimensions/);
  assert.throws(() => F.reshape(F.zeros([2, 3]), [4, 2]), /reshape: cannot reshape 6 elements/);
  assert.throws(() => F.embedding(F.zeros([5, 2]), F.tensor([1, 7], [2], 'i32')), /token id 7 .* outside the vocabulary \[0, 5\)/);
});

test('views: transpose, slice with step and expand read the right elements', () => {
  const a = F.arange(12);
  const m = F.reshape(a, [3, 4]);
  assert.deepEqual(F.toArray(F.transpose(m)), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.deepEqual(F.toArray(F.slice(m, 1, 1, 4, 2)), [1, 3, 5, 7, 9, 11]);
  assert.deepEqual(F.toArray(F.expand(F.slice(m, 0, 0, 1), [2, 4])), [0, 1, 2, 3, 0, 1, 2, 3]);
  assert.deepEqual(F.toArray(F.add(F.transpose(m), F.tensor([100, 200, 300]))), [100, 204, 308, 101, 205, 309, 102, 206, 310, 103, 207, 311]);
  assert.deepEqual(F.toArray(F.concat([F.slice(m, 1, 0, 1), F.slice(m, 1, 3, 4)], 1)), [0, 3, 4, 7, 8, 11]);
});
