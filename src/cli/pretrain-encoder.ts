// `chimera pretrain-encoder --kind clip|dino|supervised|qformer --out DIR [--steps N] [--seed S]
// [--batch B] [--lr LR] [--config FILE] [--vision DIR] [--data auto|subset|full] [--json]`:
// pre-trains one tiny visual tower on the built-in corpus with its own paradigm (CLIP:
// contrastive image–text; DINO: self-distillation; ConvNeXt: supervised multi-label
// classification; Q-Former: BLIP-2 stage 1 over a frozen CLIP ViT given by --vision, or one
// pre-trained first). Writes a model folder in the tower's HF family format plus pretrain.json.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { useBackend } from '../backends/index.ts';
import { loadModel } from '../models/load.ts';
import type { ClipVisionParams } from '../models/clip-vision.ts';
import { DEMO_VIEW, towerConfigs } from '../train/demo/config.ts';
import { PRETRAIN_KINDS, pretrainClip, pretrainDino, pretrainQFormer, pretrainSupervised, saveTower, type PretrainKind, type PretrainResult } from '../train/pretrain/index.ts';
import type { PretrainEvent } from '../train/pretrain/common.ts';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new CliError(`cannot read --config ${file}: ${(e as Error).message}`); }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) { throw new CliError(`--config ${file}: ${(e as Error).message}`); }
}

export async function pretrainEncoder(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['kind', 'out', 'steps', 'seed', 'batch', 'lr', 'config', 'vision', 'data', 'backend'], ['json']);
  if (p.positionals.length > 0) throw new CliError(`unexpected argument '${p.positionals[0]}'`);
  const kindRaw = strFlag(p, 'kind', '');
  if (kindRaw === '') throw new CliError(`--kind is required (${PRETRAIN_KINDS.join('|')})`);
  if (!(PRETRAIN_KINDS as readonly string[]).includes(kindRaw)) throw new CliError(`--kind must be one of ${PRETRAIN_KINDS.join('|')}, got '${kindRaw}'`);
  const kind = kindRaw as PretrainKind;
  const out = strFlag(p, 'out', '');
  if (out === '') throw new CliError('--out is required');
  const steps = intFlag(p, 'steps', kind === 'dino' ? 120 : kind === 'qformer' ? 150 : 250, 1, 1_000_000);
  const seed = intFlag(p, 'seed', 0, 0, 2 ** 31 - 1);
  const batch = p.flags.has('batch') ? intFlag(p, 'batch', 0, 2, 4096) : undefined;
  const lrRaw = p.flags.get('lr');
  const lr = lrRaw === undefined ? undefined : Number(lrRaw);
  if (lr !== undefined && !(Number.isFinite(lr) && lr > 0 && lr < 1)) throw new CliError(`--lr must be a number in (0, 1), got '${String(lrRaw)}'`);
  const fashion = strFlag(p, 'data', 'auto', ['auto', 'subset', 'full']) as 'auto' | 'subset' | 'full';
  const json = p.flags.has('json');
  const be = useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const cfgFile = strFlag(p, 'config', '');
  const defaults: Record<PretrainKind, () => Record<string, unknown>> = { clip: towerConfigs.clip, dino: towerConfigs.dinov2, supervised: towerConfigs.convnext, qformer: towerConfigs.qformer };
  const config = cfgFile !== '' ? readJson(cfgFile) : defaults[kind]();
  let last = 0;
  const onStep = (e: PretrainEvent): void => {
    if (e.step === e.total || e.step === 1 || performance.now() - last > 3000) {
      last = performance.now();
      if (json || !process.stderr.isTTY) process.stderr.write(`${JSON.stringify({ kind: e.kind, step: e.step, total: e.total, loss: Math.round(e.loss * 1e4) / 1e4, elapsed_s: Math.round(e.seconds) })}\n`);
      else process.stderr.write(`\r\x1b[K${e.kind} step ${e.step}/${e.total} loss ${e.loss.toFixed(4)} ${Math.round(e.seconds)}s${e.step === e.total ? '\n' : ''}`);
    }
  };
  const common = { steps, seed, fashion, onStep, ...(batch !== undefined ? { batch } : {}), ...(lr !== undefined ? { lr } : {}) };
  let r: PretrainResult<unknown>;
  try {
    if (kind === 'clip') { r = pretrainClip(config, common); saveTower(out, kind, config, r); }
    else if (kind === 'dino') { r = pretrainDino(config, common); saveTower(out, kind, config, r); }
    else if (kind === 'supervised') { r = pretrainSupervised(config, { ...common, viewSize: DEMO_VIEW }); saveTower(out, kind, config, r); }
    else {
      const visionDir = strFlag(p, 'vision', '');
      let vision: { config: Record<string, unknown>; params: ClipVisionParams };
      if (visionDir !== '') {
        const loaded = await loadModel<unknown, ClipVisionParams>(visionDir);
        if (loaded.modelType !== 'clip_vision_model') throw new CliError(`--vision ${visionDir} is a '${loaded.modelType}' model; the Q-Former needs a clip_vision_model image encoder`);
        vision = { config: loaded.configJson, params: loaded.params };
      } else {
        const c = towerConfigs.clip();
        vision = { config: c, params: pretrainClip(c, { ...common, steps: Math.max(1, Math.round(steps * 1.5)) }).params };
      }
      const queries = typeof config['num_query_tokens'] === 'number' ? (config['num_query_tokens'] as number) : towerConfigs.queries;
      r = pretrainQFormer(config, queries, vision, common);
      saveTower(out, kind, config, r, { vision, queries });
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/config|must|missing|not a multiple/.test(msg) && cfgFile !== '') throw new CliError(`${cfgFile}: ${msg}`);
    throw e;
  }
  const res = { kind, out: path.resolve(out), steps, seconds: Math.round(r.seconds * 10) / 10, loss_first: r.first, loss_last: r.last, probe: r.probe, backend: be.name };
  if (json) process.stdout.write(`${JSON.stringify(res)}\n`);
  else process.stdout.write(`wrote ${out}: ${kind} tower, loss ${r.first.toFixed(3)} -> ${r.last.toFixed(3)} in ${res.seconds} s; ${r.probe.name}: ${(100 * r.probe.value).toFixed(1)}% (chance ${(100 * r.probe.chance).toFixed(1)}%)\n`);
}
