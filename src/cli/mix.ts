// `chimera mix --a DIR_A --b DIR_B --beta B --out DIR_C [--only REGEX] [--json]`
// `chimera mix --a A --b B --out C --search 0,0.25,0.5,0.75,1 --data VAL --task vqa [--limit N] [--max-tokens N] [--json]`:
// θ = B·θ_a + (1−B)·θ_b; --search scores each candidate with the eval harness (one JSON line
// each) and keeps the best in --out.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';
import { mixCheckpoints } from '../train/mix.ts';
import { EVAL_TASKS, type EvalTask } from '../eval/harness.ts';
import { headlineMetric, runModelEval } from './eval.ts';

export async function mixCommand(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['a', 'b', 'beta', 'out', 'only', 'search', 'data', 'task', 'limit', 'max-tokens', 'root'], ['json']);
  const a = strFlag(p, 'a', ''), b = strFlag(p, 'b', ''), out = strFlag(p, 'out', '');
  if (!a || !b || !out) throw new CliError('--a DIR_A, --b DIR_B and --out DIR_C are required');
  for (const [f, d] of [['a', a], ['b', b]] as const) if (!fs.existsSync(d)) throw new CliError(`--${f}: no such folder '${d}'`);
  let only: RegExp | undefined;
  if (p.flags.has('only')) {
    try { only = new RegExp(strFlag(p, 'only', '')); } catch (e) { throw new CliError(`--only: bad regular expression (${(e as Error).message})`); }
  }
  const parseBeta = (s: string): number => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v) || v < 0 || v > 1) throw new CliError(`beta must be a number in [0, 1], got '${s}'`);
    return v;
  };
  const json = p.flags.has('json');
  if (!p.flags.has('search')) {
    if (!p.flags.has('beta')) throw new CliError('--beta B is required (or --search b1,b2,...)');
    const beta = parseBeta(strFlag(p, 'beta', ''));
    const r = mixCheckpoints(a, b, out, beta, only ? { only } : {});
    process.stdout.write(json ? `${JSON.stringify(r)}\n` : `mixed ${r.mixed} tensors (copied ${r.copied}) with beta ${beta} -> ${out}\n`);
    return;
  }
  const betas = strFlag(p, 'search', '').split(',').map(parseBeta);
  if (betas.length === 0) throw new CliError('--search needs at least one beta');
  const data = strFlag(p, 'data', '');
  if (!data) throw new CliError('--search needs --data VAL (a conversation file) and --task');
  const task = strFlag(p, 'task', 'vqa', EVAL_TASKS) as EvalTask;
  const limit = intFlag(p, 'limit', 0, 0);
  const maxTokens = intFlag(p, 'max-tokens', 32, 1, 4096);
  const root = p.flags.has('root') ? strFlag(p, 'root', '') : undefined;
  const tmpRoot = fs.mkdtempSync(path.join(path.dirname(path.resolve(out)), '.mix-search-'));
  let best: { beta: number; score: number; dir: string } | null = null;
  try {
    for (const [i, beta] of betas.entries()) {
      const dir = path.join(tmpRoot, `cand-${i}`);
      mixCheckpoints(a, b, dir, beta, only ? { only } : {});
      const run = await runModelEval(dir, data, task, { limit, maxTokens, ...(root !== undefined ? { root } : {}) });
      const [metric, score] = headlineMetric(task, run.metrics);
      process.stdout.write(`${JSON.stringify({ beta, task, [metric]: score, ...run.metrics })}\n`);
      if (best === null || score > best.score) {
        if (best) fs.rmSync(best.dir, { recursive: true, force: true });
        best = { beta, score, dir };
      } else fs.rmSync(dir, { recursive: true, force: true });
    }
    fs.mkdirSync(out, { recursive: true });
    for (const f of fs.readdirSync(best!.dir)) fs.renameSync(path.join(best!.dir, f), path.join(out, f));
    process.stdout.write(`${JSON.stringify({ best_beta: best!.beta, score: best!.score, out })}\n`);
    if (!json) process.stderr.write(`best beta ${best!.beta} -> ${out}${os.EOL}`);
  } finally {
    fs.rmSync(tmpRoot, { recursive: true, force: true });
  }
}
