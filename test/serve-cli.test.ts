// `chimera serve` as a process: listens (JSON event) before the model is ready, /health turns
// 200, the openai client gets answers (with an image on a tiny multimodal preset once `chimera
// init` exists), SIGTERM during a stream finishes it and exits 0; bad flags exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolve } from 'node:path';
import * as readline from 'node:readline';
import OpenAI from 'openai';
import { makeTinyLlamaDir, tmpDir } from './helpers/tiny-model.ts';

const MAIN = resolve(new URL('../src/cli/main.js', import.meta.url).pathname);
const FIX = resolve(new URL('../../test/fixtures/images/', import.meta.url).pathname);

interface Proc { events: Record<string, any>[]; next: (event: string) => Promise<Record<string, any>>; exit: Promise<number | null>; kill: (s: NodeJS.Signals) => void; stderr: () => string }

function startServe(args: string[]): Proc {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHIMERA_BACKEND: 'reference' } });
  const events: Record<string, any>[] = [];
  const waiters: { event: string; resolve: (e: Record<string, any>) => void }[] = [];
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    const e = JSON.parse(l);
    events.push(e);
    for (const w of waiters.filter((x) => x.event === e.event)) w.resolve(e);
  });
  return {
    events,
    next: (event) => {
      const seen = events.find((e) => e.event === event);
      return seen ? Promise.resolve(seen) : new Promise((r) => waiters.push({ event, resolve: r }));
    },
    exit: new Promise((r) => child.on('exit', (code) => r(code))),
    kill: (s) => child.kill(s),
    stderr: () => err,
  };
}

test('chimera serve: listening before ready, answers, SIGTERM mid-stream finishes the stream and exits 0', async () => {
  const dir = makeTinyLlamaDir(path.join(tmpDir(), 'tiny-serve'), { eos: false });
  const p = startServe(['--model', dir]);
  const listening = await p.next('listening');
  assert.equal(p.events[0]!.event, 'listening', 'listening is announced first');
  await p.next('ready');
  const health = await fetch(`${listening.url}/health`);
  assert.equal(health.status, 200);
  const c = new OpenAI({ baseURL: `${listening.url}/v1`, apiKey: 'x', maxRetries: 0 });
  const r = await c.chat.completions.create({ model: 'tiny-serve', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
  assert.equal(r.usage!.completion_tokens, 3);
  const page = await fetch(`${listening.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Chimera playground/);
  // A long stream, then SIGTERM: the stream completes, the process exits 0.
  const stream = await c.chat.completions.create({ model: 'tiny-serve', messages: [{ role: 'user', content: 'hi' }], max_tokens: 150, stream: true });
  let n = 0, finish: string | null = null;
  for await (const ch of stream) {
    if (++n === 3) p.kill('SIGTERM');
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, 'length');
  assert.equal(await p.exit, 0, p.stderr());
  assert.deepEqual(p.events.map((e) => e.event), ['listening', 'ready', 'shutdown', 'stopped']);
});

test('chimera serve: bad flags exit 2 with one line; a broken model folder exits 1 after listening', async () => {
  for (const args of [['--port', '99999'], ['--allow-files', '/nonexistent-dir'], [], ['--concurrency', '0']]) {
    const r = spawnSync(process.execPath, [MAIN, 'serve', ...(args.length ? ['--model', '/tmp', ...args] : [])], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  const broken = tmpDir();
  fs.writeFileSync(path.join(broken, 'config.json'), '{"model_type": "llama"');
  const p = startServe(['--model', broken]);
  await p.next('listening');
  assert.equal(await p.exit, 1);
  assert.match(p.stderr(), /cannot load the model/);
});

const hasInit = spawnSync(process.execPath, [MAIN, 'init', '--help']).status === 0;

test('chimera serve with a tiny multimodal preset: images as data URLs through the openai client', { skip: hasInit ? false : 'chimera init is not available yet' }, async () => {
  const vlm = path.join(tmpDir(), 'llava-tiny');
  const init = spawnSync(process.execPath, [MAIN, 'init', '--preset', 'llava-1.5:tiny', '--out', vlm], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const p = startServe(['--model', vlm]);
  const { url } = await p.next('listening');
  const ready = await p.next('ready');
  assert.ok(ready.max_images >= 1);
  const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
  const img = `data:image/jpeg;base64,${fs.readFileSync(`${FIX}/rgb.jpg`).toString('base64')}`;
  const ask = (detail: 'low' | 'high') => c.chat.completions.create({
    model: 'llava-tiny', max_tokens: 3, temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img, detail } }, { type: 'text', text: 'What is this?' }] }],
  });
  const a = await ask('high');
  const b = await ask('high');
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content, 'same image, same answer');
  const text = await c.chat.completions.create({ model: 'llava-tiny', max_tokens: 3, temperature: 0, messages: [{ role: 'user', content: 'What is this?' }] });
  assert.ok(a.usage!.prompt_tokens > text.usage!.prompt_tokens, 'the image takes prompt positions');
  const stream = await c.chat.completions.create({
    model: 'llava-tiny', max_tokens: 3, temperature: 0, stream: true,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: img } }, { type: 'text', text: 'What is this?' }] }],
  });
  let streamed = '';
  for await (const ch of stream) streamed += ch.choices[0]?.delta.content ?? '';
  assert.equal(streamed, a.choices[0]!.message.content);
  const plan = await (await fetch(`${url}/v1/chimera/plan?w=32&h=16&detail=auto`)).json() as any;
  assert.ok(plan.views.length >= 1 && plan.positions > 0);
  p.kill('SIGTERM');
  assert.equal(await p.exit, 0);
  fs.rmSync(vlm, { recursive: true, force: true });
});
