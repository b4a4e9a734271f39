// Checkpoints: a run interrupted and resumed (twice, across a stage boundary, with gradient
// accumulation, a file-backed data sampler and cached images) ends bit-identical to an
// uninterrupted one; dropping the data position breaks it; a kill -9 at random moments during
// saves never leaves a checkpoint that resume would load half-written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { flatten } from '../src/engine/tree.ts';
import type { Tensor } from '../src/engine/tensor.ts';
import { loadModel } from '../src/models/load.ts';
import type { VlmConfig, VlmParams } from '../src/models/vlm/model.ts';
import { ConversationData, ImageCache, type TrainData } from '../src/train/batches.ts';
import { cleanCheckpointTemps, loadLatestCheckpoint, readCheckpoint } from '../src/train/checkpoint.ts';
import { parseTrainConfig, type TrainConfig } from '../src/train/stages.ts';
import { snapshotParams, Trainer, type TrainResult } from '../src/train/trainer.ts';
import { bitwiseDiff, tmpDir, writeCorpus } from './helpers/train.ts';
import { saverValue } from './helpers/train-saver.ts';
import { tinyModel, tinyTokenizer } from './helpers/vlm.ts';

const corpusDir = tmpDir('train-resume-data');
const corpus = writeCorpus(corpusDir, 6);

const CONFIG = {
  seed: 3, save_every: 2, keep_last: 2,
  stages: [
    { stage: 'mm_stage1', steps: 3, lr: 5e-3, warmup_steps: 1, batch_size: 2, grad_accum: 2 },
    { stage: 'finetune', steps: 3, lr: 2e-3, warmup_steps: 1, batch_size: 2, grad_accum: 2, weight_decay: 0.01 },
  ],
};

async function run(out: string, config: TrainConfig, o: { resume?: boolean; stopAfter?: number; seed?: number; forgetData?: boolean } = {}): Promise<{ res: TrainResult; params: Map<string, Float32Array>; losses: number[] }> {
  let configJson: Record<string, unknown> = {};
  const model = tinyModel('sphinx-tiny', o.seed ?? 0, (cfg) => { configJson = structuredClone(cfg); });
  const tokenizer = tinyTokenizer();
  const cache = new ImageCache(model);
  const file = await corpus;
  const losses: number[] = [];
  const tr = new Trainer({
    out, model, configJson, config, progress: null, exportModel: false,
    ...(o.resume ? { resume: true } : {}), ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}),
    data: async (stage, i): Promise<TrainData> => {
      const d = await ConversationData.open({ path: file }, { model, tokenizer, batchSize: stage.batchSize, seed: config.seed + i, cache });
      if (o.forgetData) d.restore = () => {};
      return d;
    },
    onStep: (m) => losses.push(m.loss),
  });
  const res = await tr.run();
  cache.dispose();
  return { res, params: snapshotParams(model), losses };
}

test('stop + resume + stop + resume is bit-identical to one run (weights, optimizer state, losses)', async () => {
  const config = parseTrainConfig(CONFIG);
  const straightOut = tmpDir('train-straight');
  const straight = await run(straightOut, config);
  assert.equal(straight.res.steps, 6);
  assert.ok(!straight.res.stopped);

  const out = tmpDir('train-split');
  const a = await run(out, config, { stopAfter: 2 });
  assert.ok(a.res.stopped);
  assert.equal(a.res.steps, 2);
  const b = await run(out, config, { resume: true, stopAfter: 4, seed: 99 }); // fresh random weights: the checkpoint must replace them
  assert.equal(b.res.resumedFrom, 2);
  assert.equal(b.res.steps, 4);
  const c = await run(out, config, { resume: true, seed: 7 });
  assert.equal(c.res.resumedFrom, 4);
  assert.equal(c.res.steps, 6);
  assert.deepEqual(bitwiseDiff(straight.params, c.params), []);
  assert.deepEqual([...a.losses, ...b.losses, ...c.losses], straight.losses);
  // The last checkpoints agree file for file on optimizer state and trainer state.
  const s = readCheckpoint(straight.res.checkpoint!), r = readCheckpoint(c.res.checkpoint!);
  assert.deepEqual(bitwiseDiff(s.optimizer, r.optimizer), []);
  assert.deepEqual(s.state, r.state);
  // Mid-stage checkpoints carry optimizer moments and the sampler position.
  const mid = readCheckpoint(path.join(out, 'checkpoints', 'step-00000004'));
  assert.equal(mid.state['stage_index'], 1);
  assert.equal(mid.state['stage_step'], 1);
  assert.ok(mid.optimizer.size > 0 && (mid.state['data'] as { step: number }).step === 2);
  // metrics.jsonl holds each step once
  const steps = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  assert.ok(fs.readFileSync(path.join(out, 'loss.svg'), 'utf8').includes('<polyline'));
  // The checkpoint is a model folder loadModel accepts.
  const m = await loadModel<VlmConfig, VlmParams>(c.res.checkpoint!);
  const leaves = flatten<Tensor>(m.params);
  assert.deepEqual(bitwiseDiff(new Map([...leaves].map(([k, t]) => [k, t.data])), c.params), []);

  // Ablation: resuming without the data position gives different weights.
  const out2 = tmpDir('train-ablate');
  await run(out2, config, { stopAfter: 4 });
  const d = await run(out2, config, { resume: true, forgetData: true });
  assert.notDeepEqual(bitwiseDiff(straight.params, d.params), []);

  // A changed config refuses to resume.
  const changed = parseTrainConfig({ ...CONFIG, seed: 4 });
  await assert.rejects(run(out, changed, { resume: true }), /the training config changed since this checkpoint/);
});

/** Spawns the saver, waits for its first save plus a random delay, kills it with SIGKILL; returns the saves it reported. */
function saveAndKill(root: string, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [new URL('./helpers/train-saver.js', import.meta.url).pathname, root], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '', timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (timer === null && out.includes('saved')) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') { reject(new Error(`saver exited with ${code ?? signal}: ${err}`)); return; }
      const saves = [...out.matchAll(/saved (\d+)\n/g)].map((m) => Number(m[1]));
      resolve(saves.length ? saves[saves.length - 1]! : 0);
    });
  });
}

test('kill -9 during checkpoint saves never leaves a half-written checkpoint that resume would load', async () => {
  const root = tmpDir('train-kill');
  let seed = 12345;
  const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  let lastStep = 0;
  for (let round = 0; round < 6; round++) {
    const reported = await saveAndKill(root, Math.floor(rand() * 700));
    const ck = loadLatestCheckpoint(root);
    assert.ok(ck !== null, `round ${round}: no loadable checkpoint after ${reported} saves`);
    assert.deepEqual(ck.warnings, [], `round ${round}`);
    assert.ok(ck.step >= reported, `round ${round}: latest is step ${ck.step} but the saver had completed save ${reported}`);
    assert.equal(ck.state['k'], ck.step);
    for (const [k, v] of ck.optimizer) assert.ok(v.every((x) => x === ck.step), `optimizer ${k} of save ${ck.step}`);
    const m = await loadModel(ck.dir);
    [...flatten<Tensor>(m.params).values()].forEach((t, j) => {
      assert.ok(t.data.every((x) => x === Math.fround(saverValue(ck.step, j))), `round ${round}: parameter ${j} does not hold save ${ck.step}`);
    });
    // Each saver restarts its count at 1: clear so steps stay comparable.
    lastStep = ck.step;
    cleanCheckpointTemps(root);
    const left = fs.readdirSync(path.join(root, 'checkpoints')).filter((f) => f.startsWith('.'));
    assert.deepEqual(left, [], `round ${round}: temporary folders left after cleaning`);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root);
  }
  assert.ok(lastStep > 0);
});
