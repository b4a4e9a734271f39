// `chimera bench ops [--json] [--seconds 0.3] [--threads 1] [--backend both|native|reference]`:
// per-call cost (µs) of small kernels on the native and reference backends, N-API call overhead
// included. These are the sizes of one decode step of a small model, where per-call overhead
// dominates. Each op runs in batches of ~1 ms for --seconds; the reported cost is the fastest
// batch's mean (robust to other processes sharing the cores).

import type { AttentionArgs, Backend } from '../engine/backend.ts';
import { createNativeBackend, nativeLoadError } from '../backends/native/index.ts';
import { referenceBackend } from '../backends/reference/index.ts';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';

export interface OpBenchRow {
  op: string;
  /** Elements of the main operand. */
  n: number;
  backend: string;
  us_per_call: number;
}

interface OpCase {
  op: string;
  n: number;
  run: (b: Backend) => void;
}

function fill(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = lo + (hi - lo) * (s / 4294967296);
  }
  return a;
}

function cases(): OpCase[] {
  const N = 4096;
  const x = fill(N, 1), x2 = fill(N, 2), y = new Float32Array(N);
  const w = fill(N, 3, 0.5, 1.5), rstd = new Float32Array(1);
  const flat = [N], unit = [1];
  // rope on [8, 1, 64]
  const rx = fill(8 * 64, 4), ry = new Float32Array(8 * 64), cos = fill(32, 5), sin = fill(32, 6);
  // decode-step attention: q [1, 8, 1, 64] against 128 cached keys
  const Tk = 128;
  const att: AttentionArgs = {
    q: fill(8 * 64, 7), k: fill(8 * Tk * 64, 8), v: fill(8 * Tk * 64, 9),
    B: 1, H: 8, Hkv: 8, Tq: 1, Tk, D: 64, Dv: 64, scale: 0.125, causal: true,
    mask: null, maskStrideB: 0, maskStrideH: 0, maskStrideQ: 0,
  };
  const aout = new Float32Array(8 * 64), alse = new Float32Array(8);
  // adamw state
  const p = fill(N, 10), g = fill(N, 11, -1e-2, 1e-2), m = new Float32Array(N), v = new Float32Array(N);
  // 64 x 64 transpose
  const t = fill(N, 12), tt = new Float32Array(N);
  return [
    { op: 'add', n: N, run: (b) => b.binary('add', x, 0, unit, x2, 0, unit, flat, y) },
    { op: 'mul', n: N, run: (b) => b.binary('mul', x, 0, unit, x2, 0, unit, flat, y) },
    { op: 'exp', n: N, run: (b) => b.unary('exp', x, y, 0, 0) },
    { op: 'gelu', n: N, run: (b) => b.unary('gelu', x, y, 0, 0) },
    { op: 'softmax', n: N, run: (b) => b.softmax(x, y, 1, N, false) },
    { op: 'rmsnorm', n: N, run: (b) => b.rmsNorm(x, w, y, rstd, 1, N, 1e-6) },
    { op: 'rope', n: 8 * 64, run: (b) => b.rope(rx, ry, cos, sin, 8, 1, 64, 64, false, false) },
    { op: 'attention_decode', n: 8 * Tk * 64, run: (b) => b.attention(att, aout, alse) },
    { op: 'adamw', n: N, run: (b) => b.adamw(p, g, m, v, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001) },
    { op: 'transpose_64x64', n: N, run: (b) => b.copyStrided(t, 0, [64, 64], [1, 64], tt) },
  ];
}

/** µs per call: the fastest ~1 ms batch within a window of about `seconds` (after a warm-up). */
function time(run: () => void, seconds: number): number {
  const w0 = performance.now();
  do run(); while (performance.now() - w0 < Math.min(50, seconds * 250));
  // Calibrate a batch that takes ~1 ms so that timer reads do not dominate.
  let batch = 1;
  for (;;) {
    const s = performance.now();
    for (let i = 0; i < batch; i++) run();
    if (performance.now() - s > 1 || batch > 1 << 20) break;
    batch *= 2;
  }
  let best = Infinity;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < seconds * 1000) {
    const s = now;
    for (let i = 0; i < batch; i++) run();
    now = performance.now();
    best = Math.min(best, (now - s) / batch);
  }
  return best * 1000;
}

export async function benchOps(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['seconds', 'threads', 'backend'], ['json']);
  const json = p.flags.get('json') === true;
  const seconds = Number(strFlag(p, 'seconds', '0.3'));
  if (!(seconds > 0 && seconds <= 60)) throw new CliError('--seconds must be in (0, 60]');
  const threads = intFlag(p, 'threads', 1, 1, 256);
  const which = strFlag(p, 'backend', 'both', ['both', 'native', 'reference']);

  const backends: Backend[] = [];
  if (which !== 'reference') {
    const nb = createNativeBackend();
    if (nb === null) {
      if (which === 'native') throw new CliError(`bench ops: native backend unavailable: ${nativeLoadError() ?? 'unknown'}`);
      if (!json) console.log(`native backend unavailable (${nativeLoadError() ?? 'unknown'}); reference only`);
    } else backends.push(nb);
  }
  if (which !== 'native') backends.push(referenceBackend);

  const rows: OpBenchRow[] = [];
  for (const b of backends) {
    const prev = b.getThreads();
    b.setThreads(threads);
    try {
      for (const c of cases()) {
        const row: OpBenchRow = { op: c.op, n: c.n, backend: b.name, us_per_call: time(() => c.run(b), seconds) };
        rows.push(row);
        if (json) console.log(JSON.stringify({ ...row, us_per_call: Math.round(row.us_per_call * 1000) / 1000 }));
      }
    } finally {
      b.setThreads(prev);
    }
  }
  if (!json) {
    console.log(`per-call cost in µs (threads ${threads}; fastest ~1 ms batch within ~${seconds} s per op)`);
    const names = backends.map((b) => b.name);
    console.log(`${'op'.padEnd(18)}${'n'.padStart(8)}${names.map((n) => n.padStart(12)).join('')}${names.length === 2 ? 'speedup'.padStart(10) : ''}`);
    for (const c of cases()) {
      const us = names.map((n) => rows.find((r) => r.op === c.op && r.backend === n)?.us_per_call ?? NaN);
      const speed = us.length === 2 ? `${(us[1] / us[0]).toFixed(1)}x`.padStart(10) : '';
      console.log(`${c.op.padEnd(18)}${String(c.n).padStart(8)}${us.map((u) => u.toFixed(3).padStart(12)).join('')}${speed}`);
    }
  }
}
