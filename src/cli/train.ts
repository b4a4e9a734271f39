// `chimera train --config FILE | --preset NAME | --model DIR --out DIR [--data FILE] [--resume]
// [--steps N] [--json] ...`: staged training with progress, checkpoints, metrics JSONL and a
// loss-curve SVG (src/train/trainer.ts). --preset starts from `chimera init`-style random weights
// (written to OUT/init), --model from an existing folder; --resume continues from OUT/latest.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { useBackend } from '../backends/index.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadModel } from '../models/load.ts';
import { createPreset } from '../models/vlm/create.ts';
import { VlmModel, type VlmConfig, type VlmParams } from '../models/vlm/model.ts';
import { presetConfig, presetNames } from '../models/vlm/systems.ts';
import { ConversationData, ImageCache } from '../train/batches.ts';
import { listCheckpoints, loadLatestCheckpoint } from '../train/checkpoint.ts';
import { TrainProgress } from '../train/metrics.ts';
import { ConfigError, defaultConfig, parseTrainConfig, type DataSpec, type TrainConfig } from '../train/stages.ts';
import { Trainer } from '../train/trainer.ts';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';

const MODEL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'chat_template.json', 'chat_template.jinja', 'preprocessor_config.json'];

function readJsonFile(file: string): unknown {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new CliError(`--config ${file}: cannot read: ${(e as Error).message}`); }
  try { return JSON.parse(text); } catch (e) { throw new CliError(`--config ${file}: malformed JSON: ${(e as Error).message}`); }
}

function numFlag(a: ReturnType<typeof parseArgs>, name: string): number | undefined {
  const v = a.flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n <= 0) throw new CliError(`--${name} must be a positive number, got '${v}'`);
  return n;
}

export async function train(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['config', 'preset', 'model', 'out', 'data', 'root', 'steps', 'stop-after', 'seed', 'recipe', 'batch', 'grad-accum', 'lr', 'backend'], ['resume', 'json']);
  if (a.positionals.length > 0) throw new CliError(`unexpected argument '${a.positionals[0]}'`);
  const out = strFlag(a, 'out', '');
  if (out === '') throw new CliError('--out is required (the folder for checkpoints, metrics and the trained model)');
  const configFile = strFlag(a, 'config', '');
  const preset = strFlag(a, 'preset', '');
  const modelFlag = strFlag(a, 'model', '');
  if (preset !== '' && modelFlag !== '') throw new CliError('give --preset or --model, not both');
  if (configFile === '' && preset === '' && modelFlag === '') throw new CliError(`give --config FILE, --preset NAME (${presetNames().join(', ')}; ':tiny' for the test size) or --model DIR`);
  const json = a.flags.has('json');
  const resume = a.flags.has('resume');
  useBackend(strFlag(a, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const stepsFlag = a.flags.has('steps') ? intFlag(a, 'steps', 1, 1) : undefined;
  const stopAfter = a.flags.has('stop-after') ? intFlag(a, 'stop-after', 1, 1) : undefined;

  // ---- the config (raw JSON first: model source and recipe need the preset's stage names) ----
  let raw: Record<string, unknown> = {};
  const base = configFile !== '' ? path.dirname(path.resolve(configFile)) : process.cwd();
  if (configFile !== '') {
    const j = readJsonFile(configFile);
    if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new CliError(`--config ${configFile}: expected a JSON object`);
    raw = { ...(j as Record<string, unknown>) };
  }
  const rawModel = raw['model'] as { preset?: string; dir?: string; seed?: number } | undefined;

  // ---- the model -----------------------------------------------------------------------------
  fs.mkdirSync(out, { recursive: true });
  if (!resume && listCheckpoints(out).length > 0) throw new CliError(`${out} already holds checkpoints; pass --resume to continue, or choose a new --out`);
  let modelDir: string;
  const latest = resume ? loadLatestCheckpoint(out) : null;
  if (latest !== null) modelDir = latest.dir;
  else if (modelFlag !== '') modelDir = modelFlag;
  else if (preset !== '' || typeof rawModel?.preset === 'string') {
    const spec = preset !== '' ? preset : rawModel!.preset!;
    try { presetConfig(spec); } catch (e) { throw new CliError((e as Error).message); }
    modelDir = path.join(out, 'init');
    const seed = a.flags.has('seed') ? intFlag(a, 'seed', 0, 0, 2 ** 32 - 1) : (rawModel?.seed ?? 0);
    createPreset(spec, modelDir, { seed });
  } else if (typeof rawModel?.dir === 'string') modelDir = path.resolve(base, rawModel.dir);
  else throw new CliError(`${configFile}: no model: give --preset NAME, --model DIR or "model" in the config`);
  const loaded = await loadModel<VlmConfig, VlmParams>(modelDir);
  if (loaded.modelType !== 'chimera_vlm') throw new CliError(`${modelDir}: model_type '${loaded.modelType}' is not a multimodal Chimera model (chimera_vlm)`);
  const model = new VlmModel(loaded.params, loaded.config);
  const tokenizer = loadTokenizer(modelDir);
  const modelFiles = new Map<string, Uint8Array>();
  for (const f of MODEL_FILES) { const p = path.join(modelDir, f); if (fs.existsSync(p)) modelFiles.set(f, fs.readFileSync(p)); }
  const stageNames = Object.keys(model.config.info.stages);

  // ---- the training config ----------------------------------------------------------------------
  if (configFile === '') {
    raw = defaultConfig(stageNames, stepsFlag ?? 100, a.flags.has('recipe') ? strFlag(a, 'recipe', '') : undefined);
  } else if (a.flags.has('recipe')) {
    raw['recipe'] = strFlag(a, 'recipe', '');
    delete raw['stages'];
  }
  if (configFile !== '' && stepsFlag !== undefined) {
    // --steps overrides every stage's step count.
    raw['steps'] = stepsFlag;
    if (Array.isArray(raw['stages'])) raw['stages'] = (raw['stages'] as Record<string, unknown>[]).map((s) => (s && typeof s === 'object' && !('alternate' in s) ? { ...s, steps: stepsFlag } : s));
  }
  const overrides: Record<string, unknown> = {};
  if (a.flags.has('batch')) overrides['batch_size'] = intFlag(a, 'batch', 1, 1);
  if (a.flags.has('grad-accum')) overrides['grad_accum'] = intFlag(a, 'grad-accum', 1, 1);
  const lr = numFlag(a, 'lr');
  if (lr !== undefined) overrides['lr'] = lr;
  if (Object.keys(overrides).length > 0) {
    raw['defaults'] = { ...((raw['defaults'] as Record<string, unknown>) ?? {}), ...overrides };
    if (Array.isArray(raw['stages'])) raw['stages'] = (raw['stages'] as Record<string, unknown>[]).map((s) => (s && typeof s === 'object' && !('alternate' in s) ? { ...s, ...overrides } : s));
  }
  if (a.flags.has('seed')) raw['seed'] = intFlag(a, 'seed', 0, 0, 2 ** 32 - 1);
  let config: TrainConfig;
  try {
    config = parseTrainConfig(raw, { source: configFile !== '' ? configFile : 'config', base, presetStages: stageNames });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message);
    throw e;
  }
  const dataFlag = strFlag(a, 'data', '');
  const cliData: DataSpec | null = dataFlag !== '' ? { path: path.resolve(dataFlag), ...(a.flags.has('root') ? { root: path.resolve(strFlag(a, 'root', '')) } : {}) } : null;
  config.stages.forEach((s, i) => {
    if ((s.data ?? cliData ?? config.data) === null) throw new CliError(`stage ${i + 1} '${s.name}' has no training data: give --data FILE or "data" in the config`);
  });

  // ---- run ---------------------------------------------------------------------------------------
  const cache = new ImageCache(model);
  const progress = new TrainProgress(process.stderr, config.logEvery, json);
  const trainer = new Trainer({
    out, model, configJson: loaded.configJson, modelFiles, config, resume, progress,
    ...(stopAfter !== undefined ? { stopAfter } : {}),
    data: (stage, i) => {
      const spec = stage.data ?? cliData ?? config.data!;
      return ConversationData.open(spec, { model, tokenizer, batchSize: stage.batchSize, seed: config.seed + i, detail: stage.detail, cache });
    },
  });
  let interrupts = 0;
  const onSig = (): void => {
    if (++interrupts > 1) process.exit(130);
    progress.note('interrupt', { message: 'saving a checkpoint after this step (Ctrl-C again to quit without saving)' });
    trainer.requestStop();
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  let res;
  try {
    res = await trainer.run();
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    cache.dispose();
  }
  const summary = {
    out, steps: res.steps, total_steps: res.totalSteps, stopped: res.stopped, resumed_from: res.resumedFrom,
    model: res.modelDir, checkpoint: res.checkpoint, metrics: path.join(out, 'metrics.jsonl'), loss_svg: path.join(out, 'loss.svg'),
    ms_per_step: Math.round(res.msPerStep * 10) / 10, tokens_per_s: Math.round(res.tokensPerS),
    stages: res.stages.map((s) => ({ name: s.name, steps: s.steps, trainable: s.trainable, first_loss: s.firstLoss, last_loss: s.lastLoss })),
  };
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    for (const s of res.stages) process.stdout.write(`stage ${s.name}: ${s.steps} steps, loss ${s.firstLoss.toFixed(4)} -> ${s.lastLoss.toFixed(4)}\n`);
    process.stdout.write(res.stopped ? `stopped at step ${res.steps}/${res.totalSteps}; continue with --resume (checkpoint ${res.checkpoint})\n` : `done: ${res.steps} steps, model in ${res.modelDir}\n`);
  }
}
