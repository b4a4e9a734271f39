// `chimera forward --model DIR --inputs IN.safetensors --out OUT.safetensors`: one inference
// pass of a model folder. IN holds the family's inputs (input_ids I64/I32 [B, T] for language
// models, pixel_values F32 [B, 3, H, W] for vision models) and optional ones (attention_mask);
// OUT gets its outputs in F32.

import { useBackend } from '../backends/index.ts';
import { noGrad } from '../engine/autograd.ts';
import * as F from '../engine/ops/index.ts';
import { fromData, type Tensor } from '../engine/tensor.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { loadModel } from '../models/load.ts';
import { CliError, parseArgs, strFlag } from './args.ts';

const INT_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64']);
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

function required(p: ReturnType<typeof parseArgs>, name: string): string {
  const v = strFlag(p, name, '');
  if (v === '') throw new CliError(`--${name} is required`);
  return v;
}

/** Reads one input: integer/bool dtypes as i32 (token ids, masks), float dtypes as f32. */
function readInput(f: SafetensorsFile, name: string, modelType: string, wanted: readonly string[]): Tensor {
  if (!f.has(name)) {
    throw new Error(`${f.path}: no tensor named '${name}' (a ${modelType} model takes ${wanted.join(', ')}; the file has ${f.keys().join(', ') || 'no tensors'})`);
  }
  const info = f.info(name);
  if (INT_DTYPES.has(info.dtype) || info.dtype === 'BOOL') return fromData(f.readI32(name), info.shape, 'i32');
  if (name.endsWith('_ids')) throw new Error(`${f.path}: tensor '${name}' has dtype ${info.dtype}; expected I64 or I32`);
  if (FLOAT_DTYPES.has(info.dtype)) return fromData(f.readF32(name), info.shape, 'f32');
  throw new Error(`${f.path}: tensor '${name}' has dtype ${info.dtype}; expected F32 (or I64/I32 for ids and masks)`);
}

export async function forward(argv: string[]): Promise<void> {
  const p = parseArgs(argv, ['model', 'inputs', 'out', 'backend'], ['json']);
  if (p.positionals.length) throw new CliError(`unexpected argument '${p.positionals[0]}'`);
  const modelDir = required(p, 'model');
  const inputsPath = required(p, 'inputs');
  const outPath = required(p, 'out');
  const be = useBackend(strFlag(p, 'backend', 'auto', ['auto', 'native', 'reference']) as 'auto');
  const m = await loadModel(modelDir);
  const f = SafetensorsFile.open(inputsPath);
  const inputs = new Map<string, Tensor>();
  try {
    // The family's inputs are required; other tensors in the file (attention_mask, ...) are optional inputs.
    const names = [...m.family.inputs, ...f.keys().filter((k) => !m.family.inputs.includes(k))];
    for (const name of names) inputs.set(name, readInput(f, name, m.modelType, m.family.inputs));
  } finally {
    f.close();
  }
  const t0 = performance.now();
  const outputs = noGrad(() => m.family.forward(m.params, m.config, inputs));
  const ms = performance.now() - t0;
  const tensors = new Map<string, TensorToWrite>();
  const shapes: Record<string, number[]> = {};
  for (const [name, t] of outputs) {
    const c = t.dtype === 'f32' ? F.contiguous(t) : F.cast(t, 'f32');
    tensors.set(name, { dtype: 'F32', shape: c.shape, data: c.data });
    shapes[name] = [...c.shape];
  }
  writeSafetensors(outPath, tensors);
  if (p.flags.has('json')) {
    process.stdout.write(`${JSON.stringify({ model_type: m.modelType, backend: be.name, out: outPath, outputs: shapes, forward_ms: ms })}\n`);
  } else {
    const list = Object.entries(shapes).map(([k, s]) => `${k} [${s.join(', ')}]`).join(', ');
    process.stdout.write(`${m.modelType} forward on ${be.name} in ${ms.toFixed(1)} ms: wrote ${list} to ${outPath}\n`);
  }
}
