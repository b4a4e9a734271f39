// Hostile and unlucky clients (RELIABILITY §1b-§1c): image bombs, truncated and corrupt images,
// huge bodies, bad JSON, disconnects mid-stream and while queued, a full queue, slowloris headers
// and bodies, generation deadlines and graceful shutdown. Each gets a clear error, and after each
// the same server still answers a normal request.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { resolve } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import { startServer, type ChimeraServer } from '../src/serve/server.ts';
import { dataUrl, makePng, ScriptedChatModel } from './helpers/tiny-model.ts';

const FIX = resolve(new URL('../../test/fixtures/images/', import.meta.url).pathname);
const servers: ChimeraServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown(100)));
});

async function serve(model: ScriptedChatModel, opts: Parameters<typeof startServer>[1] = {}): Promise<ChimeraServer> {
  const s = await startServer(model, { port: 0, webDir: null, ...opts });
  servers.push(s);
  await s.ready;
  return s;
}

const client = (s: ChimeraServer): OpenAI => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 20_000 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function post(s: ChimeraServer, body: unknown): Promise<{ status: number; json: any; text: string; headers: Headers }> {
  const r = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

async function stillServes(s: ChimeraServer): Promise<void> {
  const r = await post(s, { messages: [{ role: 'user', content: 'are you there?' }], max_tokens: 2 });
  assert.equal(r.status, 200, `server still serves: ${r.text}`);
}

async function noisePng(w: number, h: number): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  let x = 12345;
  for (let i = 0; i < px.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    px[i] = x >>> 24;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error('waitFor: timed out');
    await sleep(5);
  }
}

const withImage = (url: string) => ({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this?' }, { type: 'image_url', image_url: { url } }] }] });

/** Raw HTTP over a socket: returns what the server sent before it closed (or '' on timeout). */
function rawExchange(port: number, parts: { data: string; delayMs: number }[], waitMs: number): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const t0 = performance.now();
    let text = '';
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ text, closedAfterMs: performance.now() - t0 });
    };
    sock.on('data', (d) => { text += d.toString(); });
    sock.on('close', finish);
    sock.on('error', finish);
    setTimeout(finish, waitMs);
    (async () => {
      for (const p of parts) {
        await sleep(p.delayMs);
        if (done) return;
        sock.write(p.data);
      }
    })();
  });
}

test('image bombs, lying headers, SVG, truncated and corrupt images: 400 naming the cause, quickly', async () => {
  const s = await serve(new ScriptedChatModel(), { maxImagePixels: 4096 * 4096 });
  const bigGrey = await sharp({ create: { width: 8000, height: 8000, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png({ compressionLevel: 9 }).toBuffer();
  const cases: [string, Buffer, string, string][] = [
    ['8000x8000 PNG of 60 KB', bigGrey, 'image/png', 'image_too_many_pixels'],
    ['header says 100000x100000', fs.readFileSync(`${FIX}/bomb.png`), 'image/png', 'image_too_many_pixels'],
    ['4097x4096 (just over)', fs.readFileSync(`${FIX}/bomb_4097.png`), 'image/png', 'image_too_many_pixels'],
    ['SVG bomb sent as png', fs.readFileSync(`${FIX}/bomb.svg`), 'image/png', 'image_too_many_pixels'],
    ['truncated PNG', fs.readFileSync(`${FIX}/truncated.png`), 'image/png', 'invalid_image'],
    ['truncated JPEG', fs.readFileSync(`${FIX}/truncated.jpg`), 'image/jpeg', 'invalid_image'],
    ['corrupt JPEG', fs.readFileSync(`${FIX}/corrupt.jpg`), 'image/jpeg', 'invalid_image'],
    ['text file', fs.readFileSync(`${FIX}/not_image.txt`), 'image/png', 'invalid_image'],
  ];
  for (const [what, bytes, type, code] of cases) {
    const t0 = performance.now();
    const r = await post(s, withImage(dataUrl(bytes, type)));
    const ms = performance.now() - t0;
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.json.error.code, code, `${what}: ${r.json.error.message}`);
    assert.ok(ms < 2000, `${what} took ${ms} ms`);
    if (code === 'image_too_many_pixels') assert.match(r.json.error.message, /maxPixels=16777216/);
  }
  const svgType = await post(s, withImage(dataUrl(fs.readFileSync(`${FIX}/small.svg`), 'image/svg+xml')));
  assert.equal(svgType.status, 400, 'svg media type refused');
  const tooBig = await startServer(new ScriptedChatModel(), { port: 0, webDir: null, maxImageBytes: 1000 });
  servers.push(tooBig);
  await tooBig.ready;
  const big = await post(tooBig, withImage(dataUrl(await noisePng(64, 64))));
  assert.equal(big.status, 400);
  assert.equal(big.json.error.code, 'image_too_large');
  await stillServes(s);
});

test('format matrix through the server: EXIF rotation, CMYK, 16-bit, palette, alpha over white', async () => {
  const m = new ScriptedChatModel();
  const s = await serve(m);
  const cases: [string, string, [number, number]][] = [
    ['exif6.jpg', 'image/jpeg', [16, 32]], ['cmyk.jpg', 'image/jpeg', [32, 16]], ['rgb16.png', 'image/png', [7, 5]],
    ['palette.png', 'image/png', [32, 16]], ['rgba.png', 'image/png', [4, 2]], ['grey.png', 'image/png', [7, 5]],
    ['animated.gif', 'image/gif', [4, 4]],
  ];
  for (const [f, type, size] of cases) {
    const r = await post(s, withImage(dataUrl(fs.readFileSync(`${FIX}/${f}`), type)));
    assert.equal(r.status, 200, `${f}: ${r.text}`);
    const img = m.prepared.at(-1)!.images[0]!;
    assert.deepEqual([img.width, img.height], size, f);
    assert.ok(img.pixel0.every((v) => v >= 0 && v <= 1), `${f}: values in [0,1]`);
  }
});

test('huge bodies (declared and chunked) get 413, bad JSON 400, and the server keeps serving', async () => {
  const s = await serve(new ScriptedChatModel(), { maxBodyBytes: 64 * 1024 });
  const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(200 * 1024) }] });
  const r = await post(s, big);
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, 'request_too_large');
  assert.match(r.json.error.message, /max_body_bytes=65536/);
  // Chunked (no Content-Length): counted while streaming.
  const chunked = await rawExchange(s.port, [
    { data: 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', delayMs: 0 },
    ...Array.from({ length: 10 }, () => ({ data: `8000\r\n${'x'.repeat(0x8000)}\r\n`, delayMs: 0 })),
  ], 3000);
  assert.match(chunked.text, /^HTTP\/1\.1 413/);
  for (const [what, body] of [['truncated', '{"messages": [{"role": "user"'], ['not json', 'hello'], ['empty', ''], ['deep nesting', '['.repeat(30000) + ']'.repeat(30000)]]) {
    const b = await post(s, body);
    assert.equal(b.status, 400, what);
    if (what !== 'deep nesting') assert.equal(b.json.error.code, 'invalid_json', what);
  }
  const nul = await post(s, { messages: [{ role: 'user', content: 'a\u0000b' }], max_tokens: 2 });
  assert.equal(nul.status, 200);
  await stillServes(s);
});

test('client disconnect mid-stream stops generation and frees the slot; disconnect while queued leaves the queue', async () => {
  const m = new ScriptedChatModel({ reply: 'tick tock ', stop: false, delayMs: 3, maxPositions: 100000 });
  const s = await serve(m, { concurrency: 1, maxQueue: 4 });
  const c = client(s);
  const ac = new AbortController();
  const stream = await c.chat.completions.create({ model: 'scripted-tiny', messages: [{ role: 'user', content: 'count' }], max_tokens: 3000, stream: true }, { signal: ac.signal });
  let n = 0;
  for await (const _ of stream) {
    if (++n === 5) {
      ac.abort();
      break;
    }
  }
  // The slot is freed promptly.
  await waitFor(() => s.stats.active === 0 && s.stats.cancelled === 1);
  // A second request queued behind a long one, then abandoned.
  const ac2 = new AbortController();
  const first = fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'a' }], max_tokens: 60 }) });
  await waitFor(() => s.stats.active === 1);
  const queued = fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'b' }], max_tokens: 60 }), signal: ac2.signal });
  await waitFor(() => s.stats.queued === 1);
  ac2.abort();
  await assert.rejects(queued);
  await waitFor(() => s.stats.queued === 0);
  assert.equal((await first).status, 200);
  // The aborted stream stopped long before 3000 tokens and released its slot and prompt.
  await sleep(50);
  const stepsAfter = m.steps;
  await sleep(100);
  assert.equal(m.steps, stepsAfter, 'no generation continues after the disconnect');
  assert.ok(m.steps < 300, `generation stopped early (${m.steps} model calls)`);
  assert.equal(m.live, 0, 'prepared prompts disposed');
  assert.equal(s.stats.active, 0);
  assert.equal(s.stats.cancelled, 2);
  await stillServes(s);
});

test('a full queue answers 429 with Retry-After; admitted requests all complete', async () => {
  const m = new ScriptedChatModel({ reply: 'a b c d ', stop: false, delayMs: 2 });
  const s = await serve(m, { concurrency: 1, maxQueue: 2 });
  const res = await Promise.all(Array.from({ length: 6 }, (_, i) => post(s, { messages: [{ role: 'user', content: `q${i}` }], max_tokens: 30, stream: i % 2 === 0 })));
  const codes = res.map((r) => r.status).sort();
  assert.deepEqual(codes, [200, 200, 200, 429, 429, 429]);
  for (const r of res.filter((x) => x.status === 429)) {
    assert.equal(r.json.error.type, 'rate_limit_error');
    assert.equal(r.json.error.code, 'queue_full');
    assert.equal(r.headers.get('retry-after'), '1');
  }
  assert.equal(s.stats.rejectedQueueFull, 3);
  await stillServes(s);
});

test('slowloris: headers or body trickled past their timeouts are cut off while others are served', async () => {
  const s = await serve(new ScriptedChatModel(), { headersTimeoutMs: 300, bodyTimeoutMs: 300 });
  const slowHeaders = rawExchange(s.port, [
    { data: 'POST /v1/chat/completions HTTP/1.1\r\n', delayMs: 0 },
    ...Array.from({ length: 40 }, (_, i) => ({ data: `X-Pad-${i}: y\r\n`, delayMs: 100 })),
  ], 5000);
  const slowBody = rawExchange(s.port, [
    { data: 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"messages":', delayMs: 0 },
    ...Array.from({ length: 40 }, () => ({ data: ' ', delayMs: 100 })),
  ], 5000);
  await sleep(100);
  await stillServes(s);
  const [h, b] = await Promise.all([slowHeaders, slowBody]);
  assert.ok(h.closedAfterMs < 2500, `slow headers cut off after ${h.closedAfterMs} ms`);
  assert.match(h.text, /^HTTP\/1\.1 408/);
  assert.ok(b.closedAfterMs < 2500, `slow body cut off after ${b.closedAfterMs} ms`);
  assert.match(b.text, /^HTTP\/1\.1 408/);
  assert.match(b.text, /body_timeout_ms=300|request_timeout/);
  await stillServes(s);
});

test('generation deadline: 408 for JSON, an error event for SSE', async () => {
  const s = await serve(new ScriptedChatModel({ reply: 'slow ', stop: false, delayMs: 5, maxPositions: 100000 }), { requestTimeoutMs: 150 });
  const r = await post(s, { messages: [{ role: 'user', content: 'go' }], max_tokens: 2000 });
  assert.equal(r.status, 408);
  assert.equal(r.json.error.type, 'timeout_error');
  const sse = await post(s, { messages: [{ role: 'user', content: 'go' }], max_tokens: 2000, stream: true });
  assert.equal(sse.status, 200);
  assert.match(sse.text, /data: \{"error":\{"message":"generation exceeded request_timeout_ms=150"/);
  assert.ok(!sse.text.includes('[DONE]'));
  // The openai client surfaces the error event as an APIError.
  const stream = await client(s).chat.completions.create({ model: 'scripted-tiny', messages: [{ role: 'user', content: 'go' }], max_tokens: 2000, stream: true });
  await assert.rejects((async () => { for await (const _ of stream) { /* drain */ } })(), /request_timeout_ms/);
});

test('graceful shutdown: in-flight streams finish within the grace period, new requests refused; past it they end with an error event', async () => {
  const m = new ScriptedChatModel({ reply: 'x ', stop: false, delayMs: 2 });
  const s = await startServer(m, { port: 0, webDir: null });
  await s.ready;
  const streams = [0, 1].map(() => post(s, { messages: [{ role: 'user', content: 'go' }], max_tokens: 40, stream: true }));
  await waitFor(() => s.stats.active + s.stats.queued === 2);
  const down = s.shutdown(5000);
  const refused = await fetch(`${s.url}/health`).then((r) => r.status, () => 'refused');
  assert.ok(refused === 'refused' || refused === 503, `new requests refused during drain (${refused})`);
  for (const r of await Promise.all(streams)) {
    assert.equal(r.status, 200);
    assert.ok(r.text.endsWith('data: [DONE]\n\n'), 'finished normally');
  }
  await down;
  assert.equal(s.state(), 'draining');

  const s2 = await startServer(new ScriptedChatModel({ reply: 'x ', stop: false, delayMs: 5, maxPositions: 100000 }), { port: 0, webDir: null });
  await s2.ready;
  const long = post(s2, { messages: [{ role: 'user', content: 'go' }], max_tokens: 3000, stream: true });
  const queued = post(s2, { messages: [{ role: 'user', content: 'go' }], max_tokens: 3000, stream: true });
  await waitFor(() => s2.stats.active + s2.stats.queued === 2);
  const t0 = performance.now();
  await s2.shutdown(200);
  assert.ok(performance.now() - t0 < 3000);
  const r = await long;
  assert.match(r.text, /"code":"shutting_down"/);
  const q = await queued;
  assert.equal(q.status, 503);
  assert.equal(q.json.error.code, 'shutting_down');
});
