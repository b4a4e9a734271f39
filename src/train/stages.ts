// Training configuration: a model source, data, and a sequence of stages. Each stage says which
// parameters train (a preset stage name from the model's `info.stages`, or path globs), the
// learning rate and weight decay per parameter group, steps, batch size, gradient accumulation,
// warmup + cosine, clipping and AdamW settings. Built-in recipes expand to stage lists: SPHINX
// (stage 1 with the LLM unfrozen, stage 2 multi-task; SPEC §1.9), SliME's alternating schedule
// (SPEC §2.5: the system's stages in declaration order, optionally alternated for several
// rounds), MoE-LLaVA (SPEC §11.2) and SPHINX-MoE. Every error names the key that is wrong.

import * as path from 'node:path';
import { globToRegExp, type VlmModel } from '../models/vlm/model.ts';
import { flatten } from '../engine/tree.ts';
import type { Tensor } from '../engine/tensor.ts';

export type Detail = 'low' | 'high';

/** Where training data comes from: a LLaVA-style JSON/JSONL file or a dataset meta config (src/data/meta.ts). */
export interface DataSpec {
  /** Path of a conversations file (.json/.jsonl) or a meta config (.json with META/datasets). */
  path: string;
  /** Image root for a conversations file (default: the file's folder). */
  root?: string;
  /** Skip invalid records (counted) instead of failing. */
  skipInvalid?: boolean;
}

export interface ParamGroupConfig {
  /** Path globs ('*' within a segment, '**' across; a glob also matches everything under it). */
  params: string[];
  lr: number;
  weightDecay: number;
}

export interface StageConfig {
  name: string;
  /** Globs of the parameters that train in this stage (resolved from a preset stage name if given one). */
  trainable: string[];
  /** The preset stage name it came from, if any. */
  preset: string | null;
  steps: number;
  batchSize: number;
  gradAccum: number;
  lr: number;
  minLr: number;
  warmupSteps: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** Max global gradient L2 norm (0 = no clipping). */
  clipGradNorm: number;
  /** Groups with their own lr / weight decay; trainable parameters outside every group use the stage's. First match wins. */
  groups: ParamGroupConfig[];
  data: DataSpec | null;
  detail: Detail;
}

export interface TrainConfig {
  seed: number;
  stages: StageConfig[];
  /** Save a checkpoint every this many global steps (0: only at stage ends and exit). */
  saveEvery: number;
  /** Checkpoints kept (the newest complete ones). */
  keepLast: number;
  /** Progress/metrics line every this many steps when not on a terminal. */
  logEvery: number;
  /** Model source from the config (the CLI's --preset/--model override it). */
  model: { preset: string; seed: number } | { dir: string } | null;
  data: DataSpec | null;
}

export class ConfigError extends Error {}

const STAGE_KEYS = ['name', 'stage', 'trainable', 'steps', 'batch_size', 'grad_accum', 'lr', 'min_lr', 'warmup_steps', 'weight_decay', 'betas', 'eps', 'clip_grad_norm', 'param_groups', 'data', 'detail', 'alternate', 'rounds'];
const DEFAULTS_KEYS = STAGE_KEYS.filter((k) => !['name', 'stage', 'trainable', 'alternate', 'rounds'].includes(k));
const TOP_KEYS = ['seed', 'stages', 'recipe', 'defaults', 'save_every', 'keep_last', 'log_every', 'model', 'data', 'steps'];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

class Reader {
  readonly o: Obj;
  readonly where: string;
  constructor(o: Obj, where: string, keys: readonly string[]) {
    this.o = o;
    this.where = where;
    for (const k of Object.keys(o)) if (!keys.includes(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
  }
  has(k: string): boolean { return this.o[k] !== undefined; }
  num(k: string, def: number, min = -Infinity, max = Infinity, exclusiveMin = false): number {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (exclusiveMin && v === min)) {
      throw new ConfigError(`${this.where}.${k} must be a number ${exclusiveMin ? '>' : '>='} ${min}${max < Infinity ? ` and <= ${max}` : ''}, got ${JSON.stringify(v)}`);
    }
    return v;
  }
  int(k: string, def: number, min = 0): number {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new ConfigError(`${this.where}.${k} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  }
  str(k: string, def: string): string {
    const v = this.o[k];
    if (v === undefined) return def;
    if (typeof v !== 'string' || v === '') throw new ConfigError(`${this.where}.${k} must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  }
  globs(k: string): string[] {
    const v = this.o[k];
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || list.length === 0 || list.some((g) => typeof g !== 'string' || g === '')) throw new ConfigError(`${this.where}.${k} must be a non-empty list of path globs, got ${JSON.stringify(v)}`);
    return list as string[];
  }
}

function parseData(v: unknown, where: string, base: string): DataSpec {
  const resolve = (p: string): string => path.resolve(base, p);
  if (typeof v === 'string' && v !== '') return { path: resolve(v) };
  if (!isObj(v)) throw new ConfigError(`${where} must be a file path or {"path", "root"?, "skip_invalid"?}, got ${JSON.stringify(v)}`);
  const r = new Reader(v, where, ['path', 'root', 'skip_invalid']);
  const spec: DataSpec = { path: resolve(r.str('path', '')) };
  if (!r.has('path')) throw new ConfigError(`${where}.path is required`);
  if (r.has('root')) spec.root = resolve(r.str('root', ''));
  if (r.has('skip_invalid')) {
    if (typeof v['skip_invalid'] !== 'boolean') throw new ConfigError(`${where}.skip_invalid must be true or false`);
    spec.skipInvalid = v['skip_invalid'];
  }
  return spec;
}

/** Built-in stage lists (see the file comment). Stage names refer to the model's preset stages. */
export const RECIPES: Record<string, (stages: readonly string[]) => Obj[]> = {
  /** SPHINX: stage 1 pre-training with the LLM unfrozen, then stage 2 multi-task fine-tuning (SPEC §1.9). */
  sphinx: () => [{ stage: 'pretrain' }, { stage: 'finetune' }],
  /** LLaVA-1.5: projector pre-training, then projector + LLM (SPEC §3.5). */
  llava: () => [{ stage: 'pretrain' }, { stage: 'finetune' }],
  /** SliME (SPEC §2.5): every preset stage in declaration order (1a, 1b, 2, 3). */
  slime: (stages) => stages.map((s) => ({ stage: s })),
  /** MoE-LLaVA (SPEC §11.2): S1 projector, S2 dense LLM + projector, S3 experts and routers. */
  'moe-llava': (stages) => stages.map((s) => ({ stage: s })),
  /** SPHINX-MoE: fine-tune, then the sparse MoE stage. */
  'sphinx-moe': () => [{ stage: 'finetune' }, { stage: 'moe' }],
  /** Every preset stage of the model, in declaration order. */
  all: (stages) => stages.map((s) => ({ stage: s })),
};

/** Expands `{"alternate": [A, B], "rounds": k}` into A, B, A, B, ... (k rounds). */
function expandAlternate(list: unknown[], where: string): { o: Obj; where: string }[] {
  const out: { o: Obj; where: string }[] = [];
  list.forEach((s, i) => {
    const w = `${where}[${i}]`;
    if (!isObj(s)) throw new ConfigError(`${w} must be an object`);
    if (s['alternate'] === undefined) { out.push({ o: s, where: w }); return; }
    const alt = s['alternate'];
    if (!Array.isArray(alt) || alt.length < 2) throw new ConfigError(`${w}.alternate must list at least two stages`);
    const rounds = s['rounds'] ?? 1;
    if (typeof rounds !== 'number' || !Number.isSafeInteger(rounds) || rounds < 1) throw new ConfigError(`${w}.rounds must be an integer >= 1, got ${JSON.stringify(rounds)}`);
    for (const k of Object.keys(s)) if (k !== 'alternate' && k !== 'rounds') throw new ConfigError(`${w}: unknown key "${k}" next to "alternate" (put stage settings inside the alternated stages)`);
    for (let r = 0; r < rounds; r++) {
      alt.forEach((a, j) => {
        if (!isObj(a)) throw new ConfigError(`${w}.alternate[${j}] must be an object`);
        out.push({ o: { ...a, name: `${typeof a['name'] === 'string' ? a['name'] : (a['stage'] ?? `stage${j}`)}${rounds > 1 ? `@${r + 1}` : ''}` }, where: `${w}.alternate[${j}]` });
      });
    }
  });
  return out;
}

export interface ParseOptions {
  /** Names the source in errors (a file path). */
  source?: string;
  /** Folder relative data paths resolve against (default '.'). */
  base?: string;
  /** Preset stage names of the model (for recipes and validation now; `resolveStages` checks again). */
  presetStages?: readonly string[];
}

/**
 * Parses a training config object. Shape:
 * {"recipe"?: NAME, "stages"?: [stage...], "defaults"?: {stage settings}, "steps"?: N (per stage
 *  when not set there), "seed"?, "save_every"?, "keep_last"?, "log_every"?, "model"?: {"preset", "seed"?} | {"dir"}, "data"?}
 * A stage: {"name"?, "stage"?: preset stage, "trainable"?: globs, "steps", "batch_size", "grad_accum",
 *  "lr", "min_lr", "warmup_steps", "weight_decay", "betas", "eps", "clip_grad_norm",
 *  "param_groups": [{"params": globs, "lr"?, "weight_decay"?}], "data"?, "detail"?}
 */
export function parseTrainConfig(json: unknown, opts: ParseOptions = {}): TrainConfig {
  const src = opts.source ?? 'config';
  const base = opts.base ?? '.';
  if (!isObj(json)) throw new ConfigError(`${src}: expected a JSON object`);
  const top = new Reader(json, src, TOP_KEYS);
  let list: unknown[];
  if (top.has('recipe')) {
    const name = top.str('recipe', '');
    const recipe = RECIPES[name];
    if (recipe === undefined) throw new ConfigError(`${src}.recipe: unknown recipe '${name}' (known: ${Object.keys(RECIPES).join(', ')})`);
    if (top.has('stages')) throw new ConfigError(`${src}: give "recipe" or "stages", not both`);
    list = recipe(opts.presetStages ?? []);
    if (list.length === 0) throw new ConfigError(`${src}.recipe: '${name}' gives no stages for this model`);
  } else {
    if (!Array.isArray(json['stages']) || json['stages'].length === 0) throw new ConfigError(`${src}.stages must be a non-empty list of stages (or give "recipe")`);
    list = json['stages'];
  }
  const defaults = json['defaults'] === undefined ? {} : json['defaults'];
  if (!isObj(defaults)) throw new ConfigError(`${src}.defaults must be an object`);
  new Reader(defaults, `${src}.defaults`, DEFAULTS_KEYS);
  const topSteps = top.int('steps', 0, 1);
  const topData = top.has('data') ? parseData(json['data'], `${src}.data`, base) : null;
  const names = new Set<string>();
  const stages = expandAlternate(list, `${src}.stages`).map(({ o, where }): StageConfig => {
    const merged: Obj = { ...defaults, ...o };
    const r = new Reader(merged, where, STAGE_KEYS);
    let preset: string | null = null;
    let trainable: string[];
    if (r.has('stage')) {
      preset = r.str('stage', '');
      if (opts.presetStages && !opts.presetStages.includes(preset)) throw new ConfigError(`${where}.stage: the model has no preset stage '${preset}' (stages: ${opts.presetStages.join(', ')})`);
      if (r.has('trainable')) throw new ConfigError(`${where}: give "stage" or "trainable", not both`);
      trainable = [];
    } else if (r.has('trainable')) trainable = r.globs('trainable');
    else throw new ConfigError(`${where}: needs "stage" (a preset stage name) or "trainable" (path globs)`);
    let name = r.str('name', preset ?? `stage${names.size + 1}`);
    if (names.has(name)) { let k = 2; while (names.has(`${name}#${k}`)) k++; name = `${name}#${k}`; }
    names.add(name);
    const steps = r.has('steps') ? r.int('steps', 1, 1) : topSteps;
    if (steps < 1) throw new ConfigError(`${where}.steps is required (an integer >= 1), or set a top-level "steps"`);
    const lr = r.num('lr', 1e-4, 0, Infinity, true);
    const betasV = merged['betas'] ?? [0.9, 0.999];
    if (!Array.isArray(betasV) || betasV.length !== 2 || betasV.some((b) => typeof b !== 'number' || !(b >= 0 && b < 1))) throw new ConfigError(`${where}.betas must be two numbers in [0, 1), got ${JSON.stringify(betasV)}`);
    const warmupSteps = r.int('warmup_steps', 0, 0);
    if (warmupSteps > steps) throw new ConfigError(`${where}.warmup_steps ${warmupSteps} exceeds steps ${steps}`);
    const weightDecay = r.num('weight_decay', 0, 0);
    const groupsV = merged['param_groups'] ?? [];
    if (!Array.isArray(groupsV)) throw new ConfigError(`${where}.param_groups must be a list of {"params", "lr"?, "weight_decay"?}`);
    const groups = groupsV.map((g, i): ParamGroupConfig => {
      const gw = `${where}.param_groups[${i}]`;
      if (!isObj(g)) throw new ConfigError(`${gw} must be an object`);
      const gr = new Reader(g, gw, ['params', 'lr', 'weight_decay']);
      if (!gr.has('params')) throw new ConfigError(`${gw}.params is required (path globs)`);
      return { params: gr.globs('params'), lr: gr.num('lr', lr, 0, Infinity, true), weightDecay: gr.num('weight_decay', weightDecay, 0) };
    });
    const detail = r.str('detail', 'high');
    if (detail !== 'low' && detail !== 'high') throw new ConfigError(`${where}.detail must be "low" or "high", got ${JSON.stringify(detail)}`);
    return {
      name, trainable, preset, steps,
      batchSize: r.int('batch_size', 8, 1),
      gradAccum: r.int('grad_accum', 1, 1),
      lr,
      minLr: r.num('min_lr', 0, 0),
      warmupSteps,
      weightDecay,
      betas: [betasV[0] as number, betasV[1] as number],
      eps: r.num('eps', 1e-8, 0, Infinity, true),
      clipGradNorm: r.num('clip_grad_norm', 1, 0),
      groups,
      data: r.has('data') ? parseData(merged['data'], `${where}.data`, base) : null,
      detail,
    };
  });
  let model: TrainConfig['model'] = null;
  if (top.has('model')) {
    const m = json['model'];
    if (!isObj(m)) throw new ConfigError(`${src}.model must be {"preset", "seed"?} or {"dir"}`);
    const mr = new Reader(m, `${src}.model`, ['preset', 'seed', 'dir']);
    if (mr.has('preset') === mr.has('dir')) throw new ConfigError(`${src}.model needs exactly one of "preset" and "dir"`);
    model = mr.has('dir') ? { dir: parseData(mr.str('dir', ''), `${src}.model.dir`, base).path } : { preset: mr.str('preset', ''), seed: mr.int('seed', 0, 0) };
  }
  return {
    seed: top.int('seed', 0, 0),
    stages,
    saveEvery: top.int('save_every', 0, 0),
    keepLast: top.int('keep_last', 2, 1),
    logEvery: top.int('log_every', 10, 1),
    model,
    data: topData,
  };
}

/** A config for `--preset NAME` without --config: the system's recipe with `steps` each. */
export function defaultConfig(presetStages: readonly string[], steps: number, recipe?: string): Obj {
  let name = recipe;
  if (name === undefined) name = presetStages.includes('finetune') ? undefined : 'all';
  if (name === undefined) return { stages: [{ stage: 'finetune', steps, lr: 1e-3, warmup_steps: Math.min(10, Math.floor(steps / 10)) }] };
  return { recipe: name, steps, defaults: { lr: 1e-3, warmup_steps: Math.min(10, Math.floor(steps / 10)) } };
}

export interface ResolvedGroup {
  index: number;
  /** Path -> tensor of the trainable parameters in this group. */
  params: Map<string, Tensor>;
  lr: number;
  weightDecay: number;
}

/**
 * Marks a stage's parameters trainable on the model (everything else frozen) and splits them
 * into optimizer groups. Throws when a glob or a group matches nothing, naming it.
 */
export function applyStage(model: VlmModel, stage: StageConfig, where = `stage '${stage.name}'`): { trainable: string[]; groups: ResolvedGroup[] } {
  const globs = stage.preset !== null ? model.config.info.stages[stage.preset] : stage.trainable;
  if (globs === undefined) throw new ConfigError(`${where}: preset '${model.config.preset}' has no stage '${stage.preset}' (stages: ${Object.keys(model.config.info.stages).join(', ')})`);
  const leaves = flatten<Tensor>(model.params);
  // Preset stages list every key a system may have; user globs must each match something.
  for (const g of stage.preset !== null ? [] : globs) {
    const re = globToRegExp(g);
    if (![...leaves.keys()].some((p) => re.test(p))) throw new ConfigError(`${where}: trainable glob '${g}' matches no parameter`);
  }
  const res = globs.map(globToRegExp);
  const trainable: string[] = [];
  for (const [p, t] of leaves) {
    t.requiresGrad = res.some((re) => re.test(p));
    if (t.requiresGrad) trainable.push(p);
  }
  if (trainable.length === 0) throw new ConfigError(`${where}: no parameter trains`);
  const groupRes = stage.groups.map((g) => g.params.map(globToRegExp));
  const groups: ResolvedGroup[] = [...stage.groups.map((g, i) => ({ index: i, params: new Map<string, Tensor>(), lr: g.lr, weightDecay: g.weightDecay })),
    { index: stage.groups.length, params: new Map<string, Tensor>(), lr: stage.lr, weightDecay: stage.weightDecay }];
  const seen = new Set<unknown>();
  for (const p of trainable) {
    const t = leaves.get(p)!;
    if (seen.has(t.storage)) continue; // tied weights: one optimizer entry
    seen.add(t.storage);
    const gi = groupRes.findIndex((rs) => rs.some((re) => re.test(p)));
    groups[gi < 0 ? stage.groups.length : gi]!.params.set(p, t);
  }
  stage.groups.forEach((g, i) => {
    if (groups[i]!.params.size === 0) throw new ConfigError(`${where}.param_groups[${i}]: globs ${JSON.stringify(g.params)} match no trainable parameter`);
  });
  return { trainable, groups: groups.filter((g) => g.params.size > 0) };
}
