// Conversation loading and validation, meta configs, the mixture sampler, coreset selection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConversations, readConversations } from '../src/data/conversations.ts';
import { coresetOfConversations, selectCoreset } from '../src/data/coreset.ts';
import { MixSampler, parseMetaConfig, parseRatio, samplingWeights } from '../src/data/meta.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-data-'));
  fs.mkdirSync(path.join(d, 'img'));
  fs.writeFileSync(path.join(d, 'img', 'a.png'), 'x');
  return d;
}
const good = (id: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ id, image: 'img/a.png', conversations: [{ from: 'human', value: '<image>\nWhat?' }, { from: 'gpt', value: 'A cat.' }], ...extra });

test('JSONL streams; every invalid record is an error naming file and line', async () => {
  const d = tmp(), f = path.join(d, 'd.jsonl');
  fs.writeFileSync(f, `${good('1')}\n\n${good('2')}\n`);
  const { records, report } = await loadConversations(f);
  assert.equal(records.length, 2);
  assert.equal(records[1]!.source.line, 3);
  assert.equal(records[0]!.images[0], path.join(d, 'img/a.png'));
  assert.equal(report.kept, 2);
  const cases: [string, RegExp][] = [
    ['{"id": 1, "conv', /d\.jsonl:line 2: malformed JSON/],
    [JSON.stringify({ id: 'x', image: 'img/missing.png', conversations: [{ from: 'human', value: '<image>\nq' }, { from: 'gpt', value: 'a' }] }), /line 2: missing image: image 'img\/missing.png' not found/],
    [JSON.stringify({ id: 'x', image: 'img/a.png', conversations: [{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }] }), /line 2: placeholder mismatch: 0 <image> placeholders but 1 image/],
    [JSON.stringify({ id: 'x', images: ['img/a.png', 'img/a.png'], conversations: [{ from: 'human', value: '<image> q' }, { from: 'gpt', value: 'a' }] }), /1 <image> placeholder but 2 images/],
    [JSON.stringify({ id: 'x', conversations: [{ from: 'gpt', value: 'a' }, { from: 'human', value: 'q' }] }), /line 2: roles out of order/],
    [JSON.stringify({ id: 'x', conversations: [{ from: 'user', value: 'q' }] }), /bad role/],
    [JSON.stringify({ id: 'x', conversations: [{ from: 'human', value: 'q' }] }), /unanswered/],
    [JSON.stringify({ id: 'x', image: '../etc/passwd', conversations: [{ from: 'human', value: '<image>q' }, { from: 'gpt', value: 'a' }] }), /unsafe image path/],
    [JSON.stringify({ id: 'x' }), /missing conversations/],
    ['[1]', /not an object/],
  ];
  for (const [line, re] of cases) {
    fs.writeFileSync(f, `${good('1')}\n${line}\n`);
    await assert.rejects(loadConversations(f), re, line);
  }
  // skipInvalid counts instead of throwing
  fs.writeFileSync(f, `${good('1')}\n{bad\n${cases[1]![0]}\n${good('2')}\n`);
  const r = await loadConversations(f, { skipInvalid: true });
  assert.equal(r.records.length, 2);
  assert.equal(r.report.skipped, 2);
  assert.deepEqual({ ...r.report.byReason }, { 'malformed JSON': 1, 'missing image': 1 });
  assert.equal(r.report.examples.length, 2);
  // empty and all-invalid datasets are errors
  fs.writeFileSync(f, '\n\n');
  await assert.rejects(loadConversations(f), /the dataset is empty/);
  fs.writeFileSync(f, '{bad\n');
  await assert.rejects(loadConversations(f, { skipInvalid: true }), /all 1 records are invalid \(1 malformed JSON\)/);
  // allowUnanswered for evaluation data; checkImages off
  fs.writeFileSync(f, `${JSON.stringify({ id: 'q', image: 'nope.png', conversations: [{ from: 'human', value: '<image>q' }] })}\n`);
  assert.equal((await loadConversations(f, { allowUnanswered: true, checkImages: false })).records.length, 1);
  fs.rmSync(d, { recursive: true });
});

test('JSON array files: read whole with a size cap, item index in errors', async () => {
  const d = tmp(), f = path.join(d, 'd.json');
  fs.writeFileSync(f, `[${good('1')}, ${good('2', { image: 'img/none.png' })}]`);
  await assert.rejects(loadConversations(f), /d\.json:item 1: missing image/);
  fs.writeFileSync(f, `[${good('1')}]`);
  assert.equal((await loadConversations(f)).records.length, 1);
  await assert.rejects(loadConversations(f, { maxJsonBytes: 10 }), /over the 10-byte limit.*convert it to JSONL/);
  fs.writeFileSync(f, '[{"a":');
  await assert.rejects(loadConversations(f), /malformed JSON/);
  // the generator can be abandoned early
  fs.writeFileSync(path.join(d, 'x.jsonl'), `${good('1')}\n${good('2')}\n`);
  for await (const r of readConversations(path.join(d, 'x.jsonl'))) { assert.equal(r.id, '1'); break; }
  fs.rmSync(d, { recursive: true });
});

test('meta config: shapes, paths, ratios, errors', () => {
  const m = parseMetaConfig(JSON.stringify({ META: [{ path: 'a.jsonl', type: 'image_text', ratio: '50%' }, { path: 'sub/b.jsonl', type: 'text', root: 'imgs', ratio: '1/4' }], sampling: 'sqrt' }), '/cfg/meta.json');
  assert.equal(m.sampling, 'sqrt');
  assert.deepEqual(m.datasets.map((x) => [x.name, x.path, x.root, x.ratio, x.type]), [
    ['a.jsonl', '/cfg/a.jsonl', '/cfg', 0.5, 'image_text'], ['b.jsonl', '/cfg/sub/b.jsonl', '/cfg/imgs', 0.25, 'text'],
  ]);
  assert.equal(parseMetaConfig('[{"path":"x"}]', '/m.json').datasets[0]!.type, 'image_text');
  assert.equal(parseRatio('2'), 2); assert.equal(parseRatio(0.3), 0.3); assert.equal(parseRatio(' 1 / 3 '), 1 / 3);
  for (const bad of ['half', '-1', '1/0', '', 'NaN', '5%%']) assert.throws(() => parseRatio(bad), /cannot parse/);
  assert.throws(() => parseMetaConfig('{"META":[{"path":"a","ratio":"lots"}]}', 'm.json'), /m\.json: META\[0\] "ratio": cannot parse "lots"/);
  assert.throws(() => parseMetaConfig('{"META":[]}', 'm.json'), /empty/);
  assert.throws(() => parseMetaConfig('{"META":[{"path":"a"}],"sampling":"explicit"}', 'm.json'), /no "weight"/);
  assert.throws(() => parseMetaConfig('{"META":[{"path":"a"},{"path":"a"}]}', 'm.json'), /duplicate dataset name/);
  assert.throws(() => parseMetaConfig('{"META":[{"path":"a","rato":1}]}', 'm.json'), /unknown key "rato"/);
  assert.throws(() => parseMetaConfig('{META', 'm.json'), /malformed JSON/);
});

test('sampling weights: size, sqrt (InstructBLIP), explicit', () => {
  assert.deepEqual(samplingWeights([100, 300], 'size'), [0.25, 0.75]);
  assert.deepEqual(samplingWeights([100, 400], 'sqrt'), [1 / 3, 2 / 3]);
  assert.deepEqual(samplingWeights([100, 400], 'explicit', [3, 1]), [0.75, 0.25]);
  assert.throws(() => samplingWeights([0, 0], 'size'), /weight 0/);
});

test('MixSampler: homogeneous batches, proportions, epochs without replacement, exact resume', () => {
  const src = [{ name: 'a', type: 'image', size: 50 }, { name: 'b', type: 'image', size: 150 }, { name: 'c', type: 'text', size: 200 }];
  const s = new MixSampler(src, { batchSize: 4, seed: 3 });
  const counts = [0, 0, 0];
  const seenA: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const b = s.next();
    assert.ok(b.items.every((it) => src[it.dataset]!.type === b.type), 'batch mixes types');
    for (const it of b.items) { counts[it.dataset]!++; if (it.dataset === 0 && seenA.length < 50) seenA.push(it.index); }
  }
  const tot = counts[0]! + counts[1]! + counts[2]!;
  [0.125, 0.375, 0.5].forEach((w, i) => assert.ok(Math.abs(counts[i]! / tot - w) < 0.03, `dataset ${i}: ${counts[i]! / tot}`));
  assert.deepEqual([...seenA].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i), 'first epoch of a is a permutation');
  // resume: state through JSON, then the same continuation
  const s1 = new MixSampler(src, { batchSize: 3, seed: 9 });
  for (let i = 0; i < 37; i++) s1.next();
  const st = JSON.parse(JSON.stringify(s1.state()));
  const s2 = new MixSampler(src, { batchSize: 3, seed: 9 });
  s2.setState(st);
  for (let i = 0; i < 100; i++) assert.deepEqual(s2.next(), s1.next());
  // a different data position breaks equality (the test is sensitive)
  const s3 = new MixSampler(src, { batchSize: 3, seed: 9 });
  s3.setState({ ...st, cursors: st.cursors.map((c: { pos: number }, i: number) => (i === 0 ? { ...c, pos: (c.pos + 1) % 50 } : c)) });
  let differ = false;
  for (let i = 0; i < 100 && !differ; i++) differ = JSON.stringify(s3.next()) !== JSON.stringify(s1.next());
  assert.ok(differ);
  assert.throws(() => s2.setState({ ...st, seed: 1 }), /seed/);
  // ratio 2 repeats each record twice per epoch
  const r = new MixSampler([{ name: 'x', type: 't', size: 5, ratio: 2 }], { batchSize: 10, seed: 1 });
  const idx = r.next().items.map((i) => i.index).sort();
  assert.deepEqual(idx, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
});

test('coreset: concept diversity and yes/no balance', () => {
  const conv = (q: string, a: string) => [{ from: 'human' as const, value: q }, { from: 'gpt' as const, value: a }];
  const data = [
    ...Array.from({ length: 10 }, () => conv('Is there a dog?', 'Yes')),
    conv('Is there a zebra?', 'No'), conv('Is there a giraffe?', 'No'),
    conv('What colour is the car?', 'red'), conv('What colour is the car?', 'red'), conv('Describe the kitchen.', 'A kitchen with a stove.'),
  ];
  const { indices, stats } = coresetOfConversations(data, 6);
  assert.equal(stats.selected, 6);
  assert.ok(Math.abs(stats.yes - stats.no) <= 1, `yes ${stats.yes} no ${stats.no}`);
  // the duplicate car question and the duplicate dog questions are picked at most once/twice
  assert.ok(indices.filter((i) => i < 10).length <= 2);
  assert.ok(indices.includes(14), 'kitchen (new concepts) chosen');
  assert.ok(indices.includes(12) || indices.includes(13));
  assert.deepEqual(selectCoreset([{ concepts: ['a'], yesNo: 'other' }], 5).indices, [0]);
  assert.throws(() => selectCoreset([], -1), /size/);
});

test('chimera data coreset and check on the command line', () => {
  const d = tmp(), f = path.join(d, 'd.jsonl'), out = path.join(d, 'core.jsonl');
  fs.writeFileSync(f, [good('1'), good('2'), JSON.stringify({ id: '3', conversations: [{ from: 'human', value: 'Is it a bus?' }, { from: 'gpt', value: 'No' }] })].join('\n'));
  const r = spawnSync(process.execPath, [MAIN, 'data', 'coreset', '--data', f, '--out', out, '--size', '2', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).selected, 2);
  assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, 2);
  const c = spawnSync(process.execPath, [MAIN, 'data', 'check', '--data', f, '--json'], { encoding: 'utf8' });
  assert.equal(JSON.parse(c.stdout).kept, 3);
  fs.appendFileSync(f, '\n{broken');
  const bad = spawnSync(process.execPath, [MAIN, 'data', 'check', '--data', f], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /d\.jsonl:line 4: malformed JSON/);
  const skip = spawnSync(process.execPath, [MAIN, 'data', 'check', '--data', f, '--skip-invalid', '--json'], { encoding: 'utf8' });
  assert.equal(JSON.parse(skip.stdout).skipped, 1);
  const usage = spawnSync(process.execPath, [MAIN, 'data', 'coreset', '--data', f], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  fs.rmSync(d, { recursive: true });
});
