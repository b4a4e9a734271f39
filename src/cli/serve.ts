// `chimera serve --model DIR [--host 127.0.0.1] [--port 8080]`: the OpenAI-compatible server and
// the web playground. Listens first, then loads the model (/health is 503 until it is ready).
// SIGTERM / SIGINT: graceful shutdown within --shutdown-timeout seconds, exit 0.

import * as fs from 'node:fs';
import { useBackend } from '../backends/index.ts';
import { loadChatModel } from '../models/chat-model.ts';
import { DEFAULT_SERVER_OPTIONS, startServer, type ServerOptions } from '../serve/server.ts';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';

export async function serve(argv: string[]): Promise<void> {
  const p = parseArgs(argv, [
    'model', 'host', 'port', 'api-key', 'allow-files', 'concurrency', 'max-queue', 'max-body-bytes', 'max-images',
    'max-image-bytes', 'max-image-pixels', 'max-tokens', 'request-timeout', 'shutdown-timeout', 'remote-timeout', 'backend',
  ], ['allow-remote', 'json']);
  if (p.positionals.length > 0) throw new CliError(`unexpected argument '${p.positionals[0]}'`);
  const dir = strFlag(p, 'model', '');
  if (dir === '') throw new CliError('--model DIR is required');
  const allowFiles = p.flags.has('allow-files') ? strFlag(p, 'allow-files', '') : null;
  if (allowFiles !== null && !(fs.existsSync(allowFiles) && fs.statSync(allowFiles).isDirectory())) throw new CliError(`--allow-files '${allowFiles}' is not a directory`);
  const d = DEFAULT_SERVER_OPTIONS;
  const json = p.flags.get('json') === true;
  const say = (event: Record<string, unknown>, text: string): void => {
    process.stdout.write(json ? `${JSON.stringify(event)}\n` : `${text}\n`);
  };
  const opts: Partial<ServerOptions> = {
    host: strFlag(p, 'host', d.host),
    port: intFlag(p, 'port', d.port, 0, 65535),
    apiKey: p.flags.has('api-key') ? strFlag(p, 'api-key', '') : process.env['CHIMERA_API_KEY'] || null,
    allowFilesDir: allowFiles,
    allowRemote: p.flags.get('allow-remote') === true,
    concurrency: intFlag(p, 'concurrency', d.concurrency, 1, 256),
    maxQueue: intFlag(p, 'max-queue', d.maxQueue, 0, 100000),
    maxBodyBytes: intFlag(p, 'max-body-bytes', d.maxBodyBytes, 1024, 2 ** 31),
    maxImages: intFlag(p, 'max-images', d.maxImages, 0, 1024),
    maxImageBytes: intFlag(p, 'max-image-bytes', d.maxImageBytes, 1, 2 ** 31),
    maxImagePixels: intFlag(p, 'max-image-pixels', d.maxImagePixels, 1, 0x3fff * 0x3fff),
    maxTokens: intFlag(p, 'max-tokens', d.maxTokens, 1, 1 << 20),
    requestTimeoutMs: intFlag(p, 'request-timeout', d.requestTimeoutMs / 1000, 1, 86400) * 1000,
    remoteTimeoutMs: intFlag(p, 'remote-timeout', d.remoteTimeoutMs / 1000, 1, 600) * 1000,
    log: (line) => void process.stderr.write(`${line}\n`),
  };
  if (opts.apiKey === '') throw new CliError('--api-key must not be empty');
  const graceMs = intFlag(p, 'shutdown-timeout', 10, 0, 3600) * 1000;
  useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  if (!fs.existsSync(dir)) throw new CliError(`model directory '${dir}' does not exist`);

  // Listen first; load on the next turn of the event loop so /health can answer 503 meanwhile.
  const loading = new Promise<void>((r) => setImmediate(r)).then(() => loadChatModel(dir));
  const server = await startServer(loading, opts);
  say({ event: 'listening', url: server.url, model_dir: dir }, `chimera serve: listening on ${server.url} (loading ${dir}; playground at ${server.url}/)`);
  let signalled = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (sig: string): void => {
      if (signalled) return;
      signalled = true;
      say({ event: 'shutdown', signal: sig }, `chimera serve: ${sig}: finishing in-flight requests (up to ${graceMs / 1000} s)`);
      server.shutdown(graceMs).then(resolve, resolve);
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  try {
    const m = await server.ready;
    say({ event: 'ready', model: m.id, preset: m.preset, max_positions: m.maxPositions, max_images: m.maxImages }, `chimera serve: model '${m.id}' ready`);
  } catch (e) {
    await server.shutdown(0);
    throw new Error(`cannot load the model: ${(e as Error).message}`);
  }
  await stopped;
  say({ event: 'stopped' }, 'chimera serve: stopped');
}
