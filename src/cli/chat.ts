// `chimera chat --model DIR [--image PATH ...]`: multi-turn chat on stdin/stdout. Works with or
// without a terminal (lines are read from stdin). Commands: /image PATH, /reset, /quit, /help.
// Answers stream to stdout; notes and errors go to stderr. Ctrl-C stops the current answer.

import * as readline from 'node:readline';
import { loadImageFile } from '../serve/session.ts';
import { CliError, parseArgs, strFlag } from './args.ts';
import { openSession, SAMPLING_FLAGS, samplingFlags, takeRepeated } from './run.ts';

const HELP = 'commands: /image PATH (attach to the next message), /reset (new conversation), /quit';

export async function chat(argv: string[]): Promise<void> {
  const { values: imagePaths, rest } = takeRepeated(argv, 'image');
  const p = parseArgs(rest, ['model', 'system', 'detail', 'backend', ...SAMPLING_FLAGS], ['json']);
  const dir = strFlag(p, 'model', '');
  if (dir === '') throw new CliError('--model DIR is required');
  if (p.positionals.length > 0) throw new CliError(`unexpected argument '${p.positionals[0]}' (type messages on stdin)`);
  const detail = strFlag(p, 'detail', 'high', ['low', 'high', 'auto']) === 'low' ? 'low' : 'high';
  const sampling = samplingFlags(p);
  const json = p.flags.get('json') === true;
  const { model, session } = await openSession(p, dir, imagePaths, detail);
  const tty = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const note = (s: string): void => void process.stderr.write(`${s}\n`);
  if (tty) note(`chatting with ${model.id} (${HELP})`);
  const rl = readline.createInterface({ input: process.stdin, ...(tty ? { output: process.stdout, prompt: '> ' } : {}), terminal: tty });
  let current: AbortController | null = null;
  const onSigint = (): void => {
    if (current) current.abort();
    else rl.close();
  };
  process.on('SIGINT', onSigint);
  rl.on('SIGINT', onSigint);
  try {
    if (tty) rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '') { if (tty) rl.prompt(); continue; }
      if (line === '/quit' || line === '/exit') break;
      if (line === '/help') note(HELP);
      else if (line === '/reset') {
        session.reset();
        note('(conversation reset)');
      } else if (line.startsWith('/image')) {
        const ip = line.slice('/image'.length).trim();
        if (ip === '') note('error: /image needs a path');
        else {
          try {
            const img = await loadImageFile(ip, detail);
            session.attach(img);
            note(`(image ${img.image.width}x${img.image.height} attached to your next message)`);
          } catch (e) {
            note(`error: ${(e as Error).message.replace(/^decodeImage: /, '')}`);
          }
        }
      } else if (line.startsWith('/')) note(`error: unknown command ${line.split(/\s/)[0]} (${HELP})`);
      else {
        current = new AbortController();
        try {
          const r = await session.send(line, sampling, json ? undefined : (d) => process.stdout.write(d), current.signal);
          if (json) process.stdout.write(`${JSON.stringify({ text: r.text, usage: r.usage, finish_reason: r.finishReason })}\n`);
          else process.stdout.write('\n');
        } catch (e) {
          note(`error: ${(e as Error).message}`);
        } finally {
          current = null;
        }
      }
      if (tty) rl.prompt();
    }
  } finally {
    process.off('SIGINT', onSigint);
    rl.close();
  }
}
