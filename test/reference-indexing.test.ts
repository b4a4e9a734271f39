import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend as R } from '../src/backends/reference/index.ts';
import { throwsKernel } from './reference-helpers.ts';

test('indexSelect / indexAdd along the middle dim', () => {
  // x [2, 3, 2]
  const x = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
  const idx = Int32Array.of(2, 0, 2);
  const y = new Float32Array(12);
  R.indexSelect(x, idx, y, 2, 3, 2);
  assert.deepEqual(Array.from(y), [5, 6, 1, 2, 5, 6, 11, 12, 7, 8, 11, 12]);
  const gx = new Float32Array(12).fill(1);
  R.indexAdd(Float32Array.from({ length: 12 }, (_, i) => i), idx, gx, 2, 3, 2);
  // row 2 receives slots 0 and 2, row 0 slot 1, row 1 nothing
  assert.deepEqual(Array.from(gx), [3, 4, 1, 1, 5, 7, 9, 10, 1, 1, 17, 19]);
});

test('gather / scatterAdd (torch.gather along the middle dim)', () => {
  // x [1, 3, 2], idx [1, 2, 2]
  const x = Float32Array.of(1, 2, 3, 4, 5, 6);
  const idx = Int32Array.of(2, 0, 2, 2);
  const y = new Float32Array(4);
  R.gather(x, idx, y, 1, 3, 2, 2);
  assert.deepEqual(Array.from(y), [5, 2, 5, 6]);
  const gx = new Float32Array(6);
  R.scatterAdd(Float32Array.of(1, 2, 3, 4), idx, gx, 1, 3, 2, 2);
  assert.deepEqual(Array.from(gx), [0, 2, 0, 0, 4, 4]);
});

test('indexing validation errors', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  throwsKernel(() => R.indexSelect(f(6), Int32Array.of(0, 3), f(4), 1, 3, 2), 'indexSelect', /idx\[1\] = 3 outside \[0, 3\)/);
  throwsKernel(() => R.indexSelect(f(6), Int32Array.of(-1), f(2), 1, 3, 2), 'indexSelect', /idx\[0\] = -1/);
  throwsKernel(() => R.indexSelect(f(6), Int32Array.of(0), f(3), 1, 3, 2), 'indexSelect', /y \[1, 1, 2\] has length 3/);
  throwsKernel(() => R.indexAdd(f(2), Int32Array.of(5), f(6), 1, 3, 2), 'indexAdd', /idx\[0\] = 5/);
  throwsKernel(() => R.gather(f(6), new Int32Array(3), f(4), 1, 3, 2, 2), 'gather', /idx \[1, 2, 2\] has length 3/);
  throwsKernel(() => R.scatterAdd(f(4), Int32Array.of(0, 1, 2, 3), f(6), 1, 3, 2, 2), 'scatterAdd', /idx\[3\] = 3/);
});
