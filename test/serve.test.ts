// The OpenAI-compatible server driven by the real `openai` client: models, chat (JSON and SSE,
// include_usage), images as data URLs and allow-listed files, detail, stop, seed determinism,
// context length, auth, readiness before the model loads, the plan endpoint and validation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import OpenAI from 'openai';
import { useBackend } from '../src/backends/index.ts';
import { loadChatModel } from '../src/models/chat-model.ts';
import { startServer, type ChimeraServer } from '../src/serve/server.ts';
import { dataUrl, makePng, makeTinyLlamaDir, ScriptedChatModel, tmpDir } from './helpers/tiny-model.ts';

useBackend();
const servers: ChimeraServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown(100)));
});

async function serve(model: Parameters<typeof startServer>[0], opts: Parameters<typeof startServer>[1] = {}): Promise<ChimeraServer> {
  const s = await startServer(model, { port: 0, webDir: null, ...opts });
  servers.push(s);
  return s;
}

const client = (s: ChimeraServer, apiKey = 'none'): OpenAI => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });

async function post(s: ChimeraServer, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const r = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* SSE or empty */ }
  return { status: r.status, json, text };
}

function assertErrorShape(json: any, status: number, what: string): void {
  assert.ok(json && typeof json.error === 'object', `${what}: OpenAI-shaped error body, got ${JSON.stringify(json)}`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in json.error, `${what}: error.${k} present`);
  assert.equal(typeof json.error.message, 'string');
  assert.ok(!/\/work\/|\/tmp\/|at .*\.js:\d+/.test(json.error.message), `${what}: no paths or stack in ${json.error.message}`);
  void status;
}

test('tiny llama folder: models, chat, streaming with include_usage through the openai client', async () => {
  const dir = makeTinyLlamaDir(undefined, { eos: false });
  const s = await serve(loadChatModel(dir));
  await s.ready;
  const c = client(s);
  const models = await c.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['tiny-llama']);
  const r = await c.chat.completions.create({ model: 'tiny-llama', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, how are you?' }], max_tokens: 7, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.equal(r.usage!.completion_tokens, 7);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 7);
  assert.equal(typeof r.choices[0]!.message.content, 'string');

  // Streaming: the deltas concatenate to the non-streamed text (greedy), usage arrives last.
  const stream = await c.chat.completions.create({
    model: 'tiny-llama', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, how are you?' }],
    max_tokens: 7, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', finish: string | null = null, usage: any = null, chunks = 0;
  for await (const ch of stream) {
    chunks++;
    if (ch.choices.length > 0) {
      text += ch.choices[0]!.delta.content ?? '';
      if (ch.choices[0]!.finish_reason) finish = ch.choices[0]!.finish_reason;
    }
    if (ch.usage) usage = ch.usage;
  }
  assert.ok(chunks >= 3);
  assert.equal(text, r.choices[0]!.message.content);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, r.usage);

  // Seeded sampling is reproducible.
  const a = await c.chat.completions.create({ model: 'tiny-llama', messages: [{ role: 'user', content: 'cat' }], max_tokens: 10, temperature: 1, seed: 42 });
  const b = await c.chat.completions.create({ model: 'tiny-llama', messages: [{ role: 'user', content: 'cat' }], max_tokens: 10, temperature: 1, seed: 42 });
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);

  // A text-only model refuses images with a 400 naming why; the plan endpoint too.
  const img = dataUrl(await makePng(8, 8));
  const bad = await post(s, { model: 'tiny-llama', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: img } }] }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'model_takes_no_images');
  const plan = await fetch(`${s.url}/v1/chimera/plan?w=640&h=480`);
  assert.equal(plan.status, 400);

  // Context length: prompt + max_tokens over max_position_embeddings (256) -> OpenAI's wording.
  const over = await post(s, { model: 'tiny-llama', messages: [{ role: 'user', content: 'hi' }], max_tokens: 300 });
  assert.equal(over.status, 400);
  assert.equal(over.json.error.code, 'context_length_exceeded');
  assert.match(over.json.error.message, /maximum context length is 256 tokens\. However, you requested \d+ tokens/);
  const long = await post(s, { model: 'tiny-llama', messages: [{ role: 'user', content: 'zq '.repeat(400) }] });
  assert.equal(long.status, 400);
  assert.equal(long.json.error.code, 'context_length_exceeded');
  // Exactly at the limit is fine.
  const prompt = r.usage!.prompt_tokens;
  const exact = await c.chat.completions.create({ model: 'tiny-llama', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello, how are you?' }], max_tokens: 256 - prompt, temperature: 0 });
  assert.equal(exact.usage!.total_tokens, 256);
});

test('images as data URLs reach prepare() decoded, with detail; the reply streams; plan endpoint', async () => {
  const m = new ScriptedChatModel({ reply: (_t, imgs) => `I see ${imgs.length} image at [0.10, 0.20, 0.50, 0.60].` });
  const s = await serve(m);
  await s.ready;
  const c = client(s);
  const png = await makePng(64, 48, [255, 0, 0]);
  const r = await c.chat.completions.create({
    model: 'scripted-tiny',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Where is the cat?' }, { type: 'image_url', image_url: { url: dataUrl(png), detail: 'low' } }] }],
  });
  assert.equal(r.choices[0]!.message.content, 'I see 1 image at [0.10, 0.20, 0.50, 0.60].');
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  const rec = m.prepared.at(-1)!;
  assert.deepEqual(rec.images.map((i) => [i.width, i.height, i.detail]), [[64, 48, 'low']]);
  assert.deepEqual(rec.images[0]!.pixel0, [1, 0, 0], 'pixels arrive as RGB floats in [0,1]');
  assert.deepEqual(rec.turns[0]!.content, [{ type: 'text', text: 'Where is the cat?' }, { type: 'image', image: 0 }]);
  // Prompt tokens include the image positions of the plan: low = 1 view (4 positions), auto = 5 views (20).
  const auto = await c.chat.completions.create({
    model: 'scripted-tiny', messages: [{ role: 'user', content: [{ type: 'text', text: 'Where is the cat?' }, { type: 'image_url', image_url: { url: dataUrl(png) } }] }],
  });
  assert.equal(auto.usage!.prompt_tokens - r.usage!.prompt_tokens, 16);
  assert.equal(m.prepared.at(-1)!.images[0]!.detail, 'high');

  // Streaming with an image.
  const stream = await c.chat.completions.create({
    model: 'scripted-tiny', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(png) } }, { type: 'text', text: 'and now?' }] }],
  });
  let text = '', usage: any = null;
  for await (const ch of stream) {
    text += ch.choices[0]?.delta.content ?? '';
    if (ch.usage) usage = ch.usage;
  }
  assert.equal(text, 'I see 1 image at [0.10, 0.20, 0.50, 0.60].');
  assert.ok(usage.completion_tokens > 3);

  // stop strings cut the text.
  const st = await c.chat.completions.create({ model: 'scripted-tiny', messages: [{ role: 'user', content: 'x' }], stop: [' at'] });
  assert.equal(st.choices[0]!.message.content, 'I see 0 image');
  assert.equal(st.choices[0]!.finish_reason, 'stop');

  // The plan endpoint returns the model's views.
  const plan = await (await fetch(`${s.url}/v1/chimera/plan?w=640&h=480&detail=auto`)).json() as any;
  assert.equal(plan.views.length, 5);
  assert.deepEqual(plan.views[0].region, { x: 0, y: -80, w: 640, h: 640 });
  assert.equal(plan.positions, 20);
  const low = await (await fetch(`${s.url}/v1/chimera/plan?w=640&h=480&detail=low`)).json() as any;
  assert.equal(low.views.length, 1);
  const badPlan = await fetch(`${s.url}/v1/chimera/plan?w=0&h=480`);
  assert.equal(badPlan.status, 400);
  assertErrorShape(await badPlan.json(), 400, 'plan');
});

test('local image files only inside --allow-files; traversal and symlinks refused', async () => {
  const root = tmpDir();
  const allowed = path.join(root, 'allowed');
  fs.mkdirSync(allowed);
  fs.writeFileSync(path.join(allowed, 'a.png'), await makePng(10, 12));
  fs.writeFileSync(path.join(root, 'secret.png'), await makePng(10, 12));
  fs.symlinkSync(path.join(root, 'secret.png'), path.join(allowed, 'link.png'));
  const m = new ScriptedChatModel();
  const s = await serve(m, { allowFilesDir: allowed });
  const closed = await serve(new ScriptedChatModel());
  await s.ready;
  await closed.ready;
  const msg = (url: string) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] });
  assert.equal((await post(s, msg(path.join(allowed, 'a.png')))).status, 200);
  assert.equal((await post(s, msg(`file://${path.join(allowed, 'a.png')}`))).status, 200);
  assert.equal((await post(s, msg('a.png'))).status, 200, 'relative to the allowed folder');
  assert.deepEqual(m.prepared.at(-1)!.images.map((i) => [i.width, i.height]), [[10, 12]]);
  for (const [url, code] of [
    [path.join(allowed, '..', 'secret.png'), 'image_path_not_allowed'],
    ['../secret.png', 'image_path_not_allowed'],
    [`file://${allowed}/../secret.png`, 'image_path_not_allowed'],
    [`file://${allowed}/%2e%2e/secret.png`, 'image_path_not_allowed'],
    [path.join(allowed, 'link.png'), 'image_path_not_allowed'],
    ['/etc/passwd', 'image_path_not_allowed'],
    [path.join(allowed, 'missing.png'), 'image_not_found'],
    ['ftp://example.com/x.png', 'invalid_image_url'],
    ['https://example.com/x.png', 'remote_images_disabled'],
  ] as const) {
    const r = await post(s, msg(url));
    assert.equal(r.status, 400, url);
    assertErrorShape(r.json, 400, url);
    assert.equal(r.json.error.code, code, `${url}: ${r.json.error.message}`);
    assert.ok(!r.json.error.message.includes(root), `no server path leaks: ${r.json.error.message}`);
  }
  const off = await post(closed, msg(path.join(allowed, 'a.png')));
  assert.equal(off.status, 400);
  assert.equal(off.json.error.code, 'local_images_disabled');
});

test('remote images only with allowRemote: fetched with size and time limits, private hosts refused', async () => {
  const http = await import('node:http');
  const png = await makePng(20, 10);
  const origin = http.createServer((req, res) => {
    if (req.url === '/ok.png') { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(png); }
    else if (req.url === '/big') { res.writeHead(200); res.end(Buffer.alloc(5000)); }
    else if (req.url === '/slow') { res.writeHead(200); res.write('x'); /* never ends */ }
    else { res.writeHead(404); res.end(); }
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(origin.address() as any).port}`;
  try {
    const m = new ScriptedChatModel();
    const s = await serve(m, { allowRemote: true, allowPrivateRemote: true, maxImageBytes: 4096, remoteTimeoutMs: 300 });
    const strict = await serve(new ScriptedChatModel(), { allowRemote: true });
    await s.ready;
    await strict.ready;
    const msg = (url: string) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] });
    assert.equal((await post(s, msg(`${base}/ok.png`))).status, 200);
    assert.deepEqual(m.prepared.at(-1)!.images.map((i) => [i.width, i.height]), [[20, 10]]);
    for (const [p, code] of [['/big', 'image_too_large'], ['/slow', 'image_fetch_timeout'], ['/404', 'image_fetch_failed']] as const) {
      const r = await post(s, msg(`${base}${p}`));
      assert.equal(r.status, 400, p);
      assert.equal(r.json.error.code, code, `${p}: ${r.json.error.message}`);
    }
    const priv = await post(strict, msg(`${base}/ok.png`));
    assert.equal(priv.status, 400);
    assert.equal(priv.json.error.code, 'image_url_not_allowed');
  } finally {
    origin.closeAllConnections();
    origin.close();
  }
});

test('health is 503 while loading (server already listening), 200 when ready; failed load stays 503', async () => {
  let resolve!: (m: ScriptedChatModel) => void;
  const s = await serve(new Promise<ScriptedChatModel>((r) => { resolve = r; }));
  const h1 = await fetch(`${s.url}/health`);
  assert.equal(h1.status, 503);
  const b1 = await h1.json() as any;
  assert.equal(b1.error.type, 'unavailable_error');
  assert.equal(b1.error.message, 'Loading model');
  const early = await post(s, { messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(early.status, 503);
  resolve(new ScriptedChatModel());
  await s.ready;
  const h2 = await fetch(`${s.url}/health`);
  assert.equal(h2.status, 200);
  assert.deepEqual(await h2.json(), { status: 'ok' });

  const failing = await serve(Promise.reject(new Error('model folder x has no config.json')));
  await failing.ready.catch(() => {});
  const h3 = await fetch(`${failing.url}/health`);
  assert.equal(h3.status, 503);
  assert.match(((await h3.json()) as any).error.message, /failed to load/);
});

test('API key: 401 OpenAI-shaped without or with a wrong key; Bearer and X-Api-Key accepted; /health public', async () => {
  const s = await serve(new ScriptedChatModel(), { apiKey: 'sekret' });
  await s.ready;
  await assert.rejects(client(s, 'wrong').models.list(), (e: any) => e.status === 401 && e.error?.type === 'authentication_error');
  const none = await fetch(`${s.url}/v1/models`);
  assert.equal(none.status, 401);
  assertErrorShape(await none.json(), 401, 'no key');
  assert.equal((await client(s, 'sekret').models.list()).data.length, 1);
  assert.equal((await fetch(`${s.url}/v1/models`, { headers: { 'X-Api-Key': 'sekret' } })).status, 200);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});

test('validation table: each bad request is a 400 (404/405) naming the field, server keeps serving', async () => {
  const m = new ScriptedChatModel({ maxImages: 2 });
  const s = await serve(m, { maxTokens: 100, maxImages: 3, maxMessages: 5 });
  await s.ready;
  const user = [{ role: 'user', content: 'hi' }];
  const img = { type: 'image_url', image_url: { url: dataUrl(await makePng(4, 4)) } };
  const cases: [string, unknown, number, string | null, string | null][] = [
    ['not an object', [1, 2], 400, null, null],
    ['no messages', { model: 'scripted-tiny' }, 400, 'messages', null],
    ['empty messages', { messages: [] }, 400, 'messages', null],
    ['too many messages', { messages: Array(6).fill(user[0]) }, 400, 'messages', 'too_many_messages'],
    ['bad role', { messages: [{ role: 'tool', content: 'x' }] }, 400, 'messages[0].role', null],
    ['message not object', { messages: ['hi'] }, 400, 'messages[0]', null],
    ['content number', { messages: [{ role: 'user', content: 5 }] }, 400, 'messages[0].content', null],
    ['bad part type', { messages: [{ role: 'user', content: [{ type: 'audio' }] }] }, 400, 'messages[0].content[0].type', null],
    ['text not string', { messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }] }, 400, 'messages[0].content[0].text', null],
    ['image url missing', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 400, 'messages[0].content[0].image_url.url', 'invalid_image_url'],
    ['bad detail', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:x', detail: 'ultra' } }] }] }, 400, 'messages[0].content[0].image_url.detail', null],
    ['image in assistant turn', { messages: [{ role: 'assistant', content: [img] }] }, 400, 'messages[0].content[0]', null],
    ['too many images (server)', { messages: [{ role: 'user', content: [img, img, img, img] }] }, 400, 'messages', 'too_many_images'],
    ['too many images (model)', { messages: [{ role: 'user', content: [img, img, img] }] }, 400, 'messages', 'too_many_images'],
    ['malformed data url', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,@@@@' } }] }] }, 400, 'messages[0].content[0].image_url', 'invalid_image_url'],
    ['empty image url', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '' } }] }] }, 400, 'messages[0].content[0].image_url.url', 'invalid_image_url'],
    ['max_tokens 0', { messages: user, max_tokens: 0 }, 400, 'max_tokens', null],
    ['max_tokens negative', { messages: user, max_tokens: -5 }, 400, 'max_tokens', null],
    ['max_tokens float', { messages: user, max_tokens: 1.5 }, 400, 'max_tokens', null],
    ['max_tokens over limit', { messages: user, max_tokens: 101 }, 400, 'max_tokens', 'max_tokens_too_large'],
    ['max_completion_tokens over limit', { messages: user, max_completion_tokens: 1e9 }, 400, 'max_completion_tokens', 'max_tokens_too_large'],
    ['temperature high', { messages: user, temperature: 3 }, 400, 'temperature', null],
    ['temperature string', { messages: user, temperature: '1' }, 400, 'temperature', null],
    ['top_p 0', { messages: user, top_p: 0 }, 400, 'top_p', null],
    ['n 2', { messages: user, n: 2 }, 400, 'n', null],
    ['n -1', { messages: user, n: -1 }, 400, 'n', null],
    ['seed float', { messages: user, seed: 0.5 }, 400, 'seed', null],
    ['stop too many', { messages: user, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop', null],
    ['stop empty', { messages: user, stop: '' }, 400, 'stop', null],
    ['logprobs', { messages: user, logprobs: true }, 400, 'logprobs', null],
    ['stream not bool', { messages: user, stream: 'yes' }, 400, 'stream', null],
    ['unknown model', { model: 'gpt-4', messages: user }, 404, 'model', 'model_not_found'],
  ];
  for (const [what, body, status, param, code] of cases) {
    const r = await post(s, body);
    assert.equal(r.status, status, `${what}: ${r.text}`);
    assertErrorShape(r.json, status, what);
    assert.equal(r.json.error.param, param, `${what}: param (${r.json.error.message})`);
    if (code !== null) assert.equal(r.json.error.code, code, what);
  }
  // Unknown fields are ignored; accepted OpenAI fields work.
  const ok = await post(s, { model: 'scripted-tiny', messages: [{ role: 'developer', content: 'sys' }, ...user], max_completion_tokens: 3, n: 1, seed: 7, temperature: 0.5, top_p: 0.9, logprobs: false, frequency_penalty: 0, user: 'abc', foo: { bar: 1 } });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.usage.completion_tokens, 3);
  assert.equal(m.prepared.at(-1)!.turns[0]!.role, 'system');
  // Wrong method and route.
  assert.equal((await fetch(`${s.url}/v1/chat/completions`)).status, 405);
  const nf = await fetch(`${s.url}/v1/nothing`);
  assert.equal(nf.status, 404);
  assertErrorShape(await nf.json(), 404, 'route');
});
