// `chimera run --model DIR [--image PATH ...] "question"`: one answer, streamed to stdout
// (--json: one object {"text","usage","finish_reason"} at the end).

import { useBackend } from '../backends/index.ts';
import { loadChatModel, type ChatModel } from '../models/chat-model.ts';
import { ApiError } from '../serve/api-error.ts';
import type { SamplingRequest } from '../serve/chat-request.ts';
import { ChatSession, loadImageFile } from '../serve/session.ts';
import { CliError, intFlag, parseArgs, strFlag, type Parsed } from './args.ts';

export const SAMPLING_FLAGS = ['temperature', 'top-p', 'max-tokens', 'seed'] as const;

/** Pulls every `--name V` / `--name=V` out of argv (the flag parser keeps only the last). */
export function takeRepeated(argv: readonly string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [], rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`--${name} needs a value`);
      values.push(v);
    } else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { values, rest };
}

function numFlag(p: Parsed, name: string, lo: number, hi: number, loOpen = false): number | null {
  const v = p.flags.get(name);
  if (v === undefined) return null;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n > hi || (loOpen ? n <= lo : n < lo)) throw new CliError(`--${name} must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got '${v}'`);
  return n;
}

export function samplingFlags(p: Parsed): SamplingRequest {
  return {
    temperature: numFlag(p, 'temperature', 0, 2),
    topP: numFlag(p, 'top-p', 0, 1, true),
    maxTokens: p.flags.has('max-tokens') ? intFlag(p, 'max-tokens', 1, 1, 1 << 20) : null,
    seed: p.flags.has('seed') ? intFlag(p, 'seed', 0, 0, 2 ** 32 - 1) : null,
    stop: [],
  };
}

/** Selects the backend, loads the model and attaches the --image files to a new session. */
export async function openSession(p: Parsed, dir: string, imagePaths: readonly string[], detail: 'low' | 'high'): Promise<{ model: ChatModel; session: ChatSession }> {
  useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const model = await loadChatModel(dir);
  const session = new ChatSession(model, p.flags.has('system') ? strFlag(p, 'system', '') : null);
  for (const ip of imagePaths) {
    try {
      session.attach(await loadImageFile(ip, detail));
    } catch (e) {
      throw new CliError(`--image ${ip}: ${(e as Error).message.replace(/^decodeImage: /, '')}`);
    }
  }
  return { model, session };
}

/** Model errors caused by the input (too long, images refused) are bad input: exit 2. */
export function asCliError(e: unknown): unknown {
  return e instanceof ApiError && e.status === 400 ? new CliError(e.message) : e;
}

export async function run(argv: string[]): Promise<void> {
  const { values: imagePaths, rest } = takeRepeated(argv, 'image');
  const p = parseArgs(rest, ['model', 'system', 'detail', 'backend', ...SAMPLING_FLAGS], ['json']);
  const dir = strFlag(p, 'model', '');
  if (dir === '') throw new CliError('--model DIR is required');
  if (p.positionals.length !== 1) throw new CliError(p.positionals.length === 0 ? 'the question is required: chimera run --model DIR "question"' : `expected one question, got ${p.positionals.length} arguments (quote the question)`);
  const detail = strFlag(p, 'detail', 'high', ['low', 'high', 'auto']) === 'low' ? 'low' : 'high';
  const sampling = samplingFlags(p);
  const { model, session } = await openSession(p, dir, imagePaths, detail);
  const json = p.flags.get('json') === true;
  let r;
  try {
    r = await session.send(p.positionals[0]!, sampling, json ? undefined : (d) => process.stdout.write(d));
  } catch (e) {
    throw asCliError(e);
  }
  if (json) process.stdout.write(`${JSON.stringify({ text: r.text, usage: r.usage, finish_reason: r.finishReason })}\n`);
  else process.stdout.write('\n');
}
