// Scorers on hand-computed cases, and `chimera eval --predictions` end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bleu, captionTokens, ciderD } from '../src/eval/caption.ts';
import { recScore } from '../src/eval/grounding.ts';
import { evaluate, exampleFromRecord, scoreTask } from '../src/eval/harness.ts';
import { normalizeVqaAnswer, vqaAccuracy, vqaScore } from '../src/eval/vqa.ts';
import { mmeParse, mmeScore, popeParse, popeScore } from '../src/eval/yesno.ts';
import { loadConversations } from '../src/data/conversations.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const close = (a: number, b: number, eps = 1e-9): void => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test('VQA normalisation', () => {
  assert.equal(normalizeVqaAnswer('Two.'), '2');
  assert.equal(normalizeVqaAnswer('The dog'), 'dog');
  assert.equal(normalizeVqaAnswer('an apple'), 'apple');
  assert.equal(normalizeVqaAnswer('dont'), "don't");
  assert.equal(normalizeVqaAnswer('Yes!'), 'yes');
  assert.equal(normalizeVqaAnswer('1,000'), '1000');
  assert.equal(normalizeVqaAnswer('black-and-white'), 'black and white');
  assert.equal(normalizeVqaAnswer('3.5'), '3.5');
  assert.equal(normalizeVqaAnswer(' red\n'), 'red');
  assert.equal(normalizeVqaAnswer('none'), '0');
});

test('VQA accuracy: 10 answers leave-one-out, single answer exact', () => {
  assert.equal(vqaAccuracy('two', ['2', '2', '2', 'two', 'two', 'two', '2', '2', '2', '2']), 1);
  // 2 of 10 say cat: subsets without a cat see 2 matches (2/3), with one see 1 (1/3): (2/3·8 + 1/3·2)/10 = 0.6
  close(vqaAccuracy('cat', ['cat', 'cat', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog']), 0.6);
  close(vqaAccuracy('cat', ['cat', 'cat', 'cat', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog', 'dog']), (3 * (2 / 3) + 7 * 1) / 10);
  assert.equal(vqaAccuracy('bird', Array(10).fill('dog')), 0);
  assert.equal(vqaAccuracy('The Red.', ['red']), 1);
  assert.equal(vqaAccuracy('reds', ['red']), 0);
  close(vqaScore([{ prediction: 'red', references: ['red'] }, { prediction: 'blue', references: ['red'] }]).accuracy, 0.5);
  assert.throws(() => vqaAccuracy('x', []), /no reference/);
});

test('POPE: first-sentence negation parse and metrics with yes positive', () => {
  assert.equal(popeParse('Yes, there is a dog.'), 'yes');
  assert.equal(popeParse('No.'), 'no');
  assert.equal(popeParse('There is not a dog in the image.'), 'no');
  assert.equal(popeParse('Yes. No other animals.'), 'yes');
  const m = popeScore([
    { prediction: 'Yes, there is', label: 'yes' }, { prediction: 'No.', label: 'no' },
    { prediction: 'There is not a dog.', label: 'yes' }, { prediction: 'yes', label: 'yes' },
  ]);
  // tp 2, tn 1, fn 1, fp 0
  assert.equal(m.accuracy, 0.75); assert.equal(m.precision, 1); close(m.recall, 2 / 3); close(m.f1, 0.8); assert.equal(m.yes_ratio, 0.5);
  assert.throws(() => popeScore([{ prediction: 'yes', label: 'maybe' }]), /yes or no/);
});

test('MME: acc, acc+ per image, score', () => {
  assert.equal(mmeParse('Yes.'), 'yes');
  assert.equal(mmeParse('no, it is not'), 'no');
  assert.equal(mmeParse('I think so'), 'other');
  const m = mmeScore([
    { prediction: 'Yes', label: 'yes', image: 'a', category: 'color' }, { prediction: 'No', label: 'no', image: 'a', category: 'color' },
    { prediction: 'yes', label: 'yes', image: 'b', category: 'count' }, { prediction: 'yes', label: 'no', image: 'b', category: 'count' },
  ]);
  assert.equal(m.acc, 0.75); assert.equal(m.acc_plus, 0.5); assert.equal(m.score, 125);
  assert.deepEqual({ ...m.categories }, { color: { acc: 1, acc_plus: 1, score: 200 }, count: { acc: 0.5, acc_plus: 0, score: 50 } });
});

test('RefCOCO ACC@0.5 in padded-square coordinates', () => {
  // 200x100 image: y += 50, /200. GT [0,0,100,100] -> [0, 0.25, 0.5, 0.75].
  const r = recScore([
    { prediction: '[0.00, 0.25, 0.50, 0.75]', box: [0, 0, 100, 100], width: 200, height: 100 },
    { prediction: '[0.00, 0.00, 0.50, 0.50]', box: [0, 0, 100, 100], width: 200, height: 100 }, // IoU 1/3 in padded space
    { prediction: 'I cannot tell', box: [0, 0, 100, 100], width: 200, height: 100 },
    { prediction: '[0.1,0.1,0.5,0.5]', box: [0.1, 0.1, 0.5, 0.5] },
  ]);
  assert.equal(r.accuracy, 0.5); assert.equal(r.unparsed, 1);
  close(r.mean_iou, (1 + 1 / 3 + 0 + 1) / 4);
});

test('BLEU: hand-computed precisions and brevity penalty', () => {
  assert.deepEqual(captionTokens('The cat, sat!'), ['the', 'cat', 'sat']);
  const b = bleu([{ prediction: 'the cat sat on the mat', references: ['the cat is on the mat'] }]);
  // p1 = 5/6, p2 = 3/5, p3 = 1/4, p4 = 0
  close(b.bleu[0], 5 / 6, 1e-9); close(b.bleu[1], Math.sqrt(0.5), 1e-9); close(b.bleu[2], 0.5, 1e-9);
  assert.ok(b.bleu[3] < 1e-3);
  close(b.brevity_penalty, 1, 1e-9); // coco's epsilons make equal lengths 1 - 1.7e-10
  const same = bleu([{ prediction: 'a b c d e', references: ['x y', 'a b c d e'] }]);
  close(same.bleu[3], 1, 1e-9);
  // c = 2, r = 6 (closest): BP = exp(1 - 3); p1 = p2 = 1
  const short = bleu([{ prediction: 'the cat', references: ['the cat sat on the mat'] }]);
  close(short.brevity_penalty, Math.exp(-2), 1e-9); close(short.bleu[1], Math.exp(-2), 1e-9);
  // closest reference length with a tie picks the shorter: c=3, refs 2 and 4 -> r=2, no penalty
  assert.equal(bleu([{ prediction: 'a b c', references: ['a b', 'a b c d'] }]).brevity_penalty, 1);
  // corpus level: counts summed before the ratio
  const corp = bleu([{ prediction: 'a b', references: ['a b'] }, { prediction: 'c d', references: ['c d e f'] }]);
  close(corp.brevity_penalty, Math.exp(1 - 6 / 4), 1e-9);
});

test('CIDEr-D: identical caption scores 10, hand-computed partial match', () => {
  const r = ciderD([
    { prediction: 'a red circle here now', references: ['a red circle here now'] },
    { prediction: 'blue square', references: ['blue square over there today'] },
  ]);
  close(r.scores[0]!, 10, 1e-9);
  // image 2: every n-gram has df 1 (idf log 2, cancels). n=1: 2/sqrt(2*5); n=2: 1/2; n=3,4: 0.
  // bigram lengths 1 vs 4 -> gaussian exp(-9/72).
  const want = ((2 / Math.sqrt(10) + 0.5) / 4) * Math.exp(-9 / 72) * 10;
  close(r.scores[1]!, want, 1e-9);
  close(r.cider, (10 + want) / 2, 1e-9);
  // n-grams present in every image's references carry no weight
  const z = ciderD([{ prediction: 'the', references: ['the a'] }, { prediction: 'the', references: ['the b'] }]);
  assert.equal(z.cider, 0);
});

test('harness: examples from conversation records, evaluate with a fake model', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-eval-'));
  const file = path.join(dir, 'val.jsonl');
  fs.writeFileSync(file, [
    { id: 'q1', conversations: [{ from: 'human', value: 'What colour?' }, { from: 'gpt', value: 'red' }] },
    { id: 'q2', conversations: [{ from: 'human', value: 'How many?' }], answers: ['2', 'two', '2', '3', '2', '2', '2', '2', '2', '2'] },
  ].map((x) => JSON.stringify(x)).join('\n'));
  const { records } = await loadConversations(file, { allowUnanswered: true });
  const ex = records.map((r) => exampleFromRecord(r, 'vqa'));
  assert.equal(ex[0]!.question, 'What colour?');
  assert.equal(ex[1]!.references.length, 10);
  const run = await evaluate('vqa', ex, async (e) => (e.id === 'q1' ? 'Red.' : 'two'));
  assert.equal(run.metrics['accuracy'], (1 + 1) / 2 - (1 - (9 * 1 + 1 * 1) / 10) / 2);
  assert.throws(() => scoreTask('vqa', ex, ['a']), /2 examples but 1 predictions/);
  fs.rmSync(dir, { recursive: true });
});

test('chimera eval --predictions scores a JSONL without a model; bad input exits 2', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-evalcli-'));
  const f = path.join(dir, 'p.jsonl');
  fs.writeFileSync(f, '{"question_id":1,"answer":"Yes","label":"yes"}\n{"question_id":2,"answer":"No, there is not.","label":"yes"}\n');
  const r = spawnSync(process.execPath, [MAIN, 'eval', '--predictions', f, '--task', 'pope', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'pope'); assert.equal(j.accuracy, 0.5); assert.equal(j.precision, 1); assert.equal(j.recall, 0.5);
  fs.writeFileSync(f, '{"question_id":1,"answer":"Yes","label":"yes"}\n{oops\n');
  const bad = spawnSync(process.execPath, [MAIN, 'eval', '--predictions', f, '--task', 'pope'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /p\.jsonl:2: malformed JSON/);
  const noTask = spawnSync(process.execPath, [MAIN, 'eval', '--predictions', f], { encoding: 'utf8' });
  assert.equal(noTask.status, 2);
  assert.match(noTask.stderr, /--task/);
  fs.writeFileSync(f, '{"question_id":1,"answer":"[0.1,0.1,0.5,0.5]","box":[10,10,50,50],"width":100,"height":100}\n');
  const rec = spawnSync(process.execPath, [MAIN, 'eval', '--predictions', f, '--task', 'rec', '--json'], { encoding: 'utf8' });
  assert.equal(JSON.parse(rec.stdout).accuracy, 1);
  fs.rmSync(dir, { recursive: true });
});
