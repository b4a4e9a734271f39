// Native kernels against the reference backend (the oracle): every Backend kernel except gemm,
// over random sizes (odd lengths, tails that are not multiples of the vector width), strided and
// broadcast layouts, sizes large enough to take the threaded paths, at threads 1 and 2 and on
// every instruction set this CPU supports (forced through the addon's setIsa). Plus bad
// arguments: they must throw `<kernel>: ...`, never crash.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createNativeBackend, nativeAddon, nativeLoadError } from '../src/backends/native/index.ts';
import { referenceBackend } from '../src/backends/reference/index.ts';
import type { AttentionArgs, Backend, BinaryOp, Conv2dGeom, InterpGeom, Pool2dGeom, UnaryOp } from '../src/engine/backend.ts';
import { BinaryOps, UnaryOps } from '../src/engine/backend.ts';

const native = createNativeBackend();
const addon = nativeAddon();
const skip = native === null || addon === null ? `native addon not available: ${nativeLoadError() ?? 'unknown reason'}` : false;

// ---------------------------------------------------------------- inputs

/** Seeded xorshift32 generator. */
class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = (seed * 2654435761) >>> 0 || 1;
  }
  next(): number {
    let s = this.s;
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    this.s = s;
    return s / 4294967296;
  }
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  f32(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.uniform(lo, hi);
    return a;
  }
  /** Values on a coarse grid: ties and exact equalities happen. */
  grid(n: number, step = 0.25, range = 4): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = step * (this.int(2 * range + 1) - range);
    return a;
  }
  /** |x| in [lo, hi] with a random sign. */
  away(n: number, lo = 0.2, hi = 2): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (this.next() < 0.5 ? -1 : 1) * this.uniform(lo, hi);
    return a;
  }
  i32(n: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.int(hi);
    return a;
  }
  mask(n: number, pOne = 0.7): Uint8Array {
    const a = new Uint8Array(n);
    for (let i = 0; i < n; i++) a[i] = this.next() < pOne ? (this.next() < 0.5 ? 1 : 3) : 0;
    return a;
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function rowMajor(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

type Layout = 'dense' | 'offset' | 'transposed' | 'sliced' | 'broadcast' | 'flipped' | 'scalar';
const LAYOUTS: Layout[] = ['dense', 'offset', 'transposed', 'sliced', 'broadcast', 'flipped', 'scalar'];

interface View<T> { buf: T; off: number; strides: number[] }

/** A strided view of `shape` over a fresh buffer made by `make(len)`. */
function view<T extends { length: number }>(r: Rand, shape: readonly number[], layout: Layout, make: (n: number) => T): View<T> {
  const rank = shape.length;
  const n = numel(shape);
  switch (layout) {
    case 'offset':
      return { buf: make(n + 7), off: 7, strides: rowMajor(shape) };
    case 'transposed': {
      if (rank < 2) return view(r, shape, 'sliced', make);
      const base = shape.slice();
      [base[rank - 2], base[rank - 1]] = [base[rank - 1], base[rank - 2]];
      const st = rowMajor(base);
      [st[rank - 2], st[rank - 1]] = [st[rank - 1], st[rank - 2]];
      return { buf: make(n), off: 0, strides: st };
    }
    case 'sliced': {
      if (rank === 0) return view(r, shape, 'dense', make);
      const base = shape.slice();
      base[rank - 1] *= 2;
      const st = rowMajor(base);
      st[rank - 1] = 2;
      return { buf: make(numel(base) + 1), off: 1, strides: st };
    }
    case 'broadcast': {
      // Broadcast a random subset of dims (stride 0); the others are dense over what is left.
      const keep = shape.map((d) => d === 1 || r.next() < 0.5);
      const sub = shape.map((d, i) => (keep[i] ? d : 1));
      const st = rowMajor(sub).map((s, i) => (keep[i] ? s : 0));
      return { buf: make(numel(sub)), off: 0, strides: st };
    }
    case 'flipped': {
      if (rank === 0 || shape[rank - 1] === 0) return view(r, shape, 'dense', make);
      const st = rowMajor(shape);
      st[rank - 1] = -1;
      return { buf: make(n), off: shape[rank - 1] - 1, strides: st };
    }
    case 'scalar':
      return { buf: make(1), off: 0, strides: shape.map(() => 0) };
    default:
      return { buf: make(n), off: 0, strides: rowMajor(shape) };
  }
}

// ---------------------------------------------------------------- comparison

type Out = Float32Array | Int32Array | Uint8Array | number[];

function close(actual: Out, expected: Out, what: string, rtol: number, atol: number): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}: [${i}] native ${a}, reference ${e} (|diff| ${Math.abs(a - e)}, rtol ${rtol}, atol ${atol}, length ${actual.length})`);
    }
  }
}

interface Case {
  name: string;
  /** Builds the inputs from a fixed seed, runs the kernel on b, returns the outputs. */
  run: (b: Backend) => Out[];
  rtol?: number;
  atol?: number;
  /** Integer outputs must match exactly. */
  exact?: boolean;
}

const cases: Case[] = [];
const expected = new Map<string, Out[]>();

function add(c: Case): void {
  if (cases.some((o) => o.name === c.name)) throw new Error(`duplicate case ${c.name}`);
  cases.push(c);
}

function check(c: Case): void {
  let exp = expected.get(c.name);
  if (exp === undefined) {
    exp = c.run(referenceBackend);
    expected.set(c.name, exp);
  }
  const got = c.run(native!);
  assert.equal(got.length, exp.length);
  for (let i = 0; i < got.length; i++) {
    if (c.exact) assert.deepEqual(Array.from(got[i]), Array.from(exp[i]), `${c.name}: output ${i}`);
    else close(got[i], exp[i], `${c.name}: output ${i}`, c.rtol ?? 1e-4, c.atol ?? 1e-5);
  }
}

// Sizes: empty, tiny, around the vector widths, odd, and big enough for two threads.
const SIZES = [0, 1, 3, 8, 15, 16, 17, 33, 100, 1023, 4099, 70001];
let seed = 1;

// ---------------------------------------------------------------- unary

function unaryInput(op: UnaryOp, r: Rand, n: number): Float32Array {
  switch (op) {
    case 'log': case 'sqrt': case 'rsqrt': return r.f32(n, 0.01, 10);
    case 'reciprocal': return r.away(n, 0.1, 10);
    case 'pow_scalar': return r.f32(n, 0.05, 4);
    case 'exp': return r.f32(n, -30, 30);
    case 'sin': case 'cos': return r.f32(n, -10, 10);
    case 'clamp': case 'relu': case 'abs': case 'sign': return r.grid(n, 0.125, 12);
    default: return r.f32(n, -8, 8);
  }
}

const P0: Partial<Record<UnaryOp, number[]>> = { scale: [1.5], add_scalar: [-0.75], pow_scalar: [2, 3, 0.5, -1, 1.7, 0], clamp: [-0.5] };
const SPECIALS = [0, -0, 1e-30, -1e-30, 0.5, -0.5, 0.625, -0.625, 1, -1, 9, -9, 20, -20, 80, -80, 87, -87.3, -87.5, 88.5, 89, -104, 1e30, -1e30];
const WITH_INF: ReadonlySet<UnaryOp> = new Set<UnaryOp>(['neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'square', 'relu', 'tanh', 'sigmoid', 'scale', 'add_scalar', 'clamp', 'sign']);

for (const op of UnaryOps) {
  for (const p0 of P0[op] ?? [0]) {
    const p1 = op === 'clamp' ? 0.75 : 0;
    for (const n of SIZES) {
      const s = seed++;
      add({
        name: `unary ${op} p0=${p0} n=${n}`,
        rtol: op === 'sin' || op === 'cos' ? 1e-4 : 1e-4,
        run: (b) => {
          const x = unaryInput(op, new Rand(s), n);
          const y = new Float32Array(n);
          b.unary(op, x, y, p0, p1);
          return [y];
        },
      });
    }
    const s = seed++;
    add({
      name: `unary ${op} p0=${p0} specials, in place`,
      run: (b) => {
        const vals = SPECIALS.concat(WITH_INF.has(op) ? [Infinity, -Infinity, NaN] : [NaN]);
        const x = Float32Array.from(vals.concat(Array.from(unaryInput(op, new Rand(s), 13))));
        b.unary(op, x, x, p0, p1);
        return [x];
      },
    });
    if (op === 'sign') continue;
    for (const n of SIZES) {
      const s2 = seed++;
      add({
        name: `unaryBackward ${op} p0=${p0} n=${n}`,
        run: (b) => {
          const r = new Rand(s2);
          const x = unaryInput(op, r, n);
          const y = new Float32Array(n);
          referenceBackend.unary(op, x, y, p0, p1);
          const gy = r.f32(n);
          const gx = new Float32Array(n);
          b.unaryBackward(op, x, y, gy, gx, p0, p1);
          return [gx];
        },
      });
    }
  }
}

it('unaryBackward reads only the buffer its op needs', { skip }, () => {
  const x = Float32Array.of(-1, 0.5, 2), y = new Float32Array(3), gy = Float32Array.of(1, 2, 3);
  const gx = new Float32Array(3), gr = new Float32Array(3);
  native!.unary('exp', x, y, 0, 0);
  native!.unaryBackward('exp', new Float32Array(0), y, gy, gx, 0, 0);
  referenceBackend.unaryBackward('exp', new Float32Array(0), y, gy, gr, 0, 0);
  close(gx, gr, 'exp backward from y', 1e-6, 1e-7);
  native!.unaryBackward('gelu', x, new Float32Array(0), gy, gx, 0, 0);
  referenceBackend.unaryBackward('gelu', x, new Float32Array(0), gy, gr, 0, 0);
  close(gx, gr, 'gelu backward from x', 1e-4, 1e-5);
});

// ---------------------------------------------------------------- binary / where / copyStrided

const SHAPES: number[][] = [[], [1], [17], [4, 5], [3, 1, 7], [2, 3, 4, 5], [1, 33], [9, 16], [2, 1, 1, 31], [300, 257]];

function binaryInput(op: BinaryOp, r: Rand, n: number, side: 0 | 1): Float32Array {
  if (op === 'pow') return side === 0 ? r.f32(n, 0.1, 3) : r.f32(n, -2, 2);
  if (op === 'div' && side === 1) return r.away(n, 0.2, 3);
  if (op === 'eq' || op === 'ne' || op === 'lt' || op === 'le' || op === 'gt' || op === 'ge' || op === 'max' || op === 'min') return r.grid(n, 0.5, 2);
  return r.f32(n, -2, 2);
}

for (const op of BinaryOps) {
  for (const shape of SHAPES) {
    const big = numel(shape) > 10000;
    const pairs: [Layout, Layout][] = big
      ? [['dense', 'dense'], ['dense', 'broadcast'], ['transposed', 'scalar'], ['scalar', 'offset']]
      : [['dense', 'dense'], ['dense', 'scalar'], ['scalar', 'dense'], ['offset', 'broadcast'], ['transposed', 'sliced'], ['broadcast', 'flipped'], ['flipped', 'transposed']];
    if (big && op !== 'add' && op !== 'mul' && op !== 'pow' && op !== 'max') continue;
    for (const [la, lb] of pairs) {
      const s = seed++;
      add({
        name: `binary ${op} [${shape}] ${la}/${lb}`,
        run: (b) => {
          const r = new Rand(s);
          const A = view(r, shape, la, (n) => binaryInput(op, r, n, 0));
          const B = view(r, shape, lb, (n) => binaryInput(op, r, n, 1));
          const out = new Float32Array(numel(shape));
          b.binary(op, A.buf, A.off, A.strides, B.buf, B.off, B.strides, shape, out);
          return [out];
        },
      });
    }
  }
}

add({
  name: 'binary max/min propagate NaN from either side',
  run: (b) => {
    const a = Float32Array.of(NaN, 1, NaN, -0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, NaN);
    const c = Float32Array.of(1, NaN, NaN, 0, 1, 3, 5, 5, 6, 7, 8, 9, 10, 11, 12, NaN, 0);
    const o1 = new Float32Array(17), o2 = new Float32Array(17);
    b.binary('max', a, 0, [1], c, 0, [1], [17], o1);
    b.binary('min', a, 0, [1], c, 0, [1], [17], o2);
    return [o1, o2];
  },
});

for (const shape of SHAPES) {
  const layouts: Layout[][] = numel(shape) > 10000
    ? [['dense', 'dense', 'dense'], ['broadcast', 'scalar', 'dense'], ['dense', 'transposed', 'broadcast']]
    : [['dense', 'dense', 'dense'], ['dense', 'scalar', 'dense'], ['offset', 'dense', 'scalar'], ['transposed', 'sliced', 'broadcast'], ['broadcast', 'flipped', 'offset'], ['scalar', 'dense', 'transposed']];
  for (const [lc, la, lb] of layouts) {
    const s = seed++;
    add({
      name: `where [${shape}] ${lc}/${la}/${lb}`,
      run: (b) => {
        const r = new Rand(s);
        const C = view(r, shape, lc, (n) => r.mask(n, 0.5));
        const A = view(r, shape, la, (n) => r.f32(n));
        const B = view(r, shape, lb, (n) => r.f32(n));
        const out = new Float32Array(numel(shape));
        b.where(C.buf, C.off, C.strides, A.buf, A.off, A.strides, B.buf, B.off, B.strides, shape, out);
        return [out];
      },
    });
  }
}

const COPY_SHAPES: number[][] = [[], [0], [5], [64, 64], [3, 4, 5], [2, 3, 1, 17], [300, 457]];
for (const shape of COPY_SHAPES) {
  for (const layout of ['dense', 'offset', 'transposed', 'sliced', 'broadcast', 'flipped'] as Layout[]) {
    for (const type of ['f32', 'i32', 'u8'] as const) {
      const s = seed++;
      add({
        name: `copyStrided ${type} [${shape}] ${layout}`,
        exact: true,
        run: (b) => {
          const r = new Rand(s);
          const make = (n: number) => (type === 'f32' ? r.f32(n) : type === 'i32' ? r.i32(n, 1 << 30) : Uint8Array.from(r.i32(n, 256)));
          const V = view(r, shape, layout, make);
          const n = numel(shape);
          const dst = type === 'f32' ? new Float32Array(n) : type === 'i32' ? new Int32Array(n) : new Uint8Array(n);
          b.copyStrided(V.buf, V.off, shape, V.strides, dst);
          return [dst];
        },
      });
    }
  }
}

// ---------------------------------------------------------------- reductions

const RED_SHAPES: [number, number, number][] = [[1, 0, 1], [0, 5, 3], [1, 1, 1], [3, 17, 1], [4, 100, 1], [2, 33, 3], [3, 7, 64], [2, 300, 70], [5, 3, 129], [1, 100003, 1], [64, 1500, 1], [2, 600, 257]];
for (const [outer, n, inner] of RED_SHAPES) {
  for (const op of ['sum', 'max', 'min'] as const) {
    if (n === 0 && op !== 'sum') continue;
    const s = seed++;
    add({
      name: `reduce ${op} [${outer}, ${n}, ${inner}]`,
      run: (b) => {
        const x = new Rand(s).f32(outer * n * inner, -1, 1);
        const out = new Float32Array(outer * inner);
        b.reduce(op, x, outer, n, inner, out);
        return [out];
      },
    });
  }
  if (n === 0) continue;
  for (const op of ['argmax', 'argmin'] as const) {
    const s = seed++;
    add({
      name: `argReduce ${op} [${outer}, ${n}, ${inner}]`,
      exact: true,
      run: (b) => {
        const x = new Rand(s).grid(outer * n * inner, 0.25, 40);
        const out = new Int32Array(outer * inner);
        b.argReduce(op, x, outer, n, inner, out);
        return [out];
      },
    });
  }
}

add({
  name: 'reduce / argReduce with NaN',
  exact: false,
  run: (b) => {
    const x = Float32Array.of(1, NaN, 3, 2, 5, 4, NaN, 0, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    const o = [new Float32Array(3), new Float32Array(3)];
    const a = [new Int32Array(3), new Int32Array(3)];
    b.reduce('max', x, 3, 7, 1, o[0]);
    b.reduce('min', x, 1, 7, 3, o[1]);
    b.argReduce('argmax', x, 3, 7, 1, a[0]);
    b.argReduce('argmin', x, 1, 7, 3, a[1]);
    return [...o, ...a];
  },
});

for (const n of [0, 1, 15, 17, 1000, 300001]) {
  const s = seed++;
  add({
    name: `sumSquares n=${n}`,
    rtol: 1e-9,
    atol: 0,
    run: (b) => [[b.sumSquares(new Rand(s).f32(n, -3, 3))]],
  });
}

// ---------------------------------------------------------------- softmax / norms / rope

const ROWS: [number, number][] = [[0, 4], [1, 1], [3, 7], [2, 16], [5, 33], [1, 4096], [7, 1000], [300, 129], [2, 32003]];
for (const [rows, n] of ROWS) {
  for (const log of [false, true]) {
    const s = seed++;
    add({
      name: `softmax log=${log} [${rows}, ${n}]`,
      run: (b) => {
        const r = new Rand(s);
        const x = r.f32(rows * n, -12, 12);
        const y = new Float32Array(rows * n);
        b.softmax(x, y, rows, n, log);
        const gy = r.f32(rows * n);
        const gx = new Float32Array(rows * n);
        const yr = new Float32Array(rows * n);
        referenceBackend.softmax(x, yr, rows, n, log);
        b.softmaxBackward(yr, gy, gx, rows, n, log);
        return [y, gx];
      },
    });
  }
}

add({
  name: 'softmax with -inf entries, in place',
  run: (b) => {
    const x = Float32Array.of(-Infinity, 1, 2, -Infinity, 0, 0, 0, 0, 5, -Infinity, -Infinity, 3, 1, 1, 1, 1, 1, 1);
    b.softmax(x, x, 2, 9, false);
    return [x];
  },
});

const NORM_ROWS: [number, number][] = [[1, 1], [3, 7], [2, 16], [4, 33], [1, 4096], [9, 1000], [300, 129], [2000, 64]];
for (const [rows, n] of NORM_ROWS) {
  for (const affine of [true, false]) {
    const s = seed++;
    add({
      name: `layerNorm affine=${affine} [${rows}, ${n}]`,
      run: (b) => {
        const r = new Rand(s);
        const x = r.f32(rows * n, -3, 5);
        const w = affine ? r.f32(n, 0.5, 1.5) : null, bb = affine ? r.f32(n) : null;
        const y = new Float32Array(rows * n), mean = new Float32Array(rows), rstd = new Float32Array(rows);
        b.layerNorm(x, w, bb, y, mean, rstd, rows, n, 1e-5);
        const gy = r.f32(rows * n);
        const gx = new Float32Array(rows * n);
        const gw = affine ? r.f32(n) : null, gb = affine ? r.f32(n) : null;
        const mr = new Float32Array(rows), rr = new Float32Array(rows);
        referenceBackend.layerNorm(x, w, bb, new Float32Array(rows * n), mr, rr, rows, n, 1e-5);
        b.layerNormBackward(x, w, mr, rr, gy, gx, gw, gb, rows, n);
        return [y, mean, rstd, gx, ...(gw && gb ? [gw, gb] : [])];
      },
    });
    const s2 = seed++;
    add({
      name: `rmsNorm affine=${affine} [${rows}, ${n}]`,
      run: (b) => {
        const r = new Rand(s2);
        const x = r.f32(rows * n, -3, 3);
        const w = affine ? r.f32(n, 0.5, 1.5) : null;
        const y = new Float32Array(rows * n), rstd = new Float32Array(rows);
        b.rmsNorm(x, w, y, rstd, rows, n, 1e-6);
        const gy = r.f32(rows * n);
        const gx = new Float32Array(rows * n);
        const gw = affine ? r.f32(n) : null;
        const rr = new Float32Array(rows);
        referenceBackend.rmsNorm(x, w, new Float32Array(rows * n), rr, rows, n, 1e-6);
        b.rmsNormBackward(x, w, rr, gy, gx, gw, rows, n);
        return [y, rstd, gx, ...(gw ? [gw] : [])];
      },
    });
  }
}

add({
  name: 'layerNormBackward with gw only / gb only',
  run: (b) => {
    const r = new Rand(777);
    const rows = 5, n = 21;
    const x = r.f32(rows * n), gy = r.f32(rows * n), w = r.f32(n);
    const mean = new Float32Array(rows), rstd = new Float32Array(rows);
    referenceBackend.layerNorm(x, w, null, new Float32Array(rows * n), mean, rstd, rows, n, 1e-5);
    const gx1 = new Float32Array(rows * n), gx2 = new Float32Array(rows * n), gw = r.f32(n), gb = r.f32(n);
    b.layerNormBackward(x, w, mean, rstd, gy, gx1, gw, null, rows, n);
    b.layerNormBackward(x, null, mean, rstd, gy, gx2, null, gb, rows, n);
    return [gx1, gx2, gw, gb];
  },
});

const ROPE: [number, number, number, number][] = [[1, 1, 2, 2], [2, 3, 8, 8], [3, 5, 17, 10], [2, 7, 64, 64], [8, 1, 64, 64], [4, 9, 128, 96], [4, 300, 96, 64]];
for (const [N, T, D, rot] of ROPE) {
  for (const interleaved of [false, true]) {
    for (const inverse of [false, true]) {
      const s = seed++;
      add({
        name: `rope [${N}, ${T}, ${D}] rot=${rot} interleaved=${interleaved} inverse=${inverse}`,
        run: (b) => {
          const r = new Rand(s);
          const x = r.f32(N * T * D), cos = r.f32((T * rot) / 2), sin = r.f32((T * rot) / 2);
          const y = new Float32Array(N * T * D);
          b.rope(x, y, cos, sin, N, T, D, rot, interleaved, inverse);
          b.rope(x, x, cos, sin, N, T, D, rot, interleaved, inverse); // in place
          return [y, x];
        },
      });
    }
  }
}

// ---------------------------------------------------------------- attention

interface AttnCase { B: number; H: number; Hkv: number; Tq: number; Tk: number; D: number; Dv: number; causal: boolean; mask?: 'full' | 'row' | 'key' | 'holes' }
const ATTN: AttnCase[] = [
  { B: 1, H: 1, Hkv: 1, Tq: 1, Tk: 1, D: 1, Dv: 1, causal: false },
  { B: 2, H: 4, Hkv: 2, Tq: 5, Tk: 7, D: 8, Dv: 8, causal: false },
  { B: 2, H: 4, Hkv: 2, Tq: 5, Tk: 7, D: 8, Dv: 8, causal: true },
  { B: 1, H: 2, Hkv: 1, Tq: 9, Tk: 4, D: 5, Dv: 3, causal: true }, // Tq > Tk: early rows see nothing
  { B: 1, H: 3, Hkv: 3, Tq: 70, Tk: 130, D: 16, Dv: 24, causal: true },
  { B: 1, H: 2, Hkv: 2, Tq: 33, Tk: 65, D: 13, Dv: 7, causal: false, mask: 'full' },
  { B: 2, H: 2, Hkv: 1, Tq: 20, Tk: 20, D: 32, Dv: 32, causal: true, mask: 'key' },
  { B: 1, H: 2, Hkv: 2, Tq: 17, Tk: 17, D: 16, Dv: 16, causal: false, mask: 'holes' },
  { B: 1, H: 4, Hkv: 4, Tq: 6, Tk: 40, D: 16, Dv: 16, causal: false, mask: 'row' },
  { B: 1, H: 8, Hkv: 8, Tq: 1, Tk: 128, D: 64, Dv: 64, causal: true }, // decode step
  { B: 1, H: 8, Hkv: 2, Tq: 3, Tk: 100, D: 64, Dv: 64, causal: true },
  { B: 1, H: 4, Hkv: 2, Tq: 200, Tk: 200, D: 64, Dv: 64, causal: true },
  { B: 2, H: 3, Hkv: 1, Tq: 130, Tk: 150, D: 32, Dv: 48, causal: false },
  { B: 1, H: 2, Hkv: 1, Tq: 150, Tk: 150, D: 32, Dv: 32, causal: false }, // 2 threads share one kv head's dq rows
  { B: 1, H: 2, Hkv: 1, Tq: 150, Tk: 170, D: 32, Dv: 32, causal: true, mask: 'key' },
];

function attnArgs(c: AttnCase, r: Rand): AttentionArgs {
  const { B, H, Hkv, Tq, Tk, D, Dv } = c;
  let mask: Uint8Array | null = null, msB = 0, msH = 0, msQ = 0;
  if (c.mask === 'full') { mask = r.mask(B * H * Tq * Tk, 0.8); msB = H * Tq * Tk; msH = Tq * Tk; msQ = Tk; }
  if (c.mask === 'key') { mask = r.mask(B * Tk, 0.8); msB = Tk; } // padding mask broadcast over heads and queries
  if (c.mask === 'holes') { mask = r.mask(H * Tq * Tk, 0.3); msH = Tq * Tk; msQ = Tk; }
  if (c.mask === 'row') {
    mask = r.mask(Tq * Tk, 0.7);
    mask.fill(0, 2 * Tk, 3 * Tk); // query row 2 sees nothing
    msQ = Tk;
  }
  return {
    q: r.f32(B * H * Tq * D), k: r.f32(B * Hkv * Tk * D), v: r.f32(B * Hkv * Tk * Dv),
    B, H, Hkv, Tq, Tk, D, Dv, scale: 1 / Math.sqrt(Math.max(D, 1)), causal: c.causal,
    mask, maskStrideB: msB, maskStrideH: msH, maskStrideQ: msQ,
  };
}

for (const c of ATTN) {
  const s = seed++;
  const name = `[${c.B}, ${c.H}/${c.Hkv}, ${c.Tq}x${c.Tk}, ${c.D}/${c.Dv}] causal=${c.causal} mask=${c.mask ?? 'none'}`;
  add({
    name: `attention ${name}`,
    run: (b) => {
      const a = attnArgs(c, new Rand(s));
      const out = new Float32Array(c.B * c.H * c.Tq * c.Dv), lse = new Float32Array(c.B * c.H * c.Tq);
      b.attention(a, out, lse);
      return [out, lse];
    },
  });
  add({
    name: `attentionBackward ${name}`,
    run: (b) => {
      const r = new Rand(s);
      const a = attnArgs(c, r);
      const out = new Float32Array(c.B * c.H * c.Tq * c.Dv), lse = new Float32Array(c.B * c.H * c.Tq);
      referenceBackend.attention(a, out, lse);
      const gOut = r.f32(out.length);
      const gq = new Float32Array(a.q.length), gk = new Float32Array(a.k.length), gv = new Float32Array(a.v.length);
      b.attentionBackward(a, out, lse, gOut, gq, gk, gv);
      return [gq, gk, gv];
    },
  });
}

// ---------------------------------------------------------------- convolution helpers

function convGeom(C: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number): Conv2dGeom {
  const Ho = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  return { C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo };
}

const CONVS: Conv2dGeom[] = [
  convGeom(1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1),
  convGeom(3, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1),
  convGeom(2, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1),
  convGeom(4, 11, 13, 5, 3, 2, 1, 2, 0, 1, 2),
  convGeom(2, 9, 9, 3, 3, 1, 3, 2, 2, 2, 1),
  convGeom(16, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1),
  convGeom(3, 16, 16, 7, 7, 4, 4, 3, 3, 1, 1),
];

for (const g of CONVS) {
  const gs = `C${g.C} ${g.H}x${g.W} k${g.kh}x${g.kw} s${g.sh}x${g.sw} p${g.ph}x${g.pw} d${g.dh}x${g.dw}`;
  const s = seed++;
  add({
    name: `im2col/col2im ${gs}`,
    run: (b) => {
      const r = new Rand(s);
      const img = g.C * g.H * g.W, L = g.C * g.kh * g.kw * g.Ho * g.Wo;
      const x = r.f32(img + 5);
      const cols = new Float32Array(L);
      b.im2col(x, 5, g, cols);
      const gx = r.f32(img + 3);
      b.col2im(r.f32(L), g, gx, 3);
      return [cols, gx];
    },
  });
  for (const N of [1, 3]) {
    const s2 = seed++;
    add({
      name: `depthwiseConv2d N=${N} ${gs}`,
      run: (b) => {
        const r = new Rand(s2);
        const x = r.f32(N * g.C * g.H * g.W), w = r.f32(g.C * g.kh * g.kw), bias = r.f32(g.C);
        const y = new Float32Array(N * g.C * g.Ho * g.Wo), y2 = new Float32Array(y.length);
        b.depthwiseConv2d(x, w, bias, y, N, g);
        b.depthwiseConv2d(x, w, null, y2, N, g);
        const gy = r.f32(y.length), gx = new Float32Array(x.length), gw = r.f32(w.length);
        b.depthwiseConv2dBackward(x, w, gy, gx, gw, N, g);
        return [y, y2, gx, gw];
      },
    });
  }
}

function poolGeom(NC: number, H: number, W: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, countIncludePad: boolean): Pool2dGeom {
  return { NC, H, W, kh, kw, sh, sw, ph, pw, Ho: Math.floor((H + 2 * ph - kh) / sh) + 1, Wo: Math.floor((W + 2 * pw - kw) / sw) + 1, countIncludePad };
}

const POOLS: Pool2dGeom[] = [
  poolGeom(1, 1, 1, 1, 1, 1, 1, 0, 0, true),
  poolGeom(3, 8, 8, 2, 2, 2, 2, 0, 0, true),
  poolGeom(2, 7, 9, 3, 3, 2, 2, 1, 1, true),
  poolGeom(2, 7, 9, 3, 3, 2, 2, 1, 1, false),
  poolGeom(4, 10, 11, 3, 2, 1, 2, 1, 1, false),
  poolGeom(64, 32, 32, 3, 3, 2, 2, 1, 1, false),
];

for (const g of POOLS) {
  for (const kind of ['max', 'avg'] as const) {
    const s = seed++;
    add({
      name: `pool2d ${kind} NC${g.NC} ${g.H}x${g.W} k${g.kh}x${g.kw} s${g.sh}x${g.sw} p${g.ph}x${g.pw} pad=${g.countIncludePad}`,
      run: (b) => {
        const r = new Rand(s);
        const x = r.grid(g.NC * g.H * g.W, 0.125, 30);
        const y = new Float32Array(g.NC * g.Ho * g.Wo);
        const am = kind === 'max' ? new Int32Array(y.length) : null;
        b.pool2d(kind, x, y, am, g);
        const gx = r.f32(x.length);
        const amRef = kind === 'max' ? new Int32Array(y.length) : null;
        referenceBackend.pool2d(kind, x, new Float32Array(y.length), amRef, g);
        b.pool2dBackward(kind, r.f32(y.length), amRef, gx, g);
        return am ? [y, gx, am] : [y, gx];
      },
    });
  }
}

const INTERPS: Omit<InterpGeom, 'mode' | 'alignCorners'>[] = [
  { NC: 1, H: 1, W: 1, Ho: 3, Wo: 2, scaleH: 0, scaleW: 0 },
  { NC: 2, H: 5, W: 7, Ho: 10, Wo: 14, scaleH: 0, scaleW: 0 },
  { NC: 3, H: 9, W: 8, Ho: 4, Wo: 5, scaleH: 0, scaleW: 0 },
  { NC: 2, H: 6, W: 6, Ho: 9, Wo: 15, scaleH: 1 / 1.5, scaleW: 1 / 2.5 },
  { NC: 8, H: 24, W: 24, Ho: 37, Wo: 37, scaleH: 0, scaleW: 0 },
];

for (const base of INTERPS) {
  for (const [mode, alignCorners] of [['nearest', false], ['bilinear', false], ['bilinear', true], ['bicubic', false], ['bicubic', true]] as const) {
    const g: InterpGeom = { ...base, mode, alignCorners };
    const s = seed++;
    add({
      name: `interpolate ${mode} align=${alignCorners} NC${g.NC} ${g.H}x${g.W} -> ${g.Ho}x${g.Wo} scale ${g.scaleH.toFixed(3)}/${g.scaleW.toFixed(3)}`,
      run: (b) => {
        const r = new Rand(s);
        const x = r.f32(g.NC * g.H * g.W);
        const y = new Float32Array(g.NC * g.Ho * g.Wo);
        b.interpolate(x, y, g);
        const gx = r.f32(x.length);
        b.interpolateBackward(r.f32(y.length), gx, g);
        return [y, gx];
      },
    });
  }
}

// ---------------------------------------------------------------- indexing

const IDX: [number, number, number, number][] = [[1, 1, 1, 1], [2, 5, 3, 4], [3, 7, 9, 1], [1, 1000, 70000, 1], [4, 50, 30, 33], [1, 64, 300, 300], [40, 10, 10, 200]];
for (const [outer, n, m, inner] of IDX) {
  const s = seed++;
  add({
    name: `indexSelect/indexAdd [${outer}, ${n}, ${inner}] m=${m}`,
    run: (b) => {
      const r = new Rand(s);
      const x = r.f32(outer * n * inner), idx = r.i32(m, n);
      const y = new Float32Array(outer * m * inner);
      b.indexSelect(x, idx, y, outer, n, inner);
      const gx = r.f32(outer * n * inner);
      b.indexAdd(r.f32(outer * m * inner), idx, gx, outer, n, inner);
      return [y, gx];
    },
  });
  const s2 = seed++;
  add({
    name: `gather/scatterAdd [${outer}, ${n}, ${inner}] m=${m}`,
    run: (b) => {
      const r = new Rand(s2);
      const x = r.f32(outer * n * inner), idx = r.i32(outer * m * inner, n);
      const y = new Float32Array(outer * m * inner);
      b.gather(x, idx, y, outer, n, m, inner);
      const gx = r.f32(outer * n * inner);
      b.scatterAdd(r.f32(outer * m * inner), idx, gx, outer, n, m, inner);
      return [y, gx];
    },
  });
}

// ---------------------------------------------------------------- loss / scans / optimisers

const CE: [number, number][] = [[0, 3], [1, 1], [4, 5], [9, 33], [16, 1000], [6, 32003], [300, 300]];
for (const [rows, V] of CE) {
  for (const smoothing of [0, 0.1]) {
    const s = seed++;
    add({
      name: `crossEntropy [${rows}, ${V}] smoothing=${smoothing}`,
      run: (b) => {
        const r = new Rand(s);
        const logits = r.f32(rows * V, -6, 6);
        const targets = r.i32(rows, V);
        for (let i = 0; i < rows; i += 3) targets[i] = -100;
        const loss = new Float32Array(rows), lse = new Float32Array(rows);
        b.crossEntropy(logits, targets, loss, lse, rows, V, -100, smoothing);
        const g = new Float32Array(rows * V);
        b.crossEntropyBackward(logits, targets, lse, r.f32(rows, 0, 2), g, rows, V, -100, smoothing);
        return [loss, lse, g];
      },
    });
  }
}

for (const [outer, n, inner] of [[1, 1, 1], [3, 17, 1], [2, 9, 5], [4, 1000, 1], [2, 33, 130], [70, 40, 30]] as const) {
  for (const reverse of [false, true]) {
    const s = seed++;
    add({
      name: `cumsum [${outer}, ${n}, ${inner}] reverse=${reverse}`,
      run: (b) => {
        const x = new Rand(s).f32(outer * n * inner);
        const y = new Float32Array(x.length);
        b.cumsum(x, y, outer, n, inner, reverse);
        b.cumsum(x, x, outer, n, inner, reverse); // in place
        return [y, x];
      },
    });
  }
}

for (const [rows, n, k] of [[1, 1, 1], [3, 10, 0], [3, 10, 10], [4, 17, 5], [2, 1000, 7], [50, 3000, 50]] as const) {
  const s = seed++;
  add({
    name: `topk [${rows}, ${n}] k=${k}`,
    exact: true,
    run: (b) => {
      const x = new Rand(s).grid(rows * n, 0.5, 20);
      if (n > 3) x[2] = NaN;
      const values = new Float32Array(rows * k), indices = new Int32Array(rows * k);
      b.topk(x, rows, n, k, values, indices);
      return [values, indices];
    },
  });
}

for (const n of [0, 1, 17, 4096, 100003]) {
  const s = seed++;
  add({
    name: `adamw n=${n}`,
    rtol: 1e-5,
    atol: 1e-6,
    run: (b) => {
      const r = new Rand(s);
      const p = r.f32(n), m = r.f32(n, -0.01, 0.01), v = r.f32(n, 0, 1e-4);
      for (let step = 1; step <= 3; step++) {
        b.adamw(p, r.f32(n, -0.1, 0.1), m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9 ** step, 1 - 0.999 ** step);
      }
      return [p, m, v];
    },
  });
  for (const [momentum, dampening, nesterov, wd] of [[0, 0, false, 0], [0.9, 0, false, 1e-2], [0.9, 0.1, false, 0], [0.9, 0, true, 1e-3]] as const) {
    const s2 = seed++;
    add({
      name: `sgd n=${n} momentum=${momentum} dampening=${dampening} nesterov=${nesterov} wd=${wd}`,
      rtol: 1e-5,
      atol: 1e-6,
      run: (b) => {
        const r = new Rand(s2);
        const p = r.f32(n);
        const buf = momentum !== 0 ? new Float32Array(n) : null;
        for (let step = 0; step < 3; step++) b.sgd(p, r.f32(n), buf, 0.1, momentum, dampening, wd, nesterov, step === 0);
        return buf ? [p, buf] : [p];
      },
    });
  }
}

// ---------------------------------------------------------------- runs: every ISA x threads

const ISA_ORDER = ['scalar', 'avx2', 'avx512'];
const supported = addon ? ISA_ORDER.slice(0, ISA_ORDER.indexOf(addon.cpuIsa()) + 1).reverse() : [];

describe('native kernels vs reference', { skip }, () => {
  const prevIsa = addon?.isa() ?? 'scalar';
  const prevThreads = native?.getThreads() ?? 1;
  after(() => {
    addon!.setIsa(prevIsa as 'avx512' | 'avx2' | 'scalar');
    native!.setThreads(prevThreads);
  });
  // Threads outermost: the pool is resized once (1 -> 2), not back and forth.
  for (const threads of [1, 2]) {
    for (const isa of supported) {
      describe(`${isa}, ${threads} thread${threads > 1 ? 's' : ''}`, () => {
        before(() => {
          addon!.setIsa(isa as 'avx512' | 'avx2' | 'scalar');
          native!.setThreads(threads);
          assert.equal(addon!.kernelIsa(), isa);
        });
        it(`all ${cases.length} cases`, () => {
          const failures: string[] = [];
          for (const c of cases) {
            try {
              check(c);
            } catch (e) {
              failures.push(e instanceof Error ? e.message : String(e));
            }
          }
          if (failures.length > 0) assert.fail(`${failures.length} of ${cases.length} cases failed:\n${failures.slice(0, 40).join('\n')}`);
        });
      });
    }
  }
});

// ---------------------------------------------------------------- bad arguments

describe('native kernels reject bad arguments', { skip }, () => {
  const b = native!;
  const f = (n: number) => new Float32Array(n);
  const throws = (fn: () => void, kernel: string, re?: RegExp) => {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof Error, 'an Error');
      assert.ok(e.message.startsWith(`${kernel}: `), `message '${e.message}' starts with '${kernel}: '`);
      if (re) assert.match(e.message, re);
      return true;
    });
  };
  const geom: Conv2dGeom = convGeom(2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1);
  const pool: Pool2dGeom = poolGeom(2, 6, 6, 2, 2, 2, 2, 0, 0, true);
  const interp: InterpGeom = { NC: 2, H: 4, W: 4, Ho: 8, Wo: 8, mode: 'bilinear', alignCorners: false, scaleH: 0, scaleW: 0 };
  const attn = (over: Partial<AttentionArgs> = {}): AttentionArgs => ({
    q: f(2 * 3 * 4), k: f(2 * 5 * 4), v: f(2 * 5 * 4), B: 1, H: 2, Hkv: 2, Tq: 3, Tk: 5, D: 4, Dv: 4, scale: 0.5, causal: false,
    mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0, ...over,
  });

  it('elementwise', () => {
    throws(() => b.unary('exp', f(10), f(9), 0, 0), 'unary', /length 9/);
    throws(() => b.unary('nope' as UnaryOp, f(1), f(1), 0, 0), 'unary', /unknown op/);
    throws(() => b.unary('exp', new Float64Array(3) as unknown as Float32Array, f(3), 0, 0), 'unary', /Float32Array/);
    throws(() => b.unaryBackward('exp', f(4), f(3), f(4), f(4), 0, 0), 'unaryBackward');
    throws(() => b.unaryBackward('gelu', f(3), f(4), f(4), f(4), 0, 0), 'unaryBackward');
    throws(() => b.unaryBackward('sign', f(4), f(4), f(4), f(4), 0, 0), 'unaryBackward', /sign/);
    throws(() => b.binary('add', f(5), 0, [1], f(6), 0, [1], [6], f(6)), 'binary', /outside/);
    throws(() => b.binary('add', f(6), 1, [1], f(6), 0, [1], [6], f(6)), 'binary', /outside/);
    throws(() => b.binary('add', f(6), 0, [1], f(6), 0, [1], [6], f(5)), 'binary', /out/);
    throws(() => b.binary('add', f(6), 0, [1, 1], f(6), 0, [1], [6], f(6)), 'binary', /strides/);
    throws(() => b.binary('add', f(6), 0, [-1], f(6), 0, [1], [6], f(6)), 'binary', /outside/);
    throws(() => b.binary('add', f(6), 0, [1.5], f(6), 0, [1], [6], f(6)), 'binary');
    throws(() => b.binary('add', f(6), -1, [1], f(6), 0, [1], [6], f(6)), 'binary');
    throws(() => b.binary('add', f(6), 0, [1], f(6), 0, [1], [NaN], f(6)), 'binary');
    throws(() => b.binary('add', f(1), 0, new Array(65).fill(0), f(1), 0, new Array(65).fill(0), new Array(65).fill(1), f(1)), 'binary', /rank/);
    throws(() => b.where(new Uint8Array(5), 0, [1], f(6), 0, [1], f(6), 0, [1], [6], f(6)), 'where', /cond/);
    throws(() => b.where(f(6) as unknown as Uint8Array, 0, [1], f(6), 0, [1], f(6), 0, [1], [6], f(6)), 'where', /Uint8Array/);
    throws(() => b.copyStrided(f(10), 0, [4, 4], [4, 1], f(16)), 'copyStrided', /outside/);
    throws(() => b.copyStrided(f(16), 0, [4, 4], [4, 1], new Int32Array(16) as unknown as Float32Array), 'copyStrided', /types/);
    throws(() => b.copyStrided(f(16), 0, [4, 4], [4, 1], f(15)), 'copyStrided', /dst/);
  });

  it('reductions, softmax, norms, rope', () => {
    throws(() => b.reduce('sum', f(11), 2, 3, 2, f(4)), 'reduce', /x/);
    throws(() => b.reduce('max', f(0), 2, 0, 2, f(4)), 'reduce', /empty/);
    throws(() => b.reduce('sum', f(12), 2, 3, 2, f(3)), 'reduce', /out/);
    throws(() => b.argReduce('argmax', f(12), 2, 3, 2, new Int32Array(3)), 'argReduce');
    throws(() => b.argReduce('argmax', f(12), 2, 3, 2, f(4) as unknown as Int32Array), 'argReduce', /Int32Array/);
    throws(() => b.softmax(f(11), f(12), 3, 4, false), 'softmax', /x/);
    throws(() => b.softmax(f(12), f(12), -3, -4, false), 'softmax');
    throws(() => b.softmaxBackward(f(12), f(12), f(11), 3, 4, true), 'softmaxBackward', /gx/);
    throws(() => b.layerNorm(f(12), f(3), null, f(12), f(3), f(3), 3, 4, 1e-5), 'layerNorm', /w/);
    throws(() => b.layerNorm(f(0), null, null, f(0), f(3), f(3), 3, 0, 1e-5), 'layerNorm', /n must be/);
    throws(() => b.layerNormBackward(f(12), null, f(3), f(2), f(12), f(12), null, null, 3, 4), 'layerNormBackward', /rstd/);
    throws(() => b.rmsNorm(f(12), null, f(12), f(4), 3, 4, 1e-5), 'rmsNorm', /rstd/);
    throws(() => b.rmsNormBackward(f(12), null, f(3), f(12), f(12), f(5), 3, 4), 'rmsNormBackward', /gw/);
    throws(() => b.rope(f(24), f(24), f(6), f(6), 1, 3, 8, 5, false, false), 'rope', /even/);
    throws(() => b.rope(f(24), f(24), f(6), f(5), 1, 3, 8, 4, false, false), 'rope', /sin/);
    throws(() => b.rope(f(24), f(24), f(6), f(6), 1, 3, 8, 10, false, false), 'rope');
  });

  it('attention', () => {
    const out = f(2 * 3 * 4), lse = f(2 * 3);
    b.attention(attn(), out, lse);
    throws(() => b.attention(attn({ q: f(23) }), out, lse), 'attention', /q/);
    throws(() => b.attention(attn({ Hkv: 3, k: f(3 * 5 * 4), v: f(3 * 5 * 4) }), out, lse), 'attention', /multiple/);
    throws(() => b.attention(attn({ mask: new Uint8Array(14), maskStrideQ: 5, maskStrideH: 0 }), out, lse), 'attention', /mask/);
    throws(() => b.attention(attn({ mask: new Uint8Array(30), maskStrideQ: -5, maskStrideH: 15 }), out, lse), 'attention');
    throws(() => b.attention(attn({ scale: NaN }), out, lse), 'attention', /scale/);
    throws(() => b.attention(attn(), f(23), lse), 'attention', /out/);
    throws(() => b.attentionBackward(attn(), out, lse, f(24), f(24), f(40), f(39)), 'attentionBackward', /gv/);
    throws(() => b.attentionBackward(attn(), out, f(5), f(24), f(24), f(40), f(40)), 'attentionBackward', /lse/);
  });

  it('convolution, pooling, resizing', () => {
    throws(() => b.im2col(f(49), 2, geom, f(2 * 9 * 25)), 'im2col', /x/);
    throws(() => b.im2col(f(50), 0, geom, f(2 * 9 * 25 - 1)), 'im2col', /cols/);
    throws(() => b.im2col(f(50), 0, { ...geom, Ho: 4 }, f(2 * 9 * 25)), 'im2col', /match/);
    throws(() => b.im2col(f(50), 0, { ...geom, sh: 0 }, f(2 * 9 * 25)), 'im2col');
    throws(() => b.col2im(f(2 * 9 * 25), geom, f(50), 1), 'col2im', /gx/);
    throws(() => b.depthwiseConv2d(f(50), f(17), null, f(50), 1, geom), 'depthwiseConv2d', /w/);
    throws(() => b.depthwiseConv2d(f(50), f(18), f(3), f(50), 1, geom), 'depthwiseConv2d', /bias/);
    throws(() => b.depthwiseConv2dBackward(f(50), f(18), f(50), f(50), f(17), 1, geom), 'depthwiseConv2dBackward', /gw/);
    throws(() => b.pool2d('max', f(71), f(18), new Int32Array(18), pool), 'pool2d', /x/);
    throws(() => b.pool2d('avg', f(72), f(18), null, { ...pool, ph: 2 }), 'pool2d', /padding/);
    throws(() => b.pool2dBackward('max', f(18), null, f(72), pool), 'pool2dBackward', /argmax/);
    throws(() => b.pool2dBackward('max', f(18), new Int32Array(18).fill(36), f(72), pool), 'pool2dBackward', /argmax\[0\]/);
    throws(() => b.pool2d('median' as 'max', f(72), f(18), null, pool), 'pool2d', /kind/);
    throws(() => b.interpolate(f(31), f(128), interp), 'interpolate', /x/);
    throws(() => b.interpolate(f(32), f(128), { ...interp, mode: 'nearest', alignCorners: true }), 'interpolate', /nearest/);
    throws(() => b.interpolate(f(32), f(128), { ...interp, mode: 'area' as 'nearest' }), 'interpolate', /mode/);
    throws(() => b.interpolateBackward(f(128), f(32), { ...interp, scaleH: -1 }), 'interpolateBackward', /scale/);
  });

  it('indexing, loss, scans, optimisers', () => {
    throws(() => b.indexSelect(f(12), Int32Array.of(0, 3), f(8), 2, 3, 2), 'indexSelect', /idx\[1\] = 3/);
    throws(() => b.indexSelect(f(12), Int32Array.of(0, -1), f(8), 2, 3, 2), 'indexSelect', /idx\[1\] = -1/);
    throws(() => b.indexAdd(f(8), Int32Array.of(0, 1), f(11), 2, 3, 2), 'indexAdd', /gx/);
    throws(() => b.gather(f(12), new Int32Array(8).fill(3), f(8), 2, 3, 2, 2), 'gather', /outside/);
    throws(() => b.scatterAdd(f(8), new Int32Array(7), f(12), 2, 3, 2, 2), 'scatterAdd', /idx/);
    throws(() => b.crossEntropy(f(10), Int32Array.of(0, 5), f(2), f(2), 2, 5, -100, 0), 'crossEntropy', /targets\[1\] = 5/);
    throws(() => b.crossEntropy(f(10), Int32Array.of(0, 1), f(2), f(2), 2, 5, -100, 1.5), 'crossEntropy', /smoothing/);
    throws(() => b.crossEntropy(f(10), Int32Array.of(0, 1), f(2), f(2), 2, 5, 0.5, 0), 'crossEntropy', /ignoreIndex/);
    throws(() => b.crossEntropyBackward(f(10), Int32Array.of(0, 1), f(2), f(2), f(9), 2, 5, -100, 0), 'crossEntropyBackward', /glogits/);
    throws(() => b.cumsum(f(10), f(9), 2, 5, 1, false), 'cumsum', /y/);
    throws(() => b.topk(f(10), 2, 5, 6, f(12), new Int32Array(12)), 'topk', /exceeds/);
    throws(() => b.topk(f(10), 2, 5, 2, f(4), new Int32Array(3)), 'topk', /indices/);
    throws(() => b.adamw(f(10), f(10), f(9), f(10), 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001), 'adamw', /m/);
    throws(() => b.adamw(f(10), f(10), f(10), f(10), 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0.001), 'adamw', /bias/);
    throws(() => b.sgd(f(10), f(10), null, 0.1, 0.9, 0, 0, false, true), 'sgd', /buffer/);
    throws(() => b.sgd(f(10), f(11), null, 0.1, 0, 0, 0, false, true), 'sgd', /g/);
  });
});
