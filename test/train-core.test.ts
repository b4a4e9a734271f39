// The staged trainer in memory: a tiny SPHINX memorises a few samples; each stage changes
// exactly its trainable parameters; frozen towers record no graph; gradient accumulation equals
// a bigger batch; SliME-style alternation and the MoE stage; bad configs name the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isGradEnabled } from '../src/engine/autograd.ts';
import { tidy, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { globToRegExp, type VlmModel } from '../src/models/vlm/model.ts';
import { SampleData } from '../src/train/batches.ts';
import { applyStage, parseTrainConfig, ConfigError, type TrainConfig } from '../src/train/stages.ts';
import { snapshotParams, Trainer, type TrainResult } from '../src/train/trainer.ts';
import type { StepMetrics } from '../src/train/metrics.ts';
import { memorySamples, tmpDir } from './helpers/train.ts';
import { tinyModel } from './helpers/vlm.ts';

async function trainMem(model: VlmModel, config: TrainConfig, n: number, shuffle = true): Promise<{ res: TrainResult; steps: StepMetrics[] }> {
  const samples = memorySamples(model, n);
  const steps: StepMetrics[] = [];
  const tr = new Trainer({ out: tmpDir('train-core'), model, configJson: {}, config, data: (s) => new SampleData(samples, s.batchSize, 0, shuffle), progress: null, exportModel: false, onStep: (m) => steps.push(m) });
  return { res: await tr.run(), steps };
}

/** Paths whose values changed between snapshots. */
function changed(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  return [...a.keys()].filter((k) => a.get(k)!.some((v, i) => v !== b.get(k)![i]));
}

function matching(model: VlmModel, globs: readonly string[]): string[] {
  const res = globs.map(globToRegExp);
  return [...flatten<Tensor>(model.params).keys()].filter((p) => res.some((r) => r.test(p)));
}

test('a tiny SPHINX memorises four samples (loss falls by more than half)', async () => {
  const model = tinyModel('sphinx-tiny');
  const config = parseTrainConfig({ stages: [{ stage: 'finetune', steps: 30, lr: 3e-3, warmup_steps: 3, batch_size: 4 }] });
  const { res, steps } = await trainMem(model, config, 4);
  assert.equal(res.steps, 30);
  const first = steps[0]!.loss, last = steps.slice(-3).reduce((a, s) => a + s.loss, 0) / 3;
  assert.ok(last < first * 0.5, `loss ${first} -> ${last}`);
  assert.ok(steps.every((s) => Number.isFinite(s.grad_norm) && s.tokens > 0 && s.lr > 0));
});

test('each preset stage changes exactly its trainable parameters; frozen ones keep a null grad', async () => {
  for (const stage of ['mm_stage1', 'finetune']) {
    const model = tinyModel('sphinx-tiny');
    const before = snapshotParams(model);
    const config = parseTrainConfig({ stages: [{ stage, steps: 2, lr: 1e-2, batch_size: 2 }] });
    await trainMem(model, config, 2);
    const expect = matching(model, model.config.info.stages[stage]!).sort();
    assert.deepEqual(changed(before, snapshotParams(model)).sort(), expect, stage);
    for (const [k, t] of flatten<Tensor>(model.params)) assert.equal(t.grad, null, `${k} grad after training`);
  }
});

/** Nodes and gradient-requiring leaves reachable from a tensor's graph. */
function graphOf(t: Tensor): { nodes: number; leaves: Set<Tensor> } {
  const seen = new Set<Tensor>(), leaves = new Set<Tensor>();
  let nodes = 0;
  const stack = [t];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (x.node === null) { if (x.requiresGrad) leaves.add(x); continue; }
    nodes++;
    for (const i of x.node.inputs) stack.push(i);
  }
  return { nodes, leaves };
}

test('frozen towers record no graph: the image embedding graph reaches only the bridge', () => {
  const model = tinyModel('llava-1.5');
  const img = memorySamples(model, 1)[0]!.images;
  const countFor = (globs: string[]): { nodes: number; leaves: string[] } => {
    applyStage(model, parseTrainConfig({ stages: [{ trainable: globs, steps: 1 }] }).stages[0]!);
    return tidy(() => {
      assert.ok(isGradEnabled());
      const g = graphOf(model.encodeImages(img)[0]!);
      const names = new Map([...flatten<Tensor>(model.params)].map(([k, t]) => [t, k]));
      return { nodes: g.nodes, leaves: [...g.leaves].map((t) => names.get(t) ?? '?') };
    });
  };
  const frozen = countFor(['mm_projector']);
  assert.ok(frozen.leaves.length > 0 && frozen.leaves.every((k) => k.startsWith('mm_projector.')), frozen.leaves.join(','));
  const all = countFor(['**']);
  assert.ok(all.leaves.some((k) => k.startsWith('vision_tower.')));
  assert.ok(frozen.nodes < 12 && all.nodes > 5 * frozen.nodes, `frozen graph ${frozen.nodes} nodes, trainable tower ${all.nodes}`);
  for (const t of flatten<Tensor>(model.params).values()) assert.equal(t.grad, null);
});

test('gradient accumulation of 2 x 2 equals one batch of 4', async () => {
  const run = async (batch: number, accum: number): Promise<Map<string, Float32Array>> => {
    const model = tinyModel('llava-1.5');
    const config = parseTrainConfig({ stages: [{ stage: 'finetune', steps: 3, lr: 1e-3, batch_size: batch, grad_accum: accum, clip_grad_norm: 0 }] });
    await trainMem(model, config, 4, false);
    return snapshotParams(model);
  };
  const a = await run(4, 1), b = await run(2, 2);
  let worst = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  assert.ok(worst < 2e-5, `max |diff| ${worst}`);
  // and differs from a run that saw only half the data per step
  const c = await run(2, 1);
  let diff = 0;
  for (const [k, x] of a) { const y = c.get(k)!; for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i]! - y[i]!)); }
  assert.ok(diff > 100 * worst, `batch 2 vs 4 differ by ${diff}`);
});

test('SliME-style alternation: rounds of stages, each changing only its own parameters', async () => {
  const model = tinyModel('llava-1.5');
  const config = parseTrainConfig({ stages: [{ alternate: [{ name: 'projector', trainable: ['mm_projector'], steps: 1, lr: 1e-2 }, { name: 'llm', trainable: ['language_model.model.layers'], steps: 1, lr: 1e-2 }], rounds: 2 }] });
  assert.deepEqual(config.stages.map((s) => s.name), ['projector@1', 'llm@1', 'projector@2', 'llm@2']);
  const seen: string[][] = [];
  let prev = snapshotParams(model);
  const samples = memorySamples(model, 2);
  const tr = new Trainer({
    out: tmpDir('train-alt'), model, configJson: {}, config, progress: null, exportModel: false,
    data: (s) => new SampleData(samples, s.batchSize, 0),
    onStep: () => { const now = snapshotParams(model); seen.push(changed(prev, now)); prev = now; },
  });
  await tr.run();
  const proj = matching(model, ['mm_projector']), llm = matching(model, ['language_model.model.layers']);
  assert.deepEqual(seen.map((c) => c.sort()), [proj, llm, proj, llm].map((x) => x.slice().sort()));
});

test('the MoE stage trains only the sparse MoE blocks and reports the balance loss', async () => {
  const model = tinyModel('sphinx-moe');
  const before = snapshotParams(model);
  const config = parseTrainConfig({ recipe: 'sphinx-moe', steps: 1, defaults: { lr: 1e-2, batch_size: 2 } }, { presetStages: Object.keys(model.config.info.stages) });
  assert.deepEqual(config.stages.map((s) => s.name), ['finetune', 'moe']);
  const config2 = parseTrainConfig({ stages: [{ stage: 'moe', steps: 2, lr: 1e-2, batch_size: 2 }] });
  const { steps } = await trainMem(model, config2, 2);
  const ch = changed(before, snapshotParams(model));
  assert.ok(ch.length > 0 && ch.every((k) => k.includes('.block_sparse_moe.')), ch.join(','));
  assert.ok(steps.every((s) => s.aux > 0 && Math.abs(s.loss - s.ce - s.aux) < 1e-5));
});

test('bad configs fail with an error naming the key', () => {
  const bad: [unknown, RegExp][] = [
    [{ stages: [{ stage: 'finetune', steps: 0 }] }, /stages\[0\]\.steps/],
    [{ stages: [{ stage: 'finetune', steps: 3, lr: 'fast' }] }, /stages\[0\]\.lr must be a number/],
    [{ stages: [{ stage: 'finetune', steps: 3, learning_rate: 1 }] }, /stages\[0\]: unknown key "learning_rate"/],
    [{ stages: [{ steps: 3 }] }, /stages\[0\]: needs "stage"/],
    [{ stages: [{ stage: 'nope', steps: 3 }] }, /stages\[0\]\.stage: the model has no preset stage 'nope'/],
    [{ stages: [{ stage: 'finetune', steps: 3, warmup_steps: 5 }] }, /warmup_steps 5 exceeds steps 3/],
    [{ stages: [{ stage: 'finetune', steps: 3, param_groups: [{ lr: 1 }] }] }, /param_groups\[0\]\.params is required/],
    [{ stages: [{ stage: 'finetune', steps: 3, betas: [0.9] }] }, /betas must be two numbers/],
    [{ stages: [] }, /stages must be a non-empty list/],
    [{ recipe: 'bogus' }, /recipe: unknown recipe 'bogus'/],
    [{ stages: [{ stage: 'finetune', steps: 1 }], save_every: -1 }, /save_every must be an integer/],
    [{ stages: [{ alternate: [{ stage: 'finetune', steps: 1 }] }] }, /alternate must list at least two stages/],
  ];
  for (const [json, re] of bad) {
    assert.throws(() => parseTrainConfig(json, { source: 'cfg.json', presetStages: ['pretrain', 'finetune'] }), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message) && (e as Error).message.startsWith('cfg.json'), JSON.stringify(json));
  }
  const model = tinyModel('llava-1.5');
  const glob = parseTrainConfig({ stages: [{ trainable: ['vision_towr'], steps: 1 }] }).stages[0]!;
  assert.throws(() => applyStage(model, glob), /trainable glob 'vision_towr' matches no parameter/);
  const grp = parseTrainConfig({ stages: [{ stage: 'pretrain', steps: 1, param_groups: [{ params: ['language_model'], lr: 1 }] }] }).stages[0]!;
  assert.throws(() => applyStage(model, grp, 'stages[0]'), /stages\[0\]\.param_groups\[0\]: globs \["language_model"\] match no trainable parameter/);
});

test('parameter groups get their own learning rate', async () => {
  const model = tinyModel('llava-1.5');
  const before = snapshotParams(model);
  const config = parseTrainConfig({ stages: [{ stage: 'finetune', steps: 1, lr: 1e-2, param_groups: [{ params: ['language_model'], lr: 1e-9, weight_decay: 0 }] }] });
  await trainMem(model, config, 2);
  const after = snapshotParams(model);
  let lm = 0, proj = 0;
  for (const [k, x] of before) {
    const d = x.reduce((a, v, i) => Math.max(a, Math.abs(v - after.get(k)![i]!)), 0);
    if (k.startsWith('language_model.')) lm = Math.max(lm, d); else if (k.startsWith('mm_projector.')) proj = Math.max(proj, d);
  }
  assert.ok(lm < 1e-7 && proj > 1e-3, `language_model moved ${lm}, mm_projector ${proj}`);
});
