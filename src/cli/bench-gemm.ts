// `chimera bench gemm [--json] [--shapes MxNxK,...] [--threads 1,2] [--seconds 0.5] [--trans nn|nt|tn|tt]`:
// sgemm throughput of the native addon (loaded directly, not through the engine).

import { loadAddon } from '../backends/native/addon.ts';
import { nativeGemm, setNativeThreads } from '../backends/native/gemm.ts';
import type { GemmArgs } from '../engine/backend.ts';
import { CliError, parseArgs, strFlag } from './args.ts';

const DEFAULT_SHAPES = '1024x1024x1024,512x3072x768,1x4096x4096';

export interface GemmBenchRow {
  m: number; n: number; k: number; threads: number;
  /** Mean over the timed window. */
  gflops: number;
  /** Fastest single call. */
  best: number;
  reps: number;
  isa: string;
  trans: string;
}

function parseList(s: string, what: string, re: RegExp): string[] {
  const parts = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const p of parts) if (!re.test(p)) throw new CliError(`--${what}: bad entry '${p}'`);
  if (parts.length === 0) throw new CliError(`--${what} is empty`);
  return parts;
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

export async function benchGemm(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['shapes', 'threads', 'seconds', 'trans'], ['json']);
  const json = p.flags.get('json') === true;
  const shapes = parseList(strFlag(p, 'shapes', DEFAULT_SHAPES), 'shapes', /^\d+x\d+x\d+$/).map((s) => s.split('x').map(Number) as [number, number, number]);
  const threads = parseList(strFlag(p, 'threads', '1,2'), 'threads', /^\d+$/).map(Number);
  const seconds = Number(strFlag(p, 'seconds', '0.5'));
  if (!(seconds > 0 && seconds <= 60)) throw new CliError('--seconds must be in (0, 60]');
  const trans = strFlag(p, 'trans', 'nn', ['nn', 'nt', 'tn', 'tt']);
  const transA = trans[0] === 't', transB = trans[1] === 't';

  const { addon, error } = loadAddon();
  if (addon === null) throw new CliError(`bench gemm needs the native addon: ${error?.message ?? 'not loaded'}`);
  const gemm = nativeGemm(addon);
  const prevThreads = addon.getThreads();
  const rows: GemmBenchRow[] = [];
  try {
    for (const [m, n, k] of shapes) {
      const args: GemmArgs = {
        transA, transB, m, n, k, alpha: 1, beta: 0,
        a: fill(m * k, 1), aOff: 0, lda: transA ? m : k, strideA: 0,
        b: fill(k * n, 2), bOff: 0, ldb: transB ? k : n, strideB: 0,
        c: new Float32Array(m * n), cOff: 0, ldc: n, strideC: 0, batch: 1,
      };
      const flop = 2 * m * n * k;
      for (const t of threads) {
        setNativeThreads(addon, t);
        // Warm up: buffers, pool threads, caches, clocks.
        const w0 = performance.now();
        do gemm(args); while (performance.now() - w0 < Math.min(0.2, seconds / 2) * 1000);
        let reps = 0, best = Infinity;
        const t0 = performance.now();
        let now = t0;
        while (now - t0 < seconds * 1000 || reps < 3) {
          const s = now;
          gemm(args);
          now = performance.now();
          best = Math.min(best, now - s);
          reps++;
        }
        const row: GemmBenchRow = { m, n, k, threads: t, gflops: flop * reps / ((now - t0) / 1000) / 1e9, best: flop / (best / 1000) / 1e9, reps, isa: addon.isa(), trans };
        rows.push(row);
        if (json) console.log(JSON.stringify({ ...row, gflops: round(row.gflops), best: round(row.best) }));
      }
    }
  } finally {
    addon.setThreads(prevThreads);
  }
  if (!json) {
    console.log(`native sgemm (${rows[0]?.isa ?? '?'}, ${trans}), GFLOP/s: mean over >= ${seconds} s, best single call`);
    console.log('shape (MxNxK)       threads   GFLOP/s      best');
    for (const r of rows) {
      console.log(`${`${r.m}x${r.n}x${r.k}`.padEnd(20)}${String(r.threads).padStart(7)}${r.gflops.toFixed(1).padStart(10)}${r.best.toFixed(1).padStart(10)}`);
    }
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
