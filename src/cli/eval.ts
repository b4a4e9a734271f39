// `chimera eval --model DIR --data FILE --task vqa|rec|pope|mme|caption [--limit N] [--max-tokens N] [--root DIR] [--out FILE] [--json]`
// `chimera eval --predictions FILE --task ...`: scores a JSONL of {question_id, answer,
// references | answers | label, box?, width?, height?, image_id?, category?} without a model.
// Prints {"task", metric: value, ...}; --out writes per-question predictions as JSONL.

import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { CliError, intFlag, parseArgs, strFlag } from './args.ts';
import { useBackend } from '../backends/index.ts';
import { readConversations } from '../data/conversations.ts';
import { EVAL_TASKS, evaluate, exampleFromRecord, predictionRow, scoreTask, type EvalExample, type EvalTask, type Metrics } from '../eval/harness.ts';
import { decodeImage } from '../io/image.ts';
import { loadChatModel, type ChatPart } from '../models/chat-model.ts';
import { generate } from '../serve/generate.ts';

/** The metric `mix --search` maximises per task. */
export function headlineMetric(task: EvalTask, m: Metrics): [string, number] {
  const key = task === 'caption' ? 'cider' : task === 'mme' ? 'score' : task === 'pope' ? 'f1' : 'accuracy';
  return [key, m[key] as number];
}

export async function loadExamples(data: string, task: EvalTask, opts: { limit?: number; root?: string } = {}): Promise<EvalExample[]> {
  const out: EvalExample[] = [];
  const gen = readConversations(data, { allowUnanswered: true, ...(opts.root !== undefined ? { root: opts.root } : {}) });
  for await (const rec of gen) {
    out.push(exampleFromRecord(rec, task));
    if (opts.limit && out.length >= opts.limit) { await gen.return(undefined); break; }
  }
  return out;
}

/** Loads a model folder, answers every example greedily, and scores. */
export async function runModelEval(modelDir: string, data: string, task: EvalTask, opts: { limit?: number; maxTokens?: number; root?: string; onAnswer?: (ex: EvalExample, a: string, i: number) => void } = {}) {
  const examples = await loadExamples(data, task, opts);
  useBackend((process.env['CHIMERA_BACKEND'] as 'auto' | undefined) ?? 'auto');
  const model = await loadChatModel(modelDir);
  try {
    const answer = async (ex: EvalExample): Promise<string> => {
      const images = [];
      for (const p of ex.images) images.push({ image: await decodeImage(p) });
      const content: ChatPart[] = [...images.map((_, i): ChatPart => ({ type: 'image', image: i })), { type: 'text', text: ex.question }];
      const prepared = model.prepare([{ role: 'user', content: images.length ? content : ex.question }], images);
      try {
        const [r] = await generate(prepared.lm, [prepared.ids], {
          maxNewTokens: opts.maxTokens ?? 32, temperature: 0, stopTokenIds: model.stopTokenIds, stopStrings: model.stopStrings,
          decode: (ids) => model.tokenizer.decode(ids), lengthPolicy: 'truncate',
        });
        return (r!.text ?? '').trim();
      } finally {
        prepared.dispose();
      }
    };
    return await evaluate(task, examples, answer, opts.onAnswer);
  } finally {
    model.dispose();
  }
}

async function scorePredictionsFile(file: string, task: EvalTask, limit: number): Promise<Metrics> {
  if (!fs.existsSync(file)) throw new CliError(`--predictions: no such file '${file}'`);
  const examples: EvalExample[] = [], preds: string[] = [];
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text.trim() === '') continue;
    let obj: unknown;
    try { obj = JSON.parse(text); } catch (e) { throw new CliError(`${file}:${line}: malformed JSON: ${(e as Error).message}`); }
    try {
      const r = predictionRow(obj, task, `${file}:${line}`);
      examples.push(r.example); preds.push(r.prediction);
    } catch (e) { throw new CliError((e as Error).message); }
    if (limit && examples.length >= limit) break;
  }
  rl.close();
  if (examples.length === 0) throw new CliError(`${file}: no predictions`);
  return scoreTask(task, examples, preds);
}

export async function evalCommand(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['model', 'data', 'task', 'limit', 'max-tokens', 'predictions', 'root', 'out'], ['json']);
  if (!p.flags.has('task')) throw new CliError(`--task ${EVAL_TASKS.join('|')} is required`);
  const task = strFlag(p, 'task', 'vqa', EVAL_TASKS) as EvalTask;
  const limit = intFlag(p, 'limit', 0, 0);
  const json = p.flags.has('json');
  let metrics: Metrics;
  if (p.flags.has('predictions')) {
    if (p.flags.has('model')) throw new CliError('give --model with --data, or --predictions alone');
    metrics = await scorePredictionsFile(strFlag(p, 'predictions', ''), task, limit);
  } else {
    const model = strFlag(p, 'model', ''), data = strFlag(p, 'data', '');
    if (!model || !data) throw new CliError('--model DIR and --data FILE are required (or --predictions FILE)');
    if (!fs.existsSync(model)) throw new CliError(`--model: no such folder '${model}'`);
    if (!fs.existsSync(data)) throw new CliError(`--data: no such file '${data}'`);
    const root = p.flags.has('root') ? strFlag(p, 'root', '') : undefined;
    const progress = (_e: EvalExample, _a: string, i: number): void => { if (process.stderr.isTTY) process.stderr.write(`\r${i + 1} answered`); };
    const run = await runModelEval(model, data, task, {
      limit, maxTokens: intFlag(p, 'max-tokens', 32, 1, 4096), ...(root !== undefined ? { root } : {}), ...(json ? {} : { onAnswer: progress }),
    });
    if (!json && process.stderr.isTTY) process.stderr.write('\n');
    if (p.flags.has('out')) fs.writeFileSync(strFlag(p, 'out', ''), run.predictions.map((x) => JSON.stringify({ question_id: x.id, question: x.question, answer: x.answer, references: x.references })).join('\n') + '\n');
    metrics = run.metrics;
  }
  const res = { task, ...metrics };
  if (json) process.stdout.write(`${JSON.stringify(res)}\n`);
  else process.stdout.write(`${Object.entries(res).map(([k, v]) => `${k}: ${typeof v === 'number' ? +(v as number).toFixed(4) : JSON.stringify(v)}`).join('\n')}\n`);
}
