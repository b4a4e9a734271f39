// `chimera bench train-step` and `chimera bench decode`: LLaMA throughput on a Hugging Face
// config.json with random weights (bench/llama.sh runs the same on PyTorch).
//   train-step: AdamW (lr 1e-4) steps on random tokens, next-token cross-entropy; one warm-up
//               step, then the median of N -> {"tokens_per_s","step_ms"}
//   decode:     greedy decoding of N tokens from a 1-token prompt with the KV cache (after a
//               short warm-up run) -> {"tokens_per_s"}

import * as fs from 'node:fs';
import * as os from 'node:os';
import { useBackend } from '../backends/index.ts';
import { backward } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import { Rng } from '../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../engine/tensor.ts';
import { flatten } from '../engine/tree.ts';
import { initLlama, llamaForward, LlamaModel, parseLlamaConfig, type LlamaConfig, type LlamaParams } from '../models/llama.ts';
import { AdamW, paramsOf } from '../train/optim.ts';
import { CliError, intFlag, parseArgs, strFlag, type Parsed } from './args.ts';

const BOS = 1;

function setup(p: Parsed): { cfg: LlamaConfig; backend: string; threads: number; seed: number } {
  const file = strFlag(p, 'config', '');
  if (file === '') throw new CliError('--config FILE (a Hugging Face llama config.json) is required');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const mt = json !== null && typeof json === 'object' ? (json as Record<string, unknown>)['model_type'] : undefined;
  if (mt !== undefined && mt !== 'llama' && mt !== 'mistral') throw new Error(`${file}: model_type ${JSON.stringify(mt)} is not a llama config`);
  const cfg = parseLlamaConfig(json, file);
  const be = useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const threads = intFlag(p, 'threads', Math.min(2, os.availableParallelism()), 1, 256);
  be.setThreads(threads);
  return { cfg, backend: be.name, threads: be.getThreads(), seed: intFlag(p, 'seed', 0) };
}

/** CPU time of the whole process (all threads) in ms: with one thread, a load-robust cost. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function freeParams(params: LlamaParams): void {
  for (const t of flatten<Tensor>(params).values()) t.dispose();
}

function print(json: boolean, row: Record<string, unknown>, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(row)}\n` : `${text}\n`);
}

export async function benchTrainStep(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['config', 'batch', 'seq', 'steps', 'backend', 'threads', 'seed'], ['json']);
  const B = intFlag(p, 'batch', 4, 1, 4096);
  const T = intFlag(p, 'seq', 256, 2, 1 << 20);
  const steps = intFlag(p, 'steps', 5, 1, 100_000);
  const { cfg, backend, threads, seed } = setup(p);
  if (T > cfg.maxPositions) throw new CliError(`--seq ${T} exceeds max_position_embeddings ${cfg.maxPositions}`);
  const rng = new Rng(seed);
  const params = initLlama(cfg, rng);
  const opt = new AdamW(paramsOf(params), { lr: 1e-4 });
  const V = cfg.vocabSize;
  const times: number[] = [], cpu: number[] = [];
  let loss = NaN;
  try {
    for (let s = 0; s <= steps; s++) {
      // Random tokens; position t predicts token t+1, the last position is ignored (-100).
      const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
      for (let i = 0; i < ids.length; i++) ids[i] = rng.int(V);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T - 1; t++) targets[b * T + t] = ids[b * T + t + 1]!;
        targets[b * T + T - 1] = -100;
      }
      const t0 = performance.now(), c0 = cpuMs();
      loss = tidy(() => {
        const logits = llamaForward(params, cfg, fromData(ids, [B, T], 'i32')); // [B, T, V]
        const l = F.crossEntropy(logits, fromData(targets, [B, T], 'i32'));
        backward(l);
        return F.item(l);
      });
      opt.step();
      opt.zeroGrad();
      const dt = performance.now() - t0;
      if (s > 0) { times.push(dt); cpu.push(cpuMs() - c0); } // step 0 is the warm-up
    }
  } finally {
    freeParams(params);
  }
  const stepMs = median(times);
  const tokensPerS = (B * T) / (stepMs / 1000);
  print(p.flags.has('json'), { bench: 'train-step', tokens_per_s: tokensPerS, step_ms: stepMs, step_cpu_ms: median(cpu), batch: B, seq: T, steps, loss, backend, threads },
    `train-step B=${B} T=${T}: ${tokensPerS.toFixed(0)} tokens/s, ${stepMs.toFixed(1)} ms/step (median of ${steps}; loss ${loss.toFixed(3)}; ${backend}, ${threads} threads)`);
}

/** Greedy decode of n tokens from [BOS] with a fresh cache; returns the tokens. */
function greedy(model: LlamaModel, n: number): number[] {
  const cache = model.newCache(1, n + 1);
  const out: number[] = [];
  try {
    let tok = BOS;
    for (let i = 0; i < n; i++) {
      tok = tidy(() => {
        const logits = model.forward(fromData(Int32Array.of(tok), [1, 1], 'i32'), cache, { lastOnly: true }); // [1, 1, V]
        return F.item(F.argmax(logits, -1));
      });
      out.push(tok);
    }
  } finally {
    cache.dispose();
  }
  return out;
}

export async function benchDecode(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['config', 'tokens', 'backend', 'threads', 'seed'], ['json']);
  const n = intFlag(p, 'tokens', 128, 1, 1 << 20);
  const { cfg, backend, threads, seed } = setup(p);
  if (n + 1 > cfg.maxPositions) throw new CliError(`--tokens ${n} exceeds max_position_embeddings ${cfg.maxPositions}`);
  if (BOS >= cfg.vocabSize) throw new CliError(`vocab_size ${cfg.vocabSize} is too small`);
  const params = initLlama(cfg, new Rng(seed));
  let seconds: number, cpu: number;
  try {
    const model = new LlamaModel(params, cfg);
    greedy(model, Math.min(8, n)); // warm-up
    const t0 = performance.now(), c0 = cpuMs();
    greedy(model, n);
    seconds = (performance.now() - t0) / 1000;
    cpu = cpuMs() - c0;
  } finally {
    freeParams(params);
  }
  const tokensPerS = n / seconds;
  print(p.flags.has('json'), { bench: 'decode', tokens_per_s: tokensPerS, ms_per_token: (seconds * 1000) / n, cpu_ms_per_token: cpu / n, tokens: n, backend, threads },
    `decode ${n} tokens: ${tokensPerS.toFixed(1)} tokens/s, ${((seconds * 1000) / n).toFixed(2)} ms/token (${backend}, ${threads} threads)`);
}
