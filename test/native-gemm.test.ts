// Native sgemm against a float64 triple loop, on every ISA path this CPU can run, with 1 and 2
// threads; and argument errors that must throw instead of crashing.
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadAddon, type NativeCoreAddon } from '../src/backends/native/addon.ts';
import { nativeGemm } from '../src/backends/native/gemm.ts';
import type { GemmArgs } from '../src/engine/backend.ts';

const { addon, error } = loadAddon();
const skip = addon === null ? `native addon not available (${error?.message ?? 'unknown'})` : false;

function isasFor(a: NativeCoreAddon): ('avx512' | 'avx2' | 'scalar')[] {
  const order = ['scalar', 'avx2', 'avx512'] as const;
  return order.slice(0, order.indexOf(a.cpuIsa() as (typeof order)[number]) + 1);
}

/** Deterministic values in [-1, 1). */
function fill(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}

interface Case {
  m: number; n: number; k: number;
  transA?: boolean; transB?: boolean; alpha?: number; beta?: number;
  /** Extra elements per row beyond the stored row length. */
  padA?: number; padB?: number; padC?: number;
  batch?: number;
  /** 0 shares the operand across the batch; otherwise the natural stride plus this gap. */
  gapA?: number | 'shared'; gapB?: number | 'shared'; gapC?: number;
  off?: number;
}

function makeArgs(cs: Case, seed: number): GemmArgs {
  const { m, n, k } = cs;
  const transA = cs.transA ?? false, transB = cs.transB ?? false;
  const batch = cs.batch ?? 1;
  const rowsA = transA ? k : m, colsA = transA ? m : k;
  const rowsB = transB ? n : k, colsB = transB ? k : n;
  const lda = colsA + (cs.padA ?? 0), ldb = colsB + (cs.padB ?? 0), ldc = n + (cs.padC ?? 0);
  const strideA = cs.gapA === 'shared' ? 0 : rowsA * lda + (cs.gapA ?? 0);
  const strideB = cs.gapB === 'shared' ? 0 : rowsB * ldb + (cs.gapB ?? 0);
  const strideC = m * ldc + (cs.gapC ?? 0);
  const off = cs.off ?? 0;
  const len = (rows: number, ld: number, stride: number) => off + (batch - 1) * stride + rows * ld + 3;
  return {
    transA, transB, m, n, k, alpha: cs.alpha ?? 1, beta: cs.beta ?? 0,
    a: fill(len(rowsA, lda, strideA), seed), aOff: off, lda, strideA,
    b: fill(len(rowsB, ldb, strideB), seed + 1), bOff: off, ldb, strideB,
    c: fill(len(m, ldc, strideC), seed + 2), cOff: off, ldc, strideC, batch,
  };
}

/** The oracle: f64 sums, batches in order (so overlapping C strides behave as a sequential loop). */
function naive(g: GemmArgs): Float64Array {
  const c = Float64Array.from(g.c);
  for (let bi = 0; bi < g.batch; bi++) {
    const a0 = g.aOff + bi * g.strideA, b0 = g.bOff + bi * g.strideB, c0 = g.cOff + bi * g.strideC;
    for (let i = 0; i < g.m; i++) {
      for (let j = 0; j < g.n; j++) {
        let s = 0;
        for (let p = 0; p < g.k; p++) {
          const av = g.transA ? g.a[a0 + p * g.lda + i] : g.a[a0 + i * g.lda + p];
          const bv = g.transB ? g.b[b0 + j * g.ldb + p] : g.b[b0 + p * g.ldb + j];
          s += av * bv;
        }
        const ci = c0 + i * g.ldc + j;
        c[ci] = g.beta === 0 ? g.alpha * s : g.alpha * s + g.beta * c[ci];
      }
    }
  }
  return c;
}

function check(run: (g: GemmArgs) => void, cs: Case, label: string, seed: number): void {
  const g = makeArgs(cs, seed);
  const want = naive(g);
  run(g);
  for (let i = 0; i < want.length; i++) {
    const w = want[i], got = g.c[i];
    if (!(Math.abs(got - w) <= 1e-4 + 1e-4 * Math.abs(w))) {
      assert.fail(`${label} ${JSON.stringify(cs)}: c[${i}] = ${got}, want ${w}`);
    }
  }
}

const CASES: Case[] = [
  { m: 1, n: 1, k: 1 },
  { m: 3, n: 5, k: 7 },
  { m: 12, n: 32, k: 16 },
  { m: 13, n: 33, k: 17 },
  { m: 25, n: 65, k: 3 },
  { m: 1, n: 100, k: 50 },
  { m: 1, n: 37, k: 1000 },
  { m: 1, n: 300, k: 200, transA: true, padA: 3 },
  { m: 1, n: 129, k: 300, transB: true },
  { m: 100, n: 1, k: 50 },
  { m: 29, n: 1, k: 1000, transA: true },
  { m: 70, n: 1, k: 90, transB: true, padB: 2, padC: 4, beta: 0.5 },
  { m: 37, n: 70, k: 400 },
  { m: 64, n: 64, k: 64, transA: true, transB: true },
  { m: 130, n: 97, k: 385, transB: true, alpha: -1.5, beta: 0.25 },
  { m: 45, n: 600, k: 800, alpha: 0.5, beta: 1, padA: 1, padB: 5, padC: 7 },
  { m: 200, n: 300, k: 20, transA: true, off: 11 },
  { m: 5, n: 700, k: 3, beta: 2 },
  { m: 1600, n: 40, k: 20 },
  // packed A exceeds one M block (2^21 floats): several blocks, double-buffered
  { m: 600, n: 5, k: 3600, beta: 0.5 },
  { m: 300, n: 7, k: 7200, transA: true, transB: true },
  { m: 40, n: 20, k: 0, beta: 0.5 },
  { m: 0, n: 20, k: 10 },
  { m: 20, n: 0, k: 10 },
  { m: 7, n: 9, k: 11, batch: 5 },
  { m: 20, n: 30, k: 40, batch: 8, transA: true, gapA: 3, gapB: 'shared', gapC: 5 },
  { m: 33, n: 17, k: 64, batch: 3, transB: true, gapA: 'shared', beta: 1 },
  { m: 1, n: 50, k: 60, batch: 4, gapB: 'shared' },
  { m: 60, n: 70, k: 80, batch: 3, gapA: 'shared', gapB: 'shared', alpha: 2, beta: -1 },
  // C batches overlap (stride smaller than one C): must equal the sequential loop
  { m: 4, n: 6, k: 5, batch: 3, gapC: -12, beta: 1 },
];

test('native gemm matches a float64 triple loop on every ISA path and thread count', { skip }, () => {
  const a = addon!;
  const run = nativeGemm(a);
  const prevIsa = a.isa() as 'avx512' | 'avx2' | 'scalar';
  const prevThreads = a.getThreads();
  try {
    for (const isa of isasFor(a)) {
      a.setIsa(isa);
      assert.equal(a.isa(), isa);
      for (const threads of [1, 2]) {
        a.setThreads(threads);
        CASES.forEach((cs, i) => check(run, cs, `${isa}/${threads}t`, i + 1));
      }
    }
  } finally {
    a.setIsa(prevIsa);
    a.setThreads(prevThreads);
  }
});

test('native gemm: beta 0 ignores NaN in C; alpha scales', { skip }, () => {
  const a = addon!;
  const run = nativeGemm(a);
  const prevIsa = a.isa() as 'avx512' | 'avx2' | 'scalar';
  for (const isa of isasFor(a)) {
    a.setIsa(isa);
    for (const [m, n, k] of [[1, 40, 30], [40, 1, 30], [30, 40, 50]]) {
      const g = makeArgs({ m, n, k, alpha: 3 }, 7);
      g.c.fill(NaN);
      run(g);
      const want = naive({ ...g, c: new Float32Array(g.c.length) });
      for (let i = 0; i < g.c.length; i++) {
        const inside = Math.floor(i / g.ldc) < m && i % g.ldc < n;
        if (inside) assert.ok(Math.abs(g.c[i] - want[i]) <= 1e-4 + 1e-4 * Math.abs(want[i]), `${isa} ${m}x${n}x${k} c[${i}]`);
        else assert.ok(Number.isNaN(g.c[i]), `${isa}: element ${i} outside C was written`);
      }
    }
  }
  a.setIsa(prevIsa);
});

test('CHIMERA_ISA selects the path at load', { skip }, () => {
  const path = loadAddon().path;
  for (const isa of isasFor(addon!)) {
    const r = spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(path)}).isa())`], {
      env: { ...process.env, CHIMERA_ISA: isa },
      encoding: 'utf8',
    });
    assert.equal(r.stdout.trim(), isa, r.stderr);
  }
});

test('native gemm rejects bad arguments (TS checks and the addon itself)', { skip }, () => {
  const a = addon!;
  const run = nativeGemm(a);
  const ok = makeArgs({ m: 4, n: 5, k: 6, batch: 2 }, 3);
  const bad: [string, Partial<GemmArgs>][] = [
    ['short A', { a: new Float32Array(10) }],
    ['short B', { b: new Float32Array(ok.b.length - 4) }],
    ['short C', { c: new Float32Array(ok.c.length - 4) }],
    ['negative m', { m: -1 }],
    ['fractional k', { k: 2.5 }],
    ['NaN n', { n: NaN }],
    ['lda too small', { lda: 3 }],
    ['offset past the end', { cOff: ok.c.length }],
    ['batch too large', { batch: 3 }],
    ['strideC 0 with batch 2', { strideC: 0 }],
    ['huge sizes', { m: 2 ** 40, n: 2 ** 40 }],
    ['wrong array type', { a: new Float64Array(ok.a.length) as unknown as Float32Array }],
  ];
  for (const [what, over] of bad) {
    const g = { ...ok, ...over };
    assert.throws(() => run(g), /^Error: gemm: /, `TS path: ${what}`);
    assert.throws(
      () => a.gemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.beta, g.a, g.aOff, g.lda, g.strideA, g.b, g.bOff, g.ldb, g.strideB, g.c, g.cOff, g.ldc, g.strideC, g.batch),
      /^Error: gemm: /,
      `addon: ${what}`,
    );
  }
  assert.throws(() => (a.gemm as unknown as (...x: unknown[]) => void)(false, false, 1), /gemm: missing argument/);
  assert.throws(() => a.setThreads(0), /setThreads/);
  assert.throws(() => a.setIsa('sse9' as 'scalar'), /setIsa: unknown ISA/);
  // The valid call still works afterwards.
  run(ok);
});
