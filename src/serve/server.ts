// The OpenAI-compatible HTTP server (node:http, no framework) and the playground's host.
// Routes: GET /health, GET /v1/models[/ID], POST /v1/chat/completions (JSON or SSE),
// GET /v1/chimera/plan?w=&h=&detail=, GET /v1/chimera/info, GET /v1/chimera/stats, GET / (playground).
// Contracts:
// - listens before the model has loaded: /health and the API answer 503 until it is ready;
// - every error is OpenAI-shaped (api-error.ts); limits name themselves in the message;
// - admission through a bounded queue (429 when full); images are decoded only once a request
//   holds a slot, so queued requests hold no pixels;
// - a client that disconnects aborts its generation (AbortSignal into generate); a reader that
//   stops draining past maxBufferedBytes is cut off; a generation past requestTimeoutMs ends;
// - headers and bodies must arrive within their timeouts (slowloris);
// - shutdown(): stop accepting, 503 for new requests, finish in-flight and queued work within the
//   grace period, then abort the rest (streams end with an error event, queued requests get 503).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatImage, ChatModel } from '../models/chat-model.ts';
import { ApiError, badRequest, toApiError } from './api-error.ts';
import { parseChatRequest, type ChatRequest } from './chat-request.ts';
import { runCompletion, type CompletionResult } from './completion.ts';
import { loadImageSource } from './image-source.ts';
import { Scheduler } from './scheduler.ts';
import { findWebDir, loadWebFiles, type StaticFile } from './static.ts';

export interface ServerOptions {
  host: string;
  /** 0 picks a free port (see ChimeraServer.port). */
  port: number;
  /** Bearer / X-Api-Key required on /v1/* when set; /health and the playground stay public. */
  apiKey: string | null;
  /** Generations running at once. */
  concurrency: number;
  /** Requests waiting for a slot before 429. */
  maxQueue: number;
  maxBodyBytes: number;
  /** Images per request (also capped by the model's own maxImages). */
  maxImages: number;
  maxImageBytes: number;
  maxImagePixels: number;
  /** Largest max_tokens accepted. */
  maxTokens: number;
  maxMessages: number;
  allowFilesDir: string | null;
  allowRemote: boolean;
  allowPrivateRemote: boolean;
  remoteTimeoutMs: number;
  /** Time allowed for the request headers, then for the body. */
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Deadline of one request from admission to the last token. */
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** A streaming client that leaves more than this unread is disconnected. */
  maxBufferedBytes: number;
  /** Playground folder; undefined finds web/ in the package, null serves none. */
  webDir?: string | null;
  /** One line per event worth logging (startup, 5xx). */
  log: (line: string) => void;
}

export const DEFAULT_SERVER_OPTIONS: ServerOptions = {
  host: '127.0.0.1', port: 8080, apiKey: null, concurrency: 1, maxQueue: 16,
  maxBodyBytes: 32 * 1024 * 1024, maxImages: 8, maxImageBytes: 20 * 1024 * 1024, maxImagePixels: 1 << 25,
  maxTokens: 4096, maxMessages: 256, allowFilesDir: null, allowRemote: false, allowPrivateRemote: false,
  remoteTimeoutMs: 10_000, headersTimeoutMs: 10_000, bodyTimeoutMs: 30_000, requestTimeoutMs: 600_000,
  keepAliveTimeoutMs: 5_000, maxBufferedBytes: 4 * 1024 * 1024, log: () => {},
};

export type ServerState = 'loading' | 'ready' | 'failed' | 'draining';

export interface ServerStats {
  requests: number;
  completed: number;
  /** Ended because the client went away (or was cut off as too slow). */
  cancelled: number;
  rejectedQueueFull: number;
  /** Completion tokens generated, aborted generations included. */
  completionTokens: number;
  active: number;
  queued: number;
}

export interface ChimeraServer {
  readonly url: string;
  readonly port: number;
  readonly http: http.Server;
  /** A snapshot of the counters. */
  readonly stats: ServerStats;
  state(): ServerState;
  /** Resolves when the model is loaded; rejects with its load error. */
  readonly ready: Promise<ChatModel>;
  /** Graceful stop (see header); resolves once every connection is closed. */
  shutdown(graceMs?: number): Promise<void>;
}

interface InFlight {
  abort: (why: 'shutdown') => void;
  done: Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': String(data.length), ...headers });
  res.end(data);
}

function sendError(res: http.ServerResponse, e: ApiError, headers: Record<string, string> = {}): void {
  const h: Record<string, string> = { ...headers };
  if (e.status === 429) h['Retry-After'] = '1';
  if (e.status === 401) h['WWW-Authenticate'] = 'Bearer';
  sendJson(res, e.status, e.body(), h);
}

/** Reads the body with a byte cap and a deadline (413 / 408). */
function readBody(req: http.IncomingMessage, max: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > max) {
    return Promise.reject(new ApiError(413, 'invalid_request_error', `request body is ${declared} bytes, over the limit max_body_bytes=${max}`, null, 'request_too_large'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const done = (err: ApiError | null): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onErr);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, n));
    };
    const timer = setTimeout(() => done(new ApiError(408, 'timeout_error', `request body not received within body_timeout_ms=${timeoutMs}`, null, 'request_timeout')), timeoutMs);
    const onData = (c: Buffer): void => {
      n += c.length;
      if (n > max) done(new ApiError(413, 'invalid_request_error', `request body is over the limit max_body_bytes=${max}`, null, 'request_too_large'));
      else chunks.push(c);
    };
    const onEnd = (): void => done(null);
    const onErr = (): void => done(new ApiError(400, 'invalid_request_error', 'request body could not be read'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onErr);
  });
}

function keyMatches(given: string, want: string): boolean {
  const a = createHash('sha256').update(given).digest(), b = createHash('sha256').update(want).digest();
  return timingSafeEqual(a, b);
}

/** Starts listening at once; `model` may still be loading. */
export async function startServer(model: ChatModel | Promise<ChatModel>, options: Partial<ServerOptions> = {}): Promise<ChimeraServer> {
  const o: ServerOptions = { ...DEFAULT_SERVER_OPTIONS, ...options };
  const web = loadWebFiles(o.webDir === undefined ? findWebDir() : o.webDir);
  const scheduler = new Scheduler(o.concurrency, o.maxQueue);
  const stats: ServerStats = { requests: 0, completed: 0, cancelled: 0, rejectedQueueFull: 0, completionTokens: 0, active: 0, queued: 0 };
  const inflight = new Set<InFlight>();
  let state: ServerState = 'loading';
  let loaded: ChatModel | null = null;
  let loadError: string | null = null;
  const created = Math.floor(Date.now() / 1000);

  const ready = Promise.resolve(model).then((m) => {
    loaded = m;
    if (state === 'loading') state = 'ready';
    return m;
  }, (e: unknown) => {
    loadError = e instanceof Error ? e.message : String(e);
    if (state === 'loading') state = 'failed';
    throw e;
  });
  ready.catch(() => {});

  const unavailable = (): ApiError => state === 'draining'
    ? new ApiError(503, 'unavailable_error', 'server is shutting down', null, 'shutting_down')
    : state === 'failed'
      ? new ApiError(503, 'unavailable_error', `model failed to load: ${loadError}`, null, 'model_load_failed')
      : new ApiError(503, 'unavailable_error', 'Loading model', null, 'model_loading');

  const requireModel = (): ChatModel => {
    if (state !== 'ready' || loaded === null) throw unavailable();
    return loaded;
  };

  const modelObject = (m: ChatModel): Record<string, unknown> => ({ id: m.id, object: 'model', created, owned_by: 'chimera' });

  const server = http.createServer({
    headersTimeout: o.headersTimeoutMs,
    requestTimeout: o.headersTimeoutMs + o.bodyTimeoutMs,
    keepAliveTimeout: o.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(o.headersTimeoutMs / 4))),
  }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = toApiError(e);
      if (err.status >= 500) o.log(`error: ${req.method} ${req.url}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return void socket.destroy();
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const body = JSON.stringify(timeout
      ? new ApiError(408, 'timeout_error', `request not received within headers_timeout_ms=${o.headersTimeoutMs} / body_timeout_ms=${o.bodyTimeoutMs}`, null, 'request_timeout').body()
      : badRequest('malformed HTTP request', null, 'bad_http').body());
    socket.end(`HTTP/1.1 ${timeout ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const route = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const allow = (...ms: string[]): void => {
      if (!ms.includes(method)) throw new ApiError(405, 'invalid_request_error', `method ${method} is not allowed on ${route} (use ${ms.join(', ')})`, null, 'method_not_allowed');
    };
    if (state === 'draining') res.setHeader('Connection', 'close');

    if (route === '/health') {
      allow('GET', 'HEAD');
      if (state !== 'ready') return sendError(res, unavailable());
      return sendJson(res, 200, { status: 'ok' });
    }
    const staticName = route === '/' ? 'index.html' : route.slice(1);
    const file: StaticFile | undefined = web.get(staticName);
    if (file && !route.startsWith('/v1')) {
      allow('GET', 'HEAD');
      res.writeHead(200, {
        'Content-Type': file.type, 'Content-Length': String(file.body.length), 'Cache-Control': 'no-cache',
        'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'",
        'X-Content-Type-Options': 'nosniff',
      });
      res.end(method === 'HEAD' ? undefined : file.body);
      return;
    }
    if (!route.startsWith('/v1/')) throw new ApiError(404, 'not_found_error', `no route ${route}`, null, 'not_found');

    if (o.apiKey !== null) {
      const auth = req.headers['authorization'];
      const bearer = typeof auth === 'string' && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '') : null;
      const xkey = req.headers['x-api-key'];
      const given = bearer ?? (typeof xkey === 'string' ? xkey : null);
      if (given === null) throw new ApiError(401, 'authentication_error', 'missing API key (send Authorization: Bearer KEY)', null, 'missing_api_key');
      if (!keyMatches(given, o.apiKey)) throw new ApiError(401, 'authentication_error', 'incorrect API key provided', null, 'invalid_api_key');
    }

    if (route === '/v1/models') {
      allow('GET');
      const m = requireModel();
      return sendJson(res, 200, { object: 'list', data: [modelObject(m)] });
    }
    if (route.startsWith('/v1/models/')) {
      allow('GET');
      const m = requireModel();
      const id = decodeURIComponent(route.slice('/v1/models/'.length));
      if (id !== m.id) throw new ApiError(404, 'not_found_error', `The model '${id}' does not exist`, 'model', 'model_not_found');
      return sendJson(res, 200, modelObject(m));
    }
    if (route === '/v1/chimera/info') {
      allow('GET');
      const m = requireModel();
      return sendJson(res, 200, {
        id: m.id, preset: m.preset, max_images: Math.min(m.maxImages, o.maxImages), max_positions: m.maxPositions,
        defaults: { temperature: m.defaults.temperature, top_p: m.defaults.topP, max_tokens: m.defaults.maxNewTokens },
        limits: {
          max_body_bytes: o.maxBodyBytes, max_image_bytes: o.maxImageBytes, max_image_pixels: o.maxImagePixels,
          max_tokens: o.maxTokens, max_messages: o.maxMessages, concurrency: o.concurrency, max_queue: o.maxQueue,
        },
      });
    }
    if (route === '/v1/chimera/stats') {
      allow('GET');
      return sendJson(res, 200, { ...stats, active: scheduler.active, queued: scheduler.queued, state, rss_bytes: process.memoryUsage().rss });
    }
    if (route === '/v1/chimera/plan') {
      allow('GET');
      const m = requireModel();
      const dim = (k: string): number => {
        const v = url.searchParams.get(k);
        const n = Number(v);
        if (v === null || !/^\d+$/.test(v) || n < 1 || n > 100000) throw badRequest(`query parameter '${k}' must be an integer in [1, 100000], got ${JSON.stringify(v)}`, k);
        return n;
      };
      const w = dim('w'), h = dim('h');
      const d = url.searchParams.get('detail') ?? 'auto';
      if (d !== 'low' && d !== 'high' && d !== 'auto') throw badRequest(`query parameter 'detail' must be low, high or auto, got ${JSON.stringify(d)}`, 'detail');
      let plan;
      try {
        plan = m.planImage(w, h, d === 'low' ? 'low' : 'high');
      } catch (e) {
        throw badRequest((e as Error).message, null, 'model_takes_no_images');
      }
      return sendJson(res, 200, { image: [w, h], detail: d === 'low' ? 'low' : 'high', positions: plan.positions, views: plan.views });
    }
    if (route === '/v1/chat/completions') {
      allow('POST');
      return chat(req, res);
    }
    throw new ApiError(404, 'not_found_error', `no route ${route}`, null, 'not_found');
  }

  async function chat(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    stats.requests++;
    let body: Buffer;
    try {
      body = await readBody(req, o.maxBodyBytes, o.bodyTimeoutMs);
    } catch (e) {
      // Answer, then drop the connection: the rest of the body is not worth reading.
      res.setHeader('Connection', 'close');
      sendError(res, toApiError(e));
      req.resume();
      setTimeout(() => req.socket.destroy(), 1000).unref();
      return;
    }
    const m = requireModel();
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw badRequest(`request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
    }
    const maxImages = Math.min(o.maxImages, m.maxImages);
    const r = parseChatRequest(json, { maxImages: Math.max(o.maxImages, 0), maxTokens: o.maxTokens, maxMessages: o.maxMessages });
    if (r.model !== null && r.model !== m.id) throw new ApiError(404, 'not_found_error', `The model '${r.model}' does not exist (this server serves '${m.id}')`, 'model', 'model_not_found');
    if (r.imageRefs.length > 0 && m.maxImages === 0) throw badRequest(`model '${m.id}' is a text-only language model: it takes no images`, 'messages', 'model_takes_no_images');
    if (r.imageRefs.length > maxImages) throw badRequest(`the request carries ${r.imageRefs.length} images, over the limit max_images=${maxImages}`, 'messages', 'too_many_images');

    const ac = new AbortController();
    let why: 'client' | 'slow' | 'deadline' | 'shutdown' | null = null;
    const abort = (w: typeof why): void => {
      if (why === null) why = w;
      ac.abort();
    };
    res.on('close', () => {
      if (!res.writableFinished) abort('client');
    });
    const t0 = performance.now();
    let release: (() => void) | null = null;
    let finishFlight!: () => void;
    const flight: InFlight = { abort, done: new Promise((r) => { finishFlight = r; }) };
    inflight.add(flight);
    try {
      try {
        release = await scheduler.acquire(ac.signal);
      } catch (e) {
        if (e instanceof ApiError && e.status === 429) stats.rejectedQueueFull++;
        if (e instanceof ApiError && e.status === 499) {
          if (why === 'shutdown') throw unavailable();
          stats.cancelled++;
          return;
        }
        throw e;
      }
      const deadline = setTimeout(() => abort('deadline'), o.requestTimeoutMs);
      try {
        await serveChat(r, m, res, ac.signal, t0, () => why, (w) => abort(w));
      } finally {
        clearTimeout(deadline);
      }
    } finally {
      release?.();
      inflight.delete(flight);
      finishFlight();
    }
  }

  async function serveChat(
    r: ChatRequest, m: ChatModel, res: http.ServerResponse, signal: AbortSignal, t0: number,
    why: () => 'client' | 'slow' | 'deadline' | 'shutdown' | null, abort: (w: 'slow') => void,
  ): Promise<void> {
    const queueMs = performance.now() - t0;
    const images: ChatImage[] = [];
    for (const ref of r.imageRefs) {
      const img = await loadImageSource(ref.url, {
        allowFilesDir: o.allowFilesDir, allowRemote: o.allowRemote, allowPrivateRemote: o.allowPrivateRemote,
        maxImageBytes: o.maxImageBytes, maxImagePixels: o.maxImagePixels, remoteTimeoutMs: o.remoteTimeoutMs,
      }, ref.param, signal);
      images.push({ image: img.image, detail: ref.detail });
    }
    if (signal.aborted) {
      stats.cancelled++;
      return;
    }
    const imageMs = performance.now() - t0 - queueMs;
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: createdAt, model: m.id, system_fingerprint: null, choices, ...(r.includeUsage ? { usage: null } : {}), ...extra })}\n\n`;
    const timingsOf = (c: CompletionResult): Record<string, number> => ({ queue_ms: round(queueMs), image_ms: round(imageMs), ...c.timings });
    const abortError = (): ApiError => {
      const w = why();
      return w === 'deadline' ? new ApiError(408, 'timeout_error', `generation exceeded request_timeout_ms=${o.requestTimeoutMs}`, null, 'request_timeout')
        : new ApiError(503, 'unavailable_error', 'server is shutting down; the generation was stopped', null, 'shutting_down');
    };

    if (!r.stream) {
      const c = await runCompletion(m, r.turns, images, r, { signal });
      stats.completionTokens += c.usage.completion_tokens;
      if (c.finishReason === 'abort') {
        if (why() === 'client' || why() === null) { stats.cancelled++; return; }
        throw abortError();
      }
      stats.completed++;
      return sendJson(res, 200, {
        id, object: 'chat.completion', created: createdAt, model: m.id, system_fingerprint: null,
        choices: [{ index: 0, message: { role: 'assistant', content: c.text, refusal: null }, logprobs: null, finish_reason: c.finishReason }],
        usage: c.usage, timings: timingsOf(c),
      });
    }

    let started = false;
    const start = (): void => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
      res.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
    };
    const write = (s: string): void => {
      if (res.destroyed || res.writableEnded) return;
      res.write(s);
      if (res.writableLength > o.maxBufferedBytes) {
        abort('slow');
        res.destroy();
      }
    };
    let c: CompletionResult;
    try {
      c = await runCompletion(m, r.turns, images, r, {
        signal,
        onPrepared: start,
        onDelta: (d) => write(chunk([{ index: 0, delta: { content: d }, logprobs: null, finish_reason: null }])),
      });
    } catch (e) {
      if (!started) throw e;
      const err = toApiError(e);
      if (err.status >= 500) o.log(`error: streaming generation: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      write(`data: ${JSON.stringify(err.body())}\n\n`);
      res.end();
      return;
    }
    stats.completionTokens += c.usage.completion_tokens;
    if (c.finishReason === 'abort') {
      const w = why();
      if (w === 'client' || w === 'slow' || w === null) { stats.cancelled++; res.destroy(); return; }
      write(`data: ${JSON.stringify(abortError().body())}\n\n`);
      res.end();
      return;
    }
    stats.completed++;
    write(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: c.finishReason }]));
    if (r.includeUsage) write(chunk([], { usage: c.usage, timings: timingsOf(c) }));
    write('data: [DONE]\n\n');
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = o.host.includes(':') ? `[${o.host}]` : o.host;

  let stopping: Promise<void> | null = null;
  const shutdown = (graceMs = 10_000): Promise<void> => {
    if (stopping) return stopping;
    state = 'draining';
    stopping = (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const all = Promise.all([...inflight].map((f) => f.done));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((r) => { timer = setTimeout(() => r(true), graceMs); })]);
      clearTimeout(timer);
      if (timedOut) {
        for (const f of inflight) f.abort('shutdown');
        await Promise.race([Promise.all([...inflight].map((f) => f.done)), new Promise((r) => setTimeout(r, 2000))]);
      }
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 200).unref();
      await closed;
    })();
    return stopping;
  };

  return {
    url: `http://${hostPart}:${port}`, port, http: server, ready,
    get stats() { return { ...stats, active: scheduler.active, queued: scheduler.queued }; },
    state: () => state,
    shutdown,
  };
}

const round = (x: number): number => Math.round(x * 100) / 100;
