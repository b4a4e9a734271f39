// `chimera mix --search` end to end on two tiny multimodal models: every candidate beta is scored
// on the validation file and the best mix is written as a loadable model folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { corpusSamples } from '../src/data/corpus.ts';
import { writeCorpus } from '../src/data/corpus-writer.ts';
import { createPreset } from '../src/models/vlm/create.ts';
import { SafetensorsFile } from '../src/io/safetensors.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-mixsearch-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

test('mix --search scores each beta with the eval harness and writes the best mix', async () => {
  const a = path.join(TMP, 'a'), b = path.join(TMP, 'b'), out = path.join(TMP, 'c');
  createPreset('sphinx-tiny:tiny', a, { seed: 1 });
  createPreset('sphinx-tiny:tiny', b, { seed: 2 });
  const data = await writeCorpus(path.join(TMP, 'val'), corpusSamples(4, { domain: 'both', split: 'val', seed: 3, tasks: ['vqa'] }), 'val');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/src/cli/main.js'), 'mix', '--a', a, '--b', b, '--out', out, '--search', '0,0.5,1', '--data', data.file, '--task', 'vqa', '--max-tokens', '3', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.deepEqual(lines.slice(0, 3).map((l) => l.beta), [0, 0.5, 1]);
  for (const l of lines.slice(0, 3)) assert.equal(l.count, 4);
  const best = lines[3]!;
  assert.ok([0, 0.5, 1].includes(best.best_beta!));
  const pick = best.best_beta === 1 ? a : best.best_beta === 0 ? b : null;
  const got = SafetensorsFile.open(path.join(out, 'model.safetensors'));
  const key = 'language_model.model.norm.weight';
  if (pick !== null) {
    const want = SafetensorsFile.open(path.join(pick, 'model.safetensors'));
    assert.deepEqual(Array.from(got.readF32(key)), Array.from(want.readF32(key)));
    want.close();
  }
  got.close();
  assert.ok(fs.existsSync(path.join(out, 'tokenizer.json')));
});
