// The staged trainer over the composable multimodal model (src/models/vlm/model.ts). For each
// stage of a TrainConfig (stages.ts): mark the stage's parameters trainable (frozen encoders then
// run without a graph: the systems wrap them in runFrozen), build one AdamW per parameter group,
// and run `steps` optimizer steps of `gradAccum` micro-batches each, with warmup + cosine per
// group, global-norm clipping, metrics and progress. Micro-batch losses are weighted by their
// share of the step's supervised tokens, so accumulating k batches of B equals one batch of k·B.
// Checkpoints (checkpoint.ts) hold the weights, AdamW moments and steps, the RNG, the data
// position, and the stage index and step; `resume` continues bit-identically.
//
// Output folder: checkpoints/, latest, metrics.jsonl, loss.svg, model/ (the final model folder).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import { Rng } from '../engine/rng.ts';
import { tidy, type Tensor } from '../engine/tensor.ts';
import { flatten } from '../engine/tree.ts';
import { fillParams } from '../models/load.ts';
import { openCheckpoint } from '../io/safetensors.ts';
import { family, type VlmModel, type VlmSample } from '../models/vlm/model.ts';
import { countPositions, countTargets, type TrainBatch, type TrainData } from './batches.ts';
import { cleanCheckpointTemps, exportModel, loadLatestCheckpoint, saveCheckpoint, type LoadedCheckpoint } from './checkpoint.ts';
import { MetricsLog, TrainProgress, type StepMetrics } from './metrics.ts';
import { AdamW, clipGradNorm } from './optim.ts';
import { cosineWithWarmup } from './schedule.ts';
import { applyStage, ConfigError, type ResolvedGroup, type StageConfig, type TrainConfig } from './stages.ts';

export interface TrainerOptions {
  /** Output folder: checkpoints, latest, metrics.jsonl, loss.svg, model/. */
  out: string;
  model: VlmModel;
  /** The model's config.json (written into every checkpoint). */
  configJson: Record<string, unknown>;
  /** Files copied into every checkpoint's model folder (tokenizer.json, tokenizer_config.json). */
  modelFiles?: ReadonlyMap<string, Uint8Array>;
  config: TrainConfig;
  /** Data of a stage; called once per stage when the stage starts (or resumes). */
  data: (stage: StageConfig, index: number) => Promise<TrainData> | TrainData;
  /** Continue from the latest checkpoint under `out` when there is one. */
  resume?: boolean;
  /** Stop (after saving a checkpoint) once this many global steps are done; the run can be resumed. */
  stopAfter?: number;
  /** Progress output; null for none. Default: a TrainProgress on stderr. */
  progress?: TrainProgress | null;
  /** Write the final model folder to out/model at the end (default true). */
  exportModel?: boolean;
  /** Called after every optimizer step (tests, the demo's own logging). */
  onStep?: (m: StepMetrics) => void;
}

export interface StageSummary {
  name: string;
  steps: number;
  trainable: number;
  /** Mean loss over the stage's first and last min(10, steps) steps of this run. */
  firstLoss: number;
  lastLoss: number;
}

export interface TrainResult {
  /** Global steps done (including those before a resume). */
  steps: number;
  totalSteps: number;
  stopped: boolean;
  resumedFrom: number | null;
  stages: StageSummary[];
  checkpoint: string | null;
  /** The final model folder (null when stopped early or export is off). */
  modelDir: string | null;
  /** Mean wall time per optimizer step in this run. */
  msPerStep: number;
  tokensPerS: number;
}

interface Position {
  stageIndex: number;
  /** Optimizer steps done in the current stage. */
  stageStep: number;
  globalStep: number;
}

function configHash(c: TrainConfig): string {
  const stages = c.stages.map((s) => ({ ...s, data: s.data ? { ...s.data } : null }));
  return createHash('sha256').update(JSON.stringify({ seed: c.seed, stages, data: c.data })).digest('hex').slice(0, 16);
}

function rngState(r: Rng): (number | null)[] {
  return r.state().map((v) => (Number.isNaN(v) ? null : v));
}

/** Trainable tensors of resolved groups, one entry per storage. */
function allParams(groups: readonly ResolvedGroup[]): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  for (const g of groups) for (const [k, t] of g.params) m.set(k, t);
  return m;
}

export class Trainer {
  readonly model: VlmModel;
  readonly config: TrainConfig;
  readonly out: string;
  /** Trainer randomness (checkpointed): for hooks or data that need it. */
  readonly rng: Rng;
  private readonly o: TrainerOptions;
  private pos: Position = { stageIndex: 0, stageStep: 0, globalStep: 0 };
  private resumed: LoadedCheckpoint | null = null;
  private stopRequested = false;
  private metrics: MetricsLog | null = null;
  private lastSaved = -1;
  private lastCheckpoint: string | null = null;

  constructor(o: TrainerOptions) {
    this.o = o;
    this.model = o.model;
    this.config = o.config;
    this.out = o.out;
    this.rng = new Rng(o.config.seed);
    if (o.config.stages.length === 0) throw new ConfigError('training config has no stages');
  }

  get totalSteps(): number { return this.config.stages.reduce((a, s) => a + s.steps, 0); }
  get globalStep(): number { return this.pos.globalStep; }

  /** Ask the loop to save and return after the current step (SIGINT). */
  requestStop(): void { this.stopRequested = true; }

  /** Restores weights, position, RNG from the latest checkpoint under `out` (when resume is on). Returns its step or null. */
  private restore(): number | null {
    fs.mkdirSync(this.out, { recursive: true });
    cleanCheckpointTemps(this.out);
    if (!this.o.resume) return null;
    const ck = loadLatestCheckpoint(this.out);
    if (ck === null) return null;
    for (const w of ck.warnings) this.note('warning', { message: w });
    const st = ck.state as { config_hash?: string; stage_index?: number; stage_step?: number; global_step?: number; rng?: (number | null)[]; model_config?: unknown };
    if (st.config_hash !== configHash(this.config)) throw new ConfigError(`${ck.dir}: the training config changed since this checkpoint was written (hash ${st.config_hash} vs ${configHash(this.config)}); resume with the same config, or train into a new --out`);
    if (JSON.stringify(st.model_config) !== JSON.stringify(this.o.configJson)) throw new ConfigError(`${ck.dir}: the model's config.json differs from the checkpoint's; resume with the same model`);
    const c = openCheckpoint(ck.dir);
    try { fillParams(this.model.params, c, family.ignoreKeys ?? [], 'model being trained'); } finally { c.close(); }
    this.pos = { stageIndex: st.stage_index ?? 0, stageStep: st.stage_step ?? 0, globalStep: st.global_step ?? ck.step };
    if (st.rng) this.rng.setState(st.rng.map((v) => (v === null ? NaN : v)));
    this.resumed = ck;
    this.lastSaved = this.pos.globalStep;
    this.lastCheckpoint = ck.dir;
    return ck.step;
  }

  private note(event: string, fields: Record<string, unknown>): void {
    this.o.progress?.note(event, fields);
  }

  private save(groups: readonly ResolvedGroup[], opts: readonly AdamW[], data: TrainData | null): string {
    const optimizer = new Map<string, Float32Array>();
    opts.forEach((o, i) => {
      for (const [k, v] of o.stateDict().tensors) optimizer.set(`g${groups[i]!.index}.${k}`, v);
    });
    const dir = saveCheckpoint(this.out, {
      step: this.pos.globalStep,
      modelType: family.modelType,
      configJson: this.o.configJson,
      params: this.model.params,
      ...(this.o.modelFiles ? { files: this.o.modelFiles } : {}),
      optimizer,
      state: {
        config_hash: configHash(this.config),
        stage_index: this.pos.stageIndex,
        stage_step: this.pos.stageStep,
        stage_name: this.config.stages[this.pos.stageIndex]?.name ?? null,
        global_step: this.pos.globalStep,
        opt_steps: opts.map((o) => o.stateDict().step),
        rng: rngState(this.rng),
        data: data?.state() ?? null,
        model_config: this.o.configJson,
      },
    }, { keepLast: this.config.keepLast });
    this.lastSaved = this.pos.globalStep;
    this.lastCheckpoint = dir;
    this.note('checkpoint', { step: this.pos.globalStep, dir });
    return dir;
  }

  /**
   * One optimizer step over `micro` batches (gradient accumulation), on the current trainable set.
   * Returns the step's metrics (lr is the first group's).
   */
  stepOn(micro: readonly TrainBatch[], groups: readonly ResolvedGroup[], opts: readonly AdamW[], clip: number): { loss: number; ce: number; aux: number; gradNorm: number; tokens: number; targets: number } {
    const targets = micro.map((b) => b.samples.reduce((a, s) => a + countTargets(this.model, s), 0));
    const N = targets.reduce((a, b) => a + b, 0);
    let tokens = 0;
    for (const b of micro) for (const s of b.samples) tokens += countPositions(this.model, s);
    if (N === 0) throw new Error(`a training step has no supervised tokens (batches ${micro.map((b) => b.ids.join(',')).join(' | ')}); check the data's assistant turns`);
    let ce = 0, aux = 0;
    micro.forEach((b, i) => {
      const w = targets[i]! / N;
      if (w === 0) return;
      const [c, a] = tidy(() => {
        const out = this.model.forward(b.samples as VlmSample[]);
        const ceT = out.ce!;
        let l = F.mul(ceT, w);
        if (out.aux !== null) l = F.add(l, F.mul(out.aux, 1 / micro.length));
        backward(l);
        return [F.item(ceT), out.aux !== null ? F.item(out.aux) : 0];
      });
      ce += c * w;
      aux += a / micro.length;
    });
    const params = allParams(groups);
    const gradNorm = clipGradNorm(params, clip > 0 ? clip : Infinity);
    if (Number.isFinite(gradNorm)) for (const o of opts) o.step();
    for (const o of opts) o.zeroGrad();
    return { loss: ce + aux, ce, aux, gradNorm, tokens, targets: N };
  }

  /** Runs (or resumes) every stage. */
  async run(): Promise<TrainResult> {
    const resumedFrom = this.restore();
    this.metrics = new MetricsLog(path.join(this.out, 'metrics.jsonl'), resumedFrom ?? 0);
    const svg = path.join(this.out, 'loss.svg');
    const total = this.totalSteps;
    const summaries: StageSummary[] = [];
    const t0 = performance.now();
    let stepsRun = 0, tokensRun = 0;
    let stopped = false;
    const startPos = { ...this.pos };
    if (resumedFrom !== null) this.note('resume', { step: resumedFrom, stage: this.config.stages[this.pos.stageIndex]?.name ?? '(done)', stage_step: this.pos.stageStep });
    try {
      for (let si = this.pos.stageIndex; si < this.config.stages.length && !stopped; si++) {
        const stage = this.config.stages[si]!;
        const { trainable, groups } = applyStage(this.model, stage, `stages[${si}] '${stage.name}'`);
        const opts = groups.map((g) => new AdamW(g.params, { lr: g.lr, betas: stage.betas, eps: stage.eps, weightDecay: g.weightDecay }));
        const scheds = groups.map((g) => cosineWithWarmup({ lr: g.lr, warmupSteps: stage.warmupSteps, totalSteps: stage.steps, minLr: stage.minLr * (g.lr / stage.lr) }));
        const data = await this.o.data(stage, si);
        const resuming = this.resumed !== null && si === startPos.stageIndex && startPos.stageStep > 0;
        if (resuming) {
          const st = this.resumed!.state as { opt_steps?: number[]; data?: unknown };
          opts.forEach((o, i) => {
            const tensors = new Map<string, Float32Array>();
            const prefix = `g${groups[i]!.index}.`;
            for (const [k, v] of this.resumed!.optimizer) if (k.startsWith(prefix)) tensors.set(k.slice(prefix.length), v);
            o.loadStateDict({ tensors, step: st.opt_steps?.[i] ?? 0 });
          });
          data.restore(st.data);
        } else this.pos.stageStep = 0;
        this.pos.stageIndex = si;
        this.note('stage', { index: si + 1, of: this.config.stages.length, name: stage.name, steps: stage.steps, trainable: trainable.length, batch: stage.batchSize, grad_accum: stage.gradAccum });
        const losses: number[] = [];
        try {
          while (this.pos.stageStep < stage.steps) {
            const ts = performance.now();
            opts.forEach((o, i) => { o.lr = scheds[i]!(this.pos.stageStep); });
            const micro: TrainBatch[] = [];
            for (let a = 0; a < stage.gradAccum; a++) micro.push(await data.next());
            const r = this.stepOn(micro, groups, opts, stage.clipGradNorm);
            this.pos.stageStep++;
            this.pos.globalStep++;
            const ms = performance.now() - ts;
            stepsRun++;
            tokensRun += r.tokens;
            losses.push(r.loss);
            const m: StepMetrics = {
              step: this.pos.globalStep, stage: stage.name, stage_step: this.pos.stageStep, loss: r.loss, ce: r.ce, aux: r.aux,
              lr: opts[opts.length - 1]!.lr, grad_norm: r.gradNorm, tokens: r.tokens, tokens_per_s: (r.tokens * 1000) / ms, ms,
            };
            this.metrics.append(m);
            this.o.onStep?.(m);
            this.o.progress?.update({ stage: stage.name, stageIndex: si, stages: this.config.stages.length, step: this.pos.globalStep, total, loss: r.loss, lr: m.lr, tokensPerS: (tokensRun * 1000) / (performance.now() - t0), gradNorm: r.gradNorm });
            const atEnd = this.pos.stageStep === stage.steps;
            const stop = this.stopRequested || (this.o.stopAfter !== undefined && this.pos.globalStep >= this.o.stopAfter);
            if (!atEnd && (stop || (this.config.saveEvery > 0 && this.pos.globalStep % this.config.saveEvery === 0))) this.save(groups, opts, data);
            if (stop && !atEnd) { stopped = true; break; }
            if (stop) stopped = true;
          }
          if (this.pos.stageStep === stage.steps) {
            // Stage done: the checkpoint points at the start of the next stage.
            this.pos.stageIndex = si + 1;
            this.pos.stageStep = 0;
            this.save([], [], null);
            this.metrics.writeSvg(svg);
          }
        } finally {
          data.dispose?.();
          for (const o of opts) o.zeroGrad();
        }
        const k = Math.max(1, Math.min(10, Math.floor(losses.length / 2))); // first and last windows never overlap
        const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
        summaries.push({ name: stage.name, steps: losses.length, trainable: trainable.length, firstLoss: mean(losses.slice(0, k)), lastLoss: mean(losses.slice(losses.length - k)) });
      }
    } finally {
      this.metrics.writeSvg(svg);
    }
    const done = this.pos.stageIndex >= this.config.stages.length;
    let modelDir: string | null = null;
    if (done && this.o.exportModel !== false && this.lastCheckpoint !== null) {
      modelDir = path.join(this.out, 'model');
      exportModel(this.lastCheckpoint, modelDir);
    }
    const elapsed = performance.now() - t0;
    return {
      steps: this.pos.globalStep, totalSteps: total, stopped: !done, resumedFrom, stages: summaries,
      checkpoint: this.lastCheckpoint, modelDir, msPerStep: stepsRun ? elapsed / stepsRun : 0, tokensPerS: elapsed > 0 ? (tokensRun * 1000) / elapsed : 0,
    };
  }
}

/** Every parameter of a model as path -> copy of its f32 values (tests, comparisons). */
export function snapshotParams(model: VlmModel): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [k, t] of flatten<Tensor>(model.params)) m.set(k, Float32Array.from(F.denseData(t)));
  return m;
}
