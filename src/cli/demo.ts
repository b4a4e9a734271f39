// `chimera demo`: trains a tiny causal transformer from nothing to sort digit sequences, with
// a progress line, then shows held-out examples and exact-match accuracy. (The multimodal demo
// replaces this once the SPHINX pieces land; the engine path it exercises stays the same.)

import { useBackend } from '../backends/index.ts';
import { backward, noGrad } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import { Rng } from '../engine/rng.ts';
import { tidy } from '../engine/tensor.ts';
import { initTinyGpt, tinyGptForward, type TinyGptConfig } from '../models/tiny-gpt.ts';
import { AdamW, clipGradNorm, paramsOf } from '../train/optim.ts';
import { Progress } from '../train/progress.ts';
import { cosineWithWarmup } from '../train/schedule.ts';
import { intFlag, parseArgs, strFlag } from './args.ts';

const DIGITS = 10, SEP = 10, LEN = 8;

/** A batch of [digits..., SEP, sorted digits...]; targets are -100 except on the sorted half. */
export function sortingBatch(rng: Rng, batch: number): { tokens: Int32Array; targets: Int32Array; T: number } {
  const T = 2 * LEN + 1;
  const tokens = new Int32Array(batch * T), targets = new Int32Array(batch * T).fill(-100);
  for (let b = 0; b < batch; b++) {
    const xs = Array.from({ length: LEN }, () => rng.int(DIGITS));
    const sorted = [...xs].sort((p, q) => p - q);
    const seq = [...xs, SEP, ...sorted];
    for (let t = 0; t < T; t++) tokens[b * T + t] = seq[t]!;
    // position t predicts token t+1; supervise predictions of the sorted half.
    for (let t = LEN; t < T - 1; t++) targets[b * T + t] = seq[t + 1]!;
  }
  return { tokens, targets, T };
}

export async function demo(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['steps', 'backend', 'seed', 'batch'], ['json']);
  const steps = intFlag(p, 'steps', 400, 1, 1_000_000);
  const batch = intFlag(p, 'batch', 64, 1, 4096);
  const seed = intFlag(p, 'seed', 0);
  const be = useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const log = (s: string): void => void process.stdout.write(s + '\n');
  const cfg: TinyGptConfig = { vocab: DIGITS + 1, width: 64, heads: 4, layers: 2, context: 2 * LEN + 1 };
  log(`chimera demo: a ${cfg.layers}-layer transformer (width ${cfg.width}) learns to sort ${LEN} digits; backend ${be.name}`);
  const model = initTinyGpt(cfg, seed);
  const params = paramsOf(model);
  const opt = new AdamW(params, { lr: 3e-3, weightDecay: 0.01 });
  const sched = cosineWithWarmup({ lr: 3e-3, warmupSteps: Math.min(50, steps), totalSteps: steps, minLr: 3e-4 });
  const rng = new Rng(seed + 1);
  const progress = new Progress(process.stderr, { every: 50, forceJson: p.flags.has('json') });
  const t0 = performance.now();
  let lastLoss = NaN;
  for (let step = 0; step < steps; step++) {
    const { tokens, targets, T } = sortingBatch(rng, batch);
    opt.lr = sched(step);
    lastLoss = tidy(() => {
      const x = F.fromData(tokens, [batch, T], 'i32');
      const y = F.fromData(targets, [batch, T], 'i32');
      const logits = tinyGptForward(model, cfg, x);
      const loss = F.crossEntropy(logits, y);
      backward(loss);
      return F.item(loss);
    });
    clipGradNorm(params, 1.0);
    opt.step();
    opt.zeroGrad();
    const el = (performance.now() - t0) / 1000;
    progress.update({ step: step + 1, total: steps, loss: lastLoss, tokensPerS: ((step + 1) * batch * (2 * LEN + 1)) / el, lr: opt.lr });
  }
  // Held-out evaluation: greedy decoding of the sorted half.
  const evalRng = new Rng(seed + 999);
  const n = 200;
  let exact = 0;
  const shown: string[] = [];
  noGrad(() => {
    for (let i = 0; i < n; i++) {
      const { tokens } = sortingBatch(evalRng, 1);
      const seq = Array.from(tokens.subarray(0, LEN + 1));
      for (let t = 0; t < LEN; t++) {
        const next = tidy(() => {
          const x = F.fromData(Int32Array.from(seq), [1, seq.length], 'i32');
          const logits = tinyGptForward(model, cfg, x); // [1, t, V]
          const last = F.slice(logits, 1, seq.length - 1, seq.length);
          return F.item(F.argmax(last, -1));
        });
        seq.push(next);
      }
      const want = Array.from(tokens.subarray(LEN + 1));
      const got = seq.slice(LEN + 1);
      if (got.every((d, j) => d === want[j])) exact++;
      if (shown.length < 4) shown.push(`  ${seq.slice(0, LEN).join(' ')}  ->  ${got.join(' ')}${got.every((d, j) => d === want[j]) ? '' : `   (want ${want.join(' ')})`}`);
    }
  });
  const secs = (performance.now() - t0) / 1000;
  log(`final training loss ${lastLoss.toFixed(4)} after ${steps} steps (${secs.toFixed(1)} s)`);
  log('held-out examples:');
  for (const s of shown) log(s);
  log(`exact-match accuracy on ${n} held-out sequences: ${((100 * exact) / n).toFixed(1)}%`);
  if (p.flags.has('json')) log(JSON.stringify({ steps, final_loss: lastLoss, exact_match: exact / n, seconds: secs, backend: be.name }));
}
