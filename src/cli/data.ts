// `chimera data make-corpus | coreset | check`: the built-in corpus writer, SVIT-style coreset
// selection, and dataset validation.

import * as fs from 'node:fs';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';
import { corpusSamples, VQA_KINDS, type VqaKind } from '../data/corpus.ts';
import { writeCorpus } from '../data/corpus-writer.ts';
import { coresetOfConversations } from '../data/coreset.ts';
import { countConversations, loadConversations } from '../data/conversations.ts';
import { isTaskName, TASK_NAMES, type TaskName } from '../data/tasks.ts';
import type { Domain, Split } from '../data/types.ts';

const USAGE = 'chimera data make-corpus --out DIR --domain real|synthetic|both --n N [--seed S] [--split train|val|test] [--size PX] [--small-objects] [--tasks a,b] [--vqa-kinds a,b] [--name NAME] [--json] | chimera data coreset --data FILE --out FILE --size N [--json] | chimera data check --data FILE [--root DIR] [--skip-invalid] [--json]';

function listFlag<T extends string>(v: string, known: readonly T[], what: string): T[] {
  const xs = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const x of xs) if (!(known as readonly string[]).includes(x)) throw new CliError(`--${what}: unknown '${x}' (known: ${known.join(', ')})`);
  if (xs.length === 0) throw new CliError(`--${what} is empty`);
  return xs as T[];
}

async function makeCorpus(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['out', 'domain', 'n', 'seed', 'split', 'size', 'tasks', 'vqa-kinds', 'name'], ['small-objects', 'json']);
  const out = strFlag(p, 'out', '');
  if (!out) throw new CliError('--out DIR is required');
  if (!p.flags.has('domain')) throw new CliError('--domain real|synthetic|both is required');
  const domain = strFlag(p, 'domain', 'both', ['real', 'synthetic', 'both']) as Domain | 'both';
  if (!p.flags.has('n')) throw new CliError('--n N is required');
  const n = intFlag(p, 'n', 0, 1, 10_000_000);
  const seed = intFlag(p, 'seed', 0, 0, 2 ** 32 - 1);
  const split = strFlag(p, 'split', 'train', ['train', 'val', 'test']) as Split;
  const size = intFlag(p, 'size', 64, 32, 1024);
  const tasks: TaskName[] = p.flags.has('tasks') ? listFlag(strFlag(p, 'tasks', ''), TASK_NAMES, 'tasks') : [...TASK_NAMES];
  if (!tasks.every(isTaskName)) throw new CliError('--tasks: unknown task');
  const vqaKinds: VqaKind[] = p.flags.has('vqa-kinds') ? listFlag(strFlag(p, 'vqa-kinds', ''), VQA_KINDS, 'vqa-kinds') : [...VQA_KINDS];
  const name = strFlag(p, 'name', split);
  const t0 = performance.now();
  const r = await writeCorpus(out, corpusSamples(n, { domain, split, seed, size, smallObjects: p.flags.has('small-objects'), tasks, vqaKinds }), name);
  const res = { file: r.file, samples: r.count, bytes: r.bytes, domain, split, seed, size, small_objects: p.flags.has('small-objects'), seconds: +((performance.now() - t0) / 1000).toFixed(2) };
  process.stdout.write(p.flags.has('json') ? `${JSON.stringify(res)}\n` : `wrote ${r.count} samples to ${r.file} (${(r.bytes / 1e6).toFixed(2)} MB, ${res.seconds} s)\n`);
}

async function coreset(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['data', 'out', 'size'], ['json']);
  const data = strFlag(p, 'data', ''), out = strFlag(p, 'out', '');
  if (!data || !out) throw new CliError('--data FILE and --out FILE are required');
  if (!p.flags.has('size')) throw new CliError('--size N is required');
  const size = intFlag(p, 'size', 0, 1);
  if (!fs.existsSync(data)) throw new CliError(`--data: no such file '${data}'`);
  const { records } = await loadConversations(data, { checkImages: false, allowUnanswered: true });
  const { indices, stats } = coresetOfConversations(records.map((r) => r.conversations), size);
  const text = indices.map((i) => JSON.stringify(records[i]!.raw)).join('\n') + (indices.length ? '\n' : '');
  const tmp = `${out}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, out);
  const res = { out, read: records.length, selected: stats.selected, concepts_covered: stats.conceptsCovered, concepts_total: stats.conceptsTotal, yes: stats.yes, no: stats.no, other: stats.other };
  process.stdout.write(p.flags.has('json') ? `${JSON.stringify(res)}\n` : `selected ${stats.selected} of ${records.length} records covering ${stats.conceptsCovered}/${stats.conceptsTotal} concepts (yes ${stats.yes}, no ${stats.no}) -> ${out}\n`);
}

async function check(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['data', 'root'], ['skip-invalid', 'json']);
  const data = strFlag(p, 'data', '');
  if (!data) throw new CliError('--data FILE is required');
  const root = p.flags.has('root') ? strFlag(p, 'root', '') : undefined;
  const rep = await countConversations(data, { skipInvalid: p.flags.has('skip-invalid'), ...(root !== undefined ? { root } : {}) });
  process.stdout.write(p.flags.has('json') ? `${JSON.stringify(rep)}\n` : `${data}: ${rep.kept} valid records, ${rep.skipped} skipped${rep.skipped ? ` (${Object.entries(rep.byReason).map(([k, v]) => `${v} ${k}`).join(', ')})` : ''}\n${rep.examples.map((e) => `  ${e}\n`).join('')}`);
}

export async function dataCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'make-corpus') return makeCorpus(rest);
  if (sub === 'coreset') return coreset(rest);
  if (sub === 'check') return check(rest);
  throw new CliError(`unknown data subcommand '${sub ?? ''}' (make-corpus, coreset, check); usage: ${USAGE}`);
}

export const DATA_USAGE = USAGE;
