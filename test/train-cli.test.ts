// `chimera train` end to end: a preset trained on a JSONL corpus gives a loadable model folder,
// metrics and a loss curve; --stop-after + --resume continues; bad input exits 2 naming the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../src/models/load.ts';
import { tmpDir, writeCorpus } from './helpers/train.ts';

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;

function chimera(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, 'train', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('chimera train --preset: stop, resume, model folder, metrics, SVG', async () => {
  const dir = tmpDir('train-cli');
  const data = await writeCorpus(dir, 4);
  const out = path.join(dir, 'run');
  const common = ['--preset', 'sphinx-tiny:tiny', '--data', data, '--out', out, '--steps', '3', '--batch', '2', '--json'];
  const a = chimera(...common, '--stop-after', '1');
  assert.equal(a.code, 0, a.err);
  const ja = JSON.parse(a.out);
  assert.equal(ja.steps, 1);
  assert.equal(ja.stopped, true);
  assert.ok(a.err.split('\n').some((l) => l.startsWith('{"event":"step"')), a.err);
  const again = chimera(...common);
  assert.equal(again.code, 2);
  assert.match(again.err, /already holds checkpoints; pass --resume/);
  const b = chimera(...common, '--resume');
  assert.equal(b.code, 0, b.err);
  const jb = JSON.parse(b.out);
  assert.equal(jb.resumed_from, 1);
  assert.equal(jb.steps, 3);
  assert.equal(jb.model, path.join(out, 'model'));
  const m = await loadModel(jb.model);
  assert.equal(m.modelType, 'chimera_vlm');
  assert.ok(fs.existsSync(path.join(jb.model, 'tokenizer.json')));
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.step), [1, 2, 3]);
  for (const k of ['stage', 'loss', 'ce', 'aux', 'lr', 'tokens_per_s', 'grad_norm']) assert.ok(k in lines[0], k);
  assert.match(fs.readFileSync(path.join(out, 'loss.svg'), 'utf8'), /^<svg[^>]*>[\s\S]*<polyline[\s\S]*<\/svg>\n$/);
});

test('chimera train: bad input exits 2 with a one-line reason', async () => {
  const dir = tmpDir('train-cli-bad');
  const data = await writeCorpus(dir, 2);
  const cfg = path.join(dir, 'cfg.json');
  fs.writeFileSync(cfg, JSON.stringify({ model: { preset: 'llava-1.5:tiny' }, data: 'train.jsonl', stages: [{ stage: 'pretrain', steps: 2, lr: -1 }] }));
  const cases: [string[], RegExp][] = [
    [['--preset', 'sphinx-tiny:tiny', '--data', data], /--out is required/],
    [['--out', path.join(dir, 'o1')], /give --config FILE, --preset NAME/],
    [['--preset', 'nope:tiny', '--out', path.join(dir, 'o2'), '--data', data], /unknown preset 'nope:tiny'/],
    [['--config', cfg, '--out', path.join(dir, 'o3')], /cfg\.json\.stages\[0\]\.lr must be a number > 0/],
    [['--preset', 'llava-1.5:tiny', '--out', path.join(dir, 'o4')], /has no training data: give --data FILE/],
    [['--preset', 'llava-1.5:tiny', '--out', path.join(dir, 'o5'), '--data', data, '--steps', 'x'], /--steps must be an integer/],
  ];
  for (const [args, re] of cases) {
    const r = chimera(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  }
});
