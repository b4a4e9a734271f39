// `chimera demo` (= `npm start`), the main job. Without a checkpoint in the demo folder it builds
// a tiny SPHINX from nothing: corpus → byte-level BPE → the four encoders pre-trained with their
// own paradigms → SPHINX stage 1 (LLM unfrozen, captions) once on the 'real' domain and once on
// the 'synthetic' one → the two models mixed by weight (θ = β·θ_real + (1−β)·θ_syn) → stage 2
// multi-task instruction tuning on both domains. Then (and on every later run) it scores held-out
// VQA accuracy and REC ACC@0.5 against trivial baselines (majority answer, centre box), answers
// questions about sample images, draws the answers' boxes on them (PNG) and prints a report.

import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { useBackend } from '../backends/index.ts';
import { makeSample, type CorpusSample } from '../data/corpus.ts';
import { parseFirstBox, parseGrounded, TEMPLATES, iou, type TaskName } from '../data/index.ts';
import type { NormBox } from '../data/types.ts';
import { recScore } from '../eval/grounding.ts';
import { normalizeVqaAnswer, vqaScore } from '../eval/vqa.ts';
import { tokenizerFromJson, loadTokenizer, type Tokenizer } from '../io/tokenizer.ts';
import { loadModel } from '../models/load.ts';
import { VlmModel, type VlmConfig, type VlmParams } from '../models/vlm/model.ts';
import { generate } from '../serve/generate.ts';
import { mixCheckpoints } from '../train/mix.ts';
import { DEMO_SIZES, demoConfigJson, type DemoSizes } from '../train/demo/config.ts';
import {
  encodeTurn, loadTowers, newDemoModel, pretrainTowers, questionOf, saveDemoModel, SampleStream, STAGE1_TASKS, STAGE2_TASKS,
  trainDemoTokenizer, trainStage, disposeTowers, type StageEvent,
} from '../train/demo/pipeline.ts';
import { flatten } from '../engine/tree.ts';
import type { Tensor } from '../engine/tensor.ts';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';

// ---- progress ------------------------------------------------------------------------------------

class Reporter {
  private readonly tty: boolean;
  private readonly t0 = performance.now();
  private lastJson = 0;
  constructor(json: boolean) { this.tty = !json && process.stderr.isTTY === true && !process.env['CI']; }
  elapsed(): number { return (performance.now() - this.t0) / 1000; }
  phase(name: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${name}\n`);
    else process.stderr.write(`${JSON.stringify({ phase: name, elapsed_s: Math.round(this.elapsed()) })}\n`);
  }
  step(stage: string, step: number, total: number, loss: number, secs: number, extra: Record<string, number> = {}): void {
    const eta = step > 0 ? (secs / step) * (total - step) : 0;
    if (this.tty) {
      const w = 20, f = Math.round((w * step) / total);
      process.stderr.write(`\r\x1b[K${stage.padEnd(18)} [${'#'.repeat(f)}${'-'.repeat(w - f)}] ${step}/${total} loss ${loss.toFixed(3)} ETA ${Math.round(eta)}s  total ${Math.round(this.elapsed())}s`);
      if (step === total) process.stderr.write('\n');
    } else if (step === total || step === 1 || performance.now() - this.lastJson > 5000) {
      this.lastJson = performance.now();
      process.stderr.write(`${JSON.stringify({ stage, step, total, loss: Math.round(loss * 1e4) / 1e4, eta_s: Math.round(eta), elapsed_s: Math.round(this.elapsed()), ...extra })}\n`);
    }
  }
}

// ---- answering -----------------------------------------------------------------------------------

export interface Answerer {
  model: VlmModel;
  tok: Tokenizer;
}

/** Greedy answer to one question about one image. */
export async function answer(a: Answerer, image: CorpusSample['image'], question: string, maxNewTokens = 32, detail: 'low' | 'high' = 'high'): Promise<string> {
  // The prompt is exactly the training prefix before the supervised reply (it ends in "Assistant: ").
  const t = encodeTurn(a.tok, a.model.config.imageTokenId, question, '');
  const cut = t.labels.findIndex((l) => l !== -100);
  const ids = cut < 0 ? t.ids : t.ids.slice(0, cut);
  const prep = a.model.prepareImage(image, detail);
  const session = a.model.session({ ids, images: [prep] });
  try {
    const eos = a.tok.eosId;
    const [r] = await generate(session, [session.ids], {
      maxNewTokens, temperature: 0, stopStrings: ['\n###'], ...(eos !== null ? { stopTokenIds: [eos] } : {}),
      decode: (x) => a.tok.decode(x, { skipSpecialTokens: true }),
    });
    return (r!.text ?? '').trim();
  } finally {
    session.dispose();
    for (const t of Object.values(prep.pixels)) t.dispose();
  }
}

export interface EvalNumbers {
  vqa: { accuracy: number; count: number; majority_answer: string; majority_accuracy: number };
  rec: { accuracy: number; mean_iou: number; count: number; centre_box: NormBox; centre_accuracy: number };
}

export interface EvalSpec { n: number; seed: number; domain: 'real' | 'synthetic' | 'both'; smallObjects?: boolean; detail?: 'low' | 'high' }

/** Held-out VQA accuracy and REC ACC@0.5 with the baselines' scores on the same items (baselines fitted on the train split). */
export async function evaluate(a: Answerer, spec: EvalSpec): Promise<EvalNumbers> {
  const base = { domain: spec.domain, seed: spec.seed + 4242, smallObjects: spec.smallObjects ?? false } as const;
  // Baselines from training data.
  const counts = new Map<string, number>();
  let sw = 0, sh = 0, nb = 0;
  for (let i = 0; i < 600; i++) {
    const v = makeSample(i, { ...base, split: 'train', tasks: ['vqa'] });
    const k = normalizeVqaAnswer(v.conversations[1]!.value);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    const r = parseFirstBox(makeSample(i, { ...base, split: 'train', tasks: ['rec'] }).conversations[1]!.value);
    if (r) { sw += r[2] - r[0]; sh += r[3] - r[1]; nb++; }
  }
  const majority = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0];
  const w = sw / nb, h = sh / nb;
  const centre: NormBox = [0.5 - w / 2, 0.5 - h / 2, 0.5 + w / 2, 0.5 + h / 2];
  const vqaItems: { prediction: string; references: string[] }[] = [], vqaBase: typeof vqaItems = [];
  const recItems: { prediction: string; box: NormBox }[] = [], recBase: typeof recItems = [];
  const centreText = `[${centre.map((v) => v.toFixed(2)).join(', ')}]`;
  for (let i = 0; i < spec.n; i++) {
    const v = makeSample(i, { ...base, split: 'test', tasks: ['vqa'] });
    const ref = v.conversations[1]!.value;
    vqaItems.push({ prediction: await answer(a, v.image, questionOf(v), 8, spec.detail), references: [ref] });
    vqaBase.push({ prediction: majority, references: [ref] });
    const r = makeSample(i, { ...base, split: 'test', tasks: ['rec'] });
    const gt = parseFirstBox(r.conversations[1]!.value)!;
    recItems.push({ prediction: await answer(a, r.image, questionOf(r), 24, spec.detail), box: gt });
    recBase.push({ prediction: centreText, box: gt });
  }
  const vq = vqaScore(vqaItems), rc = recScore(recItems);
  return {
    vqa: { accuracy: vq.accuracy, count: vq.count, majority_answer: majority, majority_accuracy: vqaScore(vqaBase).accuracy },
    rec: { accuracy: rc.accuracy, mean_iou: rc.mean_iou, count: rc.count, centre_box: centre, centre_accuracy: recScore(recBase).accuracy },
  };
}

// ---- drawing -------------------------------------------------------------------------------------

export const BOX_COLOUR = '#ff00ff';
export const GROUNDED_COLOUR = '#00e5ff';
const DRAW = 256;

/** The image upscaled to 256 px with boxes (normalised, padded-square) drawn as an SVG overlay. */
export async function drawBoxes(image: CorpusSample['image'], boxes: { box: NormBox; colour: string; label?: string }[], file: string): Promise<void> {
  const { width: W, height: H, data } = image;
  const px = Buffer.alloc(W * H * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.max(0, Math.min(255, Math.round(data[i]! * 255)));
  const S = DRAW;
  const esc = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
  const rects = boxes.map(({ box, colour, label }) => {
    const [x1, y1, x2, y2] = box.map((v) => Math.round(v * S));
    const t = label ? `<text x="${x1! + 3}" y="${Math.max(12, y1! - 3)}" font-family="sans-serif" font-size="12" fill="${colour}">${esc(label)}</text>` : '';
    return `<rect x="${x1}" y="${y1}" width="${Math.max(1, x2! - x1!)}" height="${Math.max(1, y2! - y1!)}" fill="none" stroke="${colour}" stroke-width="3"/>${t}`;
  }).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${S}" height="${S}">${rects}</svg>`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: W, height: H, channels: 3 } }).resize(S, S, { kernel: 'nearest' })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }]).png().toFile(file);
}

// ---- the command ---------------------------------------------------------------------------------

export interface DemoOptions {
  out: string;
  scale: number;
  seed: number;
  json: boolean;
  sizes?: DemoSizes;
  evalN?: number;
}

/** Step counts at scale 1 (about 15–20 minutes on 2 cores from nothing). */
export function demoSteps(scale: number): { tokVocabSamples: number; towers: { clip: number; dino: number; supervised: number; qformer: number }; stage1: number; stage2: number; stage2Pool: number; batch: number; evalN: number } {
  const s = (n: number, min: number): number => Math.max(min, Math.round(n * scale));
  return {
    tokVocabSamples: s(1500, 100),
    towers: { clip: s(250, 3), dino: s(120, 3), supervised: s(300, 3), qformer: s(150, 3) },
    stage1: s(250, 3), stage2: s(2400, 5), stage2Pool: s(6000, 8), batch: scale < 0.1 ? 4 : 8, evalN: s(150, 6),
  };
}

async function loadDemo(dir: string): Promise<Answerer> {
  const loaded = await loadModel<VlmConfig, VlmParams>(dir);
  return { model: new VlmModel(loaded.params, loaded.config), tok: loadTokenizer(dir) };
}

function freeModel(m: VlmModel): void {
  for (const t of flatten<Tensor>(m.params).values()) t.dispose();
}

export async function runDemo(o: DemoOptions, rep: Reporter): Promise<Record<string, unknown>> {
  const modelDir = path.join(o.out, 'model');
  const steps = demoSteps(o.scale);
  const sizes = o.sizes ?? DEMO_SIZES;
  const trained = !fs.existsSync(path.join(modelDir, 'model.safetensors'));
  const timings: Record<string, number> = {};
  const mark = (k: string, t: number): void => { timings[k] = Math.round((rep.elapsed() - t) * 10) / 10; };
  let training: Record<string, unknown> | null = null;
  if (trained) {
    fs.mkdirSync(o.out, { recursive: true });
    let t = rep.elapsed();
    rep.phase(`tokenizer: byte-level BPE (${sizes.vocab} ids) on the corpus text`);
    const tok = trainDemoTokenizer(sizes.vocab, o.seed, steps.tokVocabSamples);
    mark('tokenizer_s', t);
    t = rep.elapsed();
    rep.phase('encoders: CLIP (contrastive), DINOv2 (self-distillation), ConvNeXt (supervised), Q-Former (BLIP-2 stage 1)');
    const towers = pretrainTowers(path.join(o.out, 'encoders'), steps.towers, o.seed, (e) => rep.step(`encoder ${e.kind}`, e.step, e.total, e.loss, e.seconds));
    mark('encoders_s', t);
    const configJson = demoConfigJson(sizes);
    const stageLog = (e: StageEvent): void => rep.step(e.stage, e.step, e.total, e.loss, e.seconds, { tokens_per_s: Math.round(e.tokensPerS) });
    const domainDirs: Record<string, string> = {};
    const losses: Record<string, { first: number; last: number }> = {};
    const trend = (xs: number[]): { first: number; last: number } => {
      const k = Math.max(1, Math.floor(xs.length / 5)), avg = (a: number[]): number => a.reduce((p, q) => p + q, 0) / a.length;
      return { first: avg(xs.slice(0, k)), last: avg(xs.slice(-k)) };
    };
    for (const domain of ['real', 'synthetic'] as const) {
      t = rep.elapsed();
      rep.phase(`stage 1 (${domain}): captions, LLM unfrozen`);
      const m = newDemoModel(configJson, o.seed);
      loadTowers(m.params as Record<string, unknown>, towers);
      losses[`stage1_${domain}`] = trend(trainStage(m, 'pretrain', `stage1 ${domain}`, new SampleStream({ domain, split: 'train', seed: o.seed, tasks: STAGE1_TASKS }, tok, m), { steps: steps.stage1, batch: steps.batch, lr: 2e-3 }, stageLog));
      domainDirs[domain] = path.join(o.out, `stage1-${domain}`);
      saveDemoModel(domainDirs[domain]!, m, configJson, tok);
      freeModel(m);
      mark(`stage1_${domain}_s`, t);
    }
    disposeTowers(towers);
    t = rep.elapsed();
    const beta = 0.5;
    rep.phase(`weight mix: θ = ${beta}·θ_real + ${1 - beta}·θ_syn`);
    const mixedDir = path.join(o.out, 'stage1-mixed');
    mixCheckpoints(domainDirs['real']!, domainDirs['synthetic']!, mixedDir, beta);
    t = rep.elapsed();
    rep.phase('stage 2: multi-task instruction tuning on both domains (VQA, captions, REC, REG, grounded captions, detection, keypoints, text)');
    const m = (await loadDemo(mixedDir)).model;
    losses['stage2'] = trend(trainStage(m, 'finetune', 'stage2 multi-task', new SampleStream({ domain: 'both', split: 'train', seed: o.seed + 1, tasks: STAGE2_TASKS, pool: steps.stage2Pool }, tok, m), { steps: steps.stage2, batch: steps.batch, lr: 2e-3 }, stageLog));
    saveDemoModel(modelDir, m, configJson, tok);
    freeModel(m);
    mark('stage2_s', t);
    void tokenizerFromJson;
    training = { steps, timings, losses, mix_beta: beta };
    fs.writeFileSync(path.join(o.out, 'training.json'), `${JSON.stringify(training, null, 2)}\n`);
  }
  // Evaluate and answer.
  let t = rep.elapsed();
  rep.phase('evaluating on held-out test splits (VQA accuracy, REC ACC@0.5) against majority-answer and centre-box baselines');
  const a = await loadDemo(modelDir);
  const ev = await evaluate(a, { n: o.evalN ?? steps.evalN, seed: o.seed, domain: 'both' });
  mark('eval_s', t);
  t = rep.elapsed();
  rep.phase('answering questions about sample images');
  const shown: Record<string, unknown>[] = [];
  const samplesDir = path.join(o.out, 'samples');
  for (let i = 0; i < 4; i++) {
    const s = makeSample(i, { domain: i % 2 === 0 ? 'real' : 'synthetic', split: 'test', seed: o.seed + 77, tasks: ['grounded_caption' as TaskName] });
    const obj = s.objects.find((x) => x.kind !== 'text')!;
    const phrase = `the ${obj.color} ${obj.name}`;
    const qs = [
      TEMPLATES.vqa(`What colour is the ${obj.name}?`),
      TEMPLATES.vqa(`How many ${obj.plural} are there?`),
      TEMPLATES.rec(phrase),
      TEMPLATES.grounded_caption(),
    ];
    const answers: { question: string; answer: string }[] = [];
    for (const q of qs) answers.push({ question: q, answer: await answer(a, s.image, q, 48) });
    const boxes: { box: NormBox; colour: string; label?: string }[] = [];
    const recBox = parseFirstBox(answers[2]!.answer);
    if (recBox) boxes.push({ box: recBox, colour: BOX_COLOUR, label: obj.name });
    for (const g of parseGrounded(answers[3]!.answer)) for (const b of g.boxes) boxes.push({ box: b, colour: GROUNDED_COLOUR });
    const file = path.join(samplesDir, `sample-${i}-${s.domain}.png`);
    await drawBoxes(s.image, boxes, file);
    const truth = s.objects.find((x) => x === obj)!.box;
    const gtNorm: NormBox = [truth[0] / s.image.width, truth[1] / s.image.height, truth[2] / s.image.width, truth[3] / s.image.height];
    shown.push({ image: file, domain: s.domain, answers, rec_iou: recBox ? iou(recBox, gtNorm) : 0 });
  }
  mark('samples_s', t);
  freeModel(a.model);
  const report = { model: modelDir, trained_now: trained, seconds: Math.round(rep.elapsed()), eval: ev, samples: shown, ...(training ? { training } : {}) };
  fs.writeFileSync(path.join(o.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export async function demo(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['out', 'steps-scale', 'seed', 'backend', 'eval-n'], ['json', 'retrain']);
  if (p.positionals.length > 0) throw new CliError(`unexpected argument '${p.positionals[0]}'`);
  const out = strFlag(p, 'out', process.env['CHIMERA_DEMO_DIR'] ?? './chimera-demo');
  const scaleRaw = strFlag(p, 'steps-scale', '1');
  const scale = Number(scaleRaw);
  if (!(Number.isFinite(scale) && scale > 0 && scale <= 10)) throw new CliError(`--steps-scale must be a number in (0, 10], got '${scaleRaw}'`);
  const seed = intFlag(p, 'seed', 0, 0, 2 ** 31 - 1);
  const evalN = p.flags.has('eval-n') ? intFlag(p, 'eval-n', 0, 1, 100000) : undefined;
  const json = p.flags.has('json');
  const be = useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  if (p.flags.has('retrain')) fs.rmSync(path.join(out, 'model'), { recursive: true, force: true });
  const rep = new Reporter(json);
  rep.phase(`chimera demo: a tiny SPHINX (4 encoders, global view + 2x2 sub-images) in ${out}; backend ${be.name}`);
  const r = await runDemo({ out, scale, seed, json, ...(evalN !== undefined ? { evalN } : {}) }, rep) as { eval: EvalNumbers; samples: { image: string; answers: { question: string; answer: string }[] }[]; seconds: number; trained_now: boolean };
  if (json) { process.stdout.write(`${JSON.stringify(r)}\n`); return; }
  const e = r.eval;
  const log = (s: string): void => void process.stdout.write(`${s}\n`);
  log('');
  log(`held-out test split (${e.vqa.count} VQA questions, ${e.rec.count} referring expressions, both domains):`);
  log(`  | metric | demo model | trivial baseline |`);
  log(`  |---|---|---|`);
  log(`  | VQA accuracy | ${pct(e.vqa.accuracy)} | ${pct(e.vqa.majority_accuracy)} (always "${e.vqa.majority_answer}") |`);
  log(`  | REC ACC@0.5 | ${pct(e.rec.accuracy)} | ${pct(e.rec.centre_accuracy)} (centre box) |`);
  log('');
  for (const s of r.samples) {
    log(`${s.image}:`);
    for (const qa of s.answers) log(`  Q: ${qa.question.split('\n')[0]}\n  A: ${qa.answer}`);
  }
  log('');
  log(`${r.trained_now ? 'trained from nothing and evaluated' : 'loaded the checkpoint and evaluated'} in ${r.seconds} s; model folder ${path.join(out, 'model')} (chimera run --model ... --image ...)`);
}

/** The previous demo's task, kept for the optimizer tests: [digits..., SEP, sorted digits...], targets -100 except the sorted half. */
export function sortingBatch(rng: { int(n: number): number }, batch: number): { tokens: Int32Array; targets: Int32Array; T: number } {
  const LEN = 8, SEP = 10, T = 2 * LEN + 1;
  const tokens = new Int32Array(batch * T), targets = new Int32Array(batch * T).fill(-100);
  for (let b = 0; b < batch; b++) {
    const xs = Array.from({ length: LEN }, () => rng.int(10));
    const seq = [...xs, SEP, ...[...xs].sort((p, q) => p - q)];
    for (let t = 0; t < T; t++) tokens[b * T + t] = seq[t]!;
    for (let t = LEN; t < T - 1; t++) targets[b * T + t] = seq[t + 1]!;
  }
  return { tokens, targets, T };
}
