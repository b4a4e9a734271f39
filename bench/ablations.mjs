// Ablations of issue 6, on the demo's recipe at a reduced step scale (towers pre-trained once and
// shared by every variant):
//  1. sub-images (global + 2x2) vs a single global view, scored on the small-object test split;
//  2. all four encoders vs each single encoder (CLIP, DINOv2, ConvNeXt), on the normal test split;
//  3. the weight-mixed stage-1 model (beta 0.5) vs the 'real' and 'synthetic' stage-1 models:
//     caption loss on the union of both domains' validation captions (lower is better).
// Usage: node bench/ablations.mjs [--scale S] [--n N] [--seed S] [--only 1,2,3]; prints a markdown table + JSON.
import { useBackend } from '../dist/src/backends/index.js';
import * as F from '../dist/src/engine/ops/index.js';
import { noGrad } from '../dist/src/engine/autograd.js';
import { tidy } from '../dist/src/engine/tensor.js';
import { flatten } from '../dist/src/engine/tree.js';
import { mixArrays } from '../dist/src/train/mix.js';
import { DEMO_SIZES, demoConfigJson } from '../dist/src/train/demo/config.js';
import { disposeTowers, loadTowers, newDemoModel, pretrainTowers, SampleStream, STAGE1_TASKS, STAGE2_TASKS, trainDemoTokenizer, trainStage, disposeSamples } from '../dist/src/train/demo/pipeline.js';
import { demoSteps, evaluate } from '../dist/src/cli/demo.js';

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? process.argv[i + 1] : d; };
const scale = Number(arg('scale', '0.5')), n = Number(arg('n', '100')), seed = Number(arg('seed', '0'));
const only = new Set(arg('only', '1,2,3').split(',').map(Number));
useBackend('auto');
const steps = demoSteps(scale);
const log = (s) => process.stderr.write(`${s}\n`);
const t0 = performance.now();
const el = () => Math.round((performance.now() - t0) / 1000);
log(`ablations at scale ${scale}: stage1 ${steps.stage1}, stage2 ${steps.stage2} steps, batch ${steps.batch}, eval n=${n}`);
const tok = trainDemoTokenizer(DEMO_SIZES.vocab, seed, steps.tokVocabSamples);
const towers = pretrainTowers(null, steps.towers, seed);
log(`towers done ${el()} s`);
const free = (m) => { for (const t of flatten(m.params).values()) t.dispose(); };

/** Stage 1 on both domains, then stage 2, for a variant of the demo sizes. */
function trainVariant(sizes) {
  const m = newDemoModel(demoConfigJson(sizes), seed);
  loadTowers(m.params, towers);
  trainStage(m, 'pretrain', 's1', new SampleStream({ domain: 'both', split: 'train', seed, tasks: STAGE1_TASKS }, tok, m), { steps: steps.stage1, batch: steps.batch, lr: 2e-3 });
  trainStage(m, 'finetune', 's2', new SampleStream({ domain: 'both', split: 'train', seed: seed + 1, tasks: STAGE2_TASKS, smallObjects: sizes.smallTrain ?? false, pool: steps.stage2Pool }, tok, m), { steps: steps.stage2, batch: steps.batch, lr: 2e-3 });
  return m;
}
const rows = [], out = {};
const pct = (x) => `${(100 * x).toFixed(1)}%`;

if (only.has(1)) {
  for (const grid of [2, 1]) {
    const m = trainVariant({ ...DEMO_SIZES, grid });
    const e = await evaluate({ model: m, tok }, { n, seed, domain: 'both', smallObjects: true });
    out[`small_objects_grid${grid}`] = e;
    rows.push(`| small-object test split | ${grid === 2 ? 'global + 2x2 sub-images' : 'single global view'} | ${pct(e.vqa.accuracy)} | ${pct(e.rec.accuracy)} | ${pct(e.vqa.majority_accuracy)} / ${pct(e.rec.centre_accuracy)} |`);
    free(m);
    log(`grid ${grid} done ${el()} s`);
  }
}
if (only.has(2)) {
  for (const enc of [['qformer', 'clip', 'convnext', 'dinov2'], ['clip'], ['dinov2'], ['convnext']]) {
    const m = trainVariant({ ...DEMO_SIZES, encoders: enc });
    const e = await evaluate({ model: m, tok }, { n, seed, domain: 'both' });
    out[`encoders_${enc.join('+')}`] = e;
    rows.push(`| test split | encoders: ${enc.join(' + ')} | ${pct(e.vqa.accuracy)} | ${pct(e.rec.accuracy)} | ${pct(e.vqa.majority_accuracy)} / ${pct(e.rec.centre_accuracy)} |`);
    free(m);
    log(`${enc.join('+')} done ${el()} s`);
  }
}
if (only.has(3)) {
  const domainModels = {};
  for (const domain of ['real', 'synthetic']) {
    const m = newDemoModel(demoConfigJson(DEMO_SIZES), seed);
    loadTowers(m.params, towers);
    trainStage(m, 'pretrain', `s1 ${domain}`, new SampleStream({ domain, split: 'train', seed, tasks: STAGE1_TASKS }, tok, m), { steps: steps.stage1, batch: steps.batch, lr: 2e-3 });
    domainModels[domain] = m;
  }
  const mixed = newDemoModel(demoConfigJson(DEMO_SIZES), seed);
  const a = flatten(domainModels.real.params), b = flatten(domainModels.synthetic.params);
  for (const [k, t] of flatten(mixed.params)) t.data.set(mixArrays(a.get(k).data, b.get(k).data, 0.5));
  const valLoss = (m) => {
    let s = 0, c = 0;
    for (const domain of ['real', 'synthetic']) {
      const st = new SampleStream({ domain, split: 'val', seed: seed + 5, tasks: STAGE1_TASKS }, tok, m);
      for (let i = 0; i < Math.max(2, Math.round(n / 8)); i++) {
        const batch = st.batch(8);
        s += noGrad(() => tidy(() => F.item(m.forward(batch).loss)));
        c++;
        disposeSamples(batch);
      }
    }
    return s / c;
  };
  const res = { real: valLoss(domainModels.real), synthetic: valLoss(domainModels.synthetic), mixed: valLoss(mixed) };
  out.weight_mix_val_caption_loss = res;
  rows.push(`| union of real + synthetic val captions (caption loss, lower is better) | real-domain model ${res.real.toFixed(3)}; synthetic-domain model ${res.synthetic.toFixed(3)}; mixed (beta 0.5) ${res.mixed.toFixed(3)} | | | |`);
  for (const m of [mixed, domainModels.real, domainModels.synthetic]) free(m);
}
disposeTowers(towers);
process.stdout.write(`| eval set | variant | VQA acc | REC ACC@0.5 | baselines (majority / centre) |\n|---|---|---|---|---|\n${rows.join('\n')}\n`);
process.stdout.write(`${JSON.stringify({ scale, n, seed, seconds: el(), results: out })}\n`);
