// Load test of `chimera serve` (run: node dist/bench/serve-load.js [--clients 32] [--tokens 32] [--json]).
// Starts the real server as a child process on a tiny random llama, fires N concurrent streaming
// clients twice: (A) a queue large enough for all of them, (B) a small queue, which must shed the
// excess with 429. Reports p50/p95 latency and time to first token, aggregate tokens/s, 429
// counts and the server's peak RSS (polled from /v1/chimera/stats).

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { makeTinyLlamaDir, tmpDir } from '../test/helpers/tiny-model.ts';

const MAIN = path.resolve(new URL('../src/cli/main.js', import.meta.url).pathname);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const CLIENTS = arg('clients', 32), TOKENS = arg('tokens', 32), CONC = arg('concurrency', 4);
const JSON_OUT = process.argv.includes('--json');

interface ClientResult { status: number; ttftMs: number; totalMs: number; tokens: number }

async function oneClient(url: string, i: number): Promise<ClientResult> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: `client ${i}: tell me about the cat` }], max_tokens: TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) {
    await res.text();
    return { status: res.status, ttftMs: NaN, totalMs: performance.now() - t0, tokens: 0 };
  }
  let ttft = NaN, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body!) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const j = JSON.parse(line.slice(6));
      if (j.choices?.[0]?.delta?.content && Number.isNaN(ttft)) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { status: 200, ttftMs: ttft, totalMs: performance.now() - t0, tokens };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function phase(name: string, dir: string, maxQueue: number): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--model', dir, '--port', '0', '--json', '--concurrency', String(CONC), '--max-queue', String(maxQueue)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  let listening = '';
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (l) => {
      const e = JSON.parse(l);
      if (e.event === 'listening') listening = e.url;
      if (e.event === 'ready') resolve(listening);
    });
    child.on('exit', (code) => reject(new Error(`chimera serve exited with ${code} before it was ready`)));
  });
  let peakRss = 0;
  const poll = setInterval(async () => {
    try {
      const s = await (await fetch(`${url}/v1/chimera/stats`)).json() as { rss_bytes: number };
      peakRss = Math.max(peakRss, s.rss_bytes);
    } catch { /* shutting down */ }
  }, 20);
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => oneClient(url, i)));
  const wall = performance.now() - t0;
  clearInterval(poll);
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  const ok = results.filter((r) => r.status === 200);
  const tokens = ok.reduce((a, r) => a + r.tokens, 0);
  return {
    phase: name, clients: CLIENTS, concurrency: CONC, max_queue: maxQueue, max_tokens: TOKENS,
    ok: ok.length, status_429: results.filter((r) => r.status === 429).length, other_errors: results.filter((r) => r.status !== 200 && r.status !== 429).length,
    p50_latency_ms: Math.round(pct(ok.map((r) => r.totalMs), 50)), p95_latency_ms: Math.round(pct(ok.map((r) => r.totalMs), 95)),
    p50_ttft_ms: Math.round(pct(ok.map((r) => r.ttftMs), 50)), p95_ttft_ms: Math.round(pct(ok.map((r) => r.ttftMs), 95)),
    tokens_per_s: Math.round(tokens / (wall / 1000)), wall_ms: Math.round(wall), peak_rss_mb: Math.round(peakRss / 2 ** 20),
  };
}

const dir = makeTinyLlamaDir(path.join(tmpDir('chimera-bench-'), 'tiny-bench'), { eos: false, hidden: 64, maxPositions: 512 });
for (const [name, q] of [['all-admitted', CLIENTS], ['shedding', 8]] as const) {
  const r = await phase(name, dir, q);
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    process.stdout.write(`${name}: ${r['clients']} clients, concurrency ${r['concurrency']}, max_queue ${r['max_queue']}: ${r['ok']} ok, ${r['status_429']} x 429, ` +
      `latency p50 ${r['p50_latency_ms']} ms p95 ${r['p95_latency_ms']} ms, TTFT p50 ${r['p50_ttft_ms']} ms p95 ${r['p95_ttft_ms']} ms, ` +
      `${r['tokens_per_s']} tokens/s, peak RSS ${r['peak_rss_mb']} MB\n`);
  }
}
