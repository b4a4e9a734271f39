// The demo at tiny settings: from nothing to a report, a model folder and drawn sample images;
// a second run loads the checkpoint instead of training; drawn boxes carry the box colour.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { BOX_COLOUR, drawBoxes } from '../src/cli/demo.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

test('chimera demo --steps-scale 0.02 trains from nothing, reports, draws; a second run reuses the checkpoint', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-demo-'));
  const run = (): { status: number | null; stdout: string; stderr: string } => spawnSync(process.execPath, [MAIN, 'demo', '--steps-scale', '0.02', '--eval-n', '4', '--out', out, '--json'], { encoding: 'utf8', timeout: 120_000 });
  const r = run();
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(rep.trained_now, true);
  assert.ok(rep.eval.vqa.count === 4 && rep.eval.rec.count === 4);
  for (const k of ['accuracy', 'majority_accuracy']) assert.ok(rep.eval.vqa[k] >= 0 && rep.eval.vqa[k] <= 1);
  assert.ok(fs.existsSync(path.join(out, 'report.json')));
  assert.ok(fs.existsSync(path.join(out, 'model', 'model.safetensors')) && fs.existsSync(path.join(out, 'model', 'tokenizer.json')));
  for (const k of ['clip', 'dino', 'supervised', 'qformer']) assert.ok(fs.existsSync(path.join(out, 'encoders', k, 'config.json')), k);
  const pngs = fs.readdirSync(path.join(out, 'samples')).filter((f) => f.endsWith('.png'));
  assert.equal(pngs.length, 4);
  // JSON progress lines on stderr when not a terminal.
  assert.ok(r.stderr.split('\n').some((l) => l.startsWith('{"stage":"stage2')), r.stderr.slice(-500));
  const again = run();
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout.trim().split('\n').pop()!).trained_now, false);
});

test('chimera demo rejects a bad --steps-scale with exit code 2', () => {
  const r = spawnSync(process.execPath, [MAIN, 'demo', '--steps-scale', 'lots'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--steps-scale/);
});

test('a drawn box has the box colour on its edge and not inside', async () => {
  const W = 64, data = new Float32Array(W * W * 3).fill(0.2);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-draw-')), 'box.png');
  await drawBoxes({ width: W, height: W, data }, [{ box: [0.25, 0.25, 0.75, 0.75], colour: BOX_COLOUR }], file);
  const { data: px, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number): number[] => { const o = (y * info.width + x) * info.channels; return [px[o]!, px[o + 1]!, px[o + 2]!]; };
  assert.equal(info.width, 256);
  assert.deepEqual(at(64, 128), [255, 0, 255]); // left edge, x = 0.25 * 256
  assert.deepEqual(at(128, 64), [255, 0, 255]); // top edge
  assert.deepEqual(at(128, 128), [51, 51, 51]); // inside: the image
});
