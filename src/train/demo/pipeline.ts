// The demo's training pieces: a byte-level BPE trained on the corpus text, the four encoder
// towers pre-trained with their own paradigms and loaded into the SPHINX tree, corpus samples
// rendered through SPHINX's conversation template, and a plain AdamW stage loop over
// VlmModel.forward (stages by SPHINX's globs: 'pretrain' = LLM unfrozen on captions, 'finetune' =
// multi-task instruction tuning).
//
// Dims: B batch, L assembled positions.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import { Rng } from '../../engine/rng.ts';
import { tidy, untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import { makeSample, type CorpusSample } from '../../data/corpus.ts';
import { TASK_NAMES, TEMPLATES, type TaskName } from '../../data/tasks.ts';
import type { Domain, Split } from '../../data/types.ts';
import { saveTokenizerFiles, trainByteLevelBpe } from '../../io/bpe-trainer.ts';
import { tokenizerFromJson, type Tokenizer } from '../../io/tokenizer.ts';
import { saveModel } from '../../models/load.ts';
import { SPECIAL_TOKENS } from '../../models/vlm/create.ts';
import { IGNORE_INDEX, initVlm, parseVlmConfig, VlmModel, type VlmSample } from '../../models/vlm/model.ts';
import { SPHINX_SYSTEM, templateFor, tokenizeSegments } from '../../models/vlm/templates.ts';
import { AdamW, clipGradNorm, paramsOf } from '../optim.ts';
import { cosineWithWarmup } from '../schedule.ts';
import { pretrainClip, type PretrainResult } from '../pretrain/clip.ts';
import { pretrainDino } from '../pretrain/dino.ts';
import { pretrainQFormer } from '../pretrain/qformer.ts';
import { pretrainSupervised } from '../pretrain/supervised.ts';
import { copyLeaves, type PretrainEvent } from '../pretrain/common.ts';
import { saveTower } from '../pretrain/index.ts';
import { DEMO_VIEW, towerConfigs } from './config.ts';

// ---- tokenizer -----------------------------------------------------------------------------------

/** Byte-level BPE over the corpus text (questions, answers, templates, the system prompt); ids 0..4 are SPECIAL_TOKENS. */
export function trainDemoTokenizer(vocab: number, seed: number, n = 3000): Tokenizer & { json: ReturnType<typeof trainByteLevelBpe> } {
  const text: string[] = [SPHINX_SYSTEM, ' Human: ', '\n###', ' Assistant: ', ...Object.values(TEMPLATES).map((t) => (t as (...a: string[]) => string)('x', 'y'))];
  for (let i = 0; i < n; i++) {
    const s = makeSample(i, { domain: 'both', split: 'train', seed: seed + 101, smallObjects: i % 4 === 0 });
    for (const t of s.conversations) text.push(t.value.replace('<image>\n', ''));
  }
  // Every two-digit coordinate appears often enough to become one token.
  for (let k = 0; k < 100; k++) for (let r = 0; r < 3; r++) text.push(`[0.${String(k).padStart(2, '0')}, 1.00]`);
  const trained = trainByteLevelBpe(text, {
    vocabSize: vocab, specialTokens: [...SPECIAL_TOKENS], minFrequency: 2,
    bosToken: '<s>', eosToken: '</s>', padToken: '<pad>', unkToken: '<unk>', addBosToken: false,
  });
  return Object.assign(tokenizerFromJson(trained.tokenizerJson, trained.tokenizerConfig), { json: trained });
}

export function saveDemoTokenizer(dir: string, tok: { json: ReturnType<typeof trainByteLevelBpe> }): void {
  saveTokenizerFiles(dir, tok.json);
}

// ---- towers --------------------------------------------------------------------------------------

export type TowerKind = 'clip' | 'dino' | 'supervised' | 'qformer';

export interface Towers {
  clip: PretrainResult<unknown>;
  dino: PretrainResult<unknown>;
  supervised: PretrainResult<unknown>;
  qformer: PretrainResult<unknown>;
}

export interface TowerSteps { clip: number; dino: number; supervised: number; qformer: number }

/** Pre-trains the four towers (CLIP first: the Q-Former's frozen image encoder is the CLIP ViT); saves each under `dir/<kind>`. */
export function pretrainTowers(dir: string | null, steps: TowerSteps, seed: number, onStep?: (e: PretrainEvent) => void): Towers {
  const clip = pretrainClip(towerConfigs.clip(), { steps: steps.clip, seed, onStep });
  const dino = pretrainDino(towerConfigs.dinov2(), { steps: steps.dino, seed, onStep });
  const supervised = pretrainSupervised(towerConfigs.convnext(), { steps: steps.supervised, seed, viewSize: DEMO_VIEW, onStep });
  const qformer = pretrainQFormer(towerConfigs.qformer(), towerConfigs.queries, { config: towerConfigs.clip(), params: clip.params as never }, { steps: steps.qformer, seed, onStep });
  if (dir !== null) {
    saveTower(path.join(dir, 'clip'), 'clip', towerConfigs.clip(), clip);
    saveTower(path.join(dir, 'dino'), 'dino', towerConfigs.dinov2(), dino);
    saveTower(path.join(dir, 'supervised'), 'supervised', towerConfigs.convnext(), supervised);
    saveTower(path.join(dir, 'qformer'), 'qformer', towerConfigs.qformer(), qformer, { vision: { config: towerConfigs.clip(), params: clip.params }, queries: towerConfigs.queries });
  }
  return { clip, dino, supervised, qformer };
}

/** Copies the pre-trained towers into the SPHINX tree (keys clip.*, dinov2_vitg14.*, openclip_convnext_xxl.*, qformer.*). */
export function loadTowers(params: Record<string, unknown>, t: Towers): void {
  if (params['clip']) copyLeaves(params['clip'], t.clip.params, 'clip tower');
  if (params['dinov2_vitg14']) copyLeaves(params['dinov2_vitg14'], t.dino.params, 'dinov2 tower');
  if (params['openclip_convnext_xxl']) copyLeaves(params['openclip_convnext_xxl'], t.supervised.params, 'convnext tower');
  if (params['qformer']) {
    const q = t.qformer.params as { query_tokens: Tensor; qformer: unknown };
    copyLeaves(params['qformer'], { vision_model: (t.clip.params as { vision_model: unknown }).vision_model, query_tokens: q.query_tokens, qformer: q.qformer }, 'q-former tower');
  }
}

export function disposeTowers(t: Towers): void {
  for (const r of Object.values(t)) for (const x of flatten<Tensor>(r.params).values()) x.dispose();
}

// ---- samples -------------------------------------------------------------------------------------

export interface StreamSpec {
  domain: Domain | 'both';
  split: Split;
  seed: number;
  /** Tasks drawn from (repeats weight them). */
  tasks: readonly TaskName[];
  smallObjects?: boolean;
  /**
   * Cycle over this many samples, keeping each one's prepared image (and with it the frozen
   * encoders' cached features) across epochs; unset: a fresh sample every time.
   */
  pool?: number;
}

/**
 * Stage-2 task mix: every task present, VQA (24%) and REC (44%) weighted up. Localisation is the
 * slowest skill for the tiny LLM to pick up (REC needs ~1000 batches), so it gets the most steps.
 */
export const STAGE2_TASKS: readonly TaskName[] = [...TASK_NAMES, ...Array<TaskName>(5).fill('vqa'), ...Array<TaskName>(10).fill('rec')];
export const STAGE1_TASKS: readonly TaskName[] = ['caption', 'detailed_caption'];

/** The question without the image placeholder. */
export function questionOf(s: CorpusSample): string {
  return s.conversations[0]!.value.replace('<image>\n', '').replace('<image>', '');
}

/** Ids (+ labels when `answer` is given) of a one-image SPHINX conversation; the image goes right after BOS (no placeholder). */
export function encodeTurn(tok: Tokenizer, imageTokenId: number, question: string, answer: string | null): { ids: number[]; labels: number[] } {
  const tpl = templateFor('sphinx');
  const turns = [{ role: 'user' as const, parts: [{ text: question }] }, ...(answer === null ? [] : [{ role: 'assistant' as const, parts: [{ text: answer }] }])];
  const t = tokenizeSegments(tok, tpl.render(turns, answer === null), imageTokenId);
  return { ids: t.ids, labels: t.labels };
}

export class SampleStream {
  private next = 0;
  readonly spec: StreamSpec;
  readonly tok: Tokenizer;
  readonly model: VlmModel;
  constructor(spec: StreamSpec, tok: Tokenizer, model: VlmModel) {
    this.spec = spec; this.tok = tok; this.model = model;
  }

  sample(i: number): CorpusSample {
    const s = this.spec;
    return makeSample(i, { domain: s.domain, split: s.split, seed: s.seed, tasks: s.tasks, smallObjects: s.smallObjects ?? false });
  }

  private readonly kept = new Map<number, VlmSample>();

  /** The next B training samples; give them back with `release`. */
  batch(B: number): VlmSample[] {
    const out: VlmSample[] = [];
    const pool = this.spec.pool;
    for (let b = 0; b < B; b++) {
      const i = pool ? this.next++ % pool : this.next++;
      const hit = this.kept.get(i);
      if (hit) { out.push(hit); continue; }
      const s = this.sample(i);
      const { ids, labels } = encodeTurn(this.tok, this.model.config.imageTokenId, questionOf(s), s.conversations[1]!.value);
      const v: VlmSample = { ids, labels, images: [untracked(() => this.model.prepareImage(s.image, 'high'))] };
      if (pool) this.kept.set(i, v);
      out.push(v);
    }
    return out;
  }

  /**
   * Frees a batch's images unless the pool keeps them; pooled images keep only their cached
   * frozen-encoder features (the stream serves one model with frozen encoders).
   */
  release(xs: readonly VlmSample[]): void {
    if (!this.spec.pool) return disposeSamples(xs);
    for (const s of xs) for (const im of s.images) {
      const keys = Object.keys(im.pixels);
      if (!keys.some((k) => k.startsWith('feature:'))) continue;
      for (const k of keys) if (!k.startsWith('feature:')) { im.pixels[k]!.dispose(); delete im.pixels[k]; }
    }
  }

  dispose(): void {
    disposeSamples([...this.kept.values()]);
    this.kept.clear();
  }
}

export function disposeSamples(xs: readonly VlmSample[]): void {
  for (const s of xs) for (const im of s.images) for (const t of Object.values(im.pixels)) t.dispose();
}

export interface StageEvent { stage: string; step: number; total: number; loss: number; lr: number; seconds: number; tokensPerS: number }

/** AdamW + cosine warmup over the stage's trainable parameters (the stream is disposed at the end); returns the per-step losses. */
export function trainStage(model: VlmModel, stage: 'pretrain' | 'finetune', name: string, stream: SampleStream, o: { steps: number; batch: number; lr: number }, onStep?: (e: StageEvent) => void): number[] {
  model.setStage(stage);
  const params = paramsOf(model.params);
  const opt = new AdamW(params, { lr: o.lr, weightDecay: 0.0, betas: [0.9, 0.98] });
  const sched = cosineWithWarmup({ lr: o.lr, warmupSteps: Math.min(Math.ceil(o.steps / 20) + 1, o.steps), totalSteps: o.steps, minLr: o.lr / 10 });
  const losses: number[] = [];
  const t0 = performance.now();
  let tokens = 0;
  for (let step = 0; step < o.steps; step++) {
    opt.lr = sched(step);
    const batch = stream.batch(o.batch);
    const loss = tidy(() => {
      const out = model.forward(batch);
      backward(out.loss!);
      return F.item(out.loss!);
    });
    for (const s of batch) tokens += s.ids.length + s.images[0]!.positions;
    stream.release(batch);
    if (!Number.isFinite(loss)) throw new Error(`demo ${name}: loss is ${loss} at step ${step + 1}`);
    clipGradNorm(params, 1.0);
    opt.step();
    opt.zeroGrad();
    losses.push(loss);
    const secs = (performance.now() - t0) / 1000;
    onStep?.({ stage: name, step: step + 1, total: o.steps, loss, lr: opt.lr, seconds: secs, tokensPerS: tokens / Math.max(secs, 1e-9) });
  }
  for (const t of params.values()) t.requiresGrad = false;
  stream.dispose();
  return losses;
}

/** A fresh demo model from its config JSON (random init, seeded). */
export function newDemoModel(configJson: Record<string, unknown>, seed: number): VlmModel {
  const cfg = parseVlmConfig(configJson, 'demo config');
  return new VlmModel(untracked(() => initVlm(cfg, new Rng(seed))), cfg);
}

/** Writes a loadable model folder (config.json, model.safetensors, tokenizer files). */
export function saveDemoModel(dir: string, model: VlmModel, configJson: Record<string, unknown>, tok: { json: ReturnType<typeof trainByteLevelBpe> }): void {
  fs.mkdirSync(dir, { recursive: true });
  saveModel(dir, 'chimera_vlm', configJson, model.params);
  saveDemoTokenizer(dir, tok);
}

export { IGNORE_INDEX };
