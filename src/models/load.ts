// Model folders: config.json + model.safetensors (or a sharded index), Hugging Face layout.
// loadModel builds the family's parameter tree from config.json and fills every leaf from the
// checkpoint, one tensor at a time; any mismatch between tree and checkpoint is an error that
// names the file and the keys. saveModel writes the same layout atomically, file by file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromF32 } from '../engine/dtype.ts';
import { keep, type Tensor, untracked } from '../engine/tensor.ts';
import { flatten } from '../engine/tree.ts';
import { type Checkpoint, openCheckpoint, writeFileAtomic, writeSafetensors, writeSharded, type TensorToWrite } from '../io/safetensors.ts';
import { familyFor, type ModelFamily } from './registry.ts';

export interface LoadedModel<C = unknown, P = unknown> {
  dir: string;
  modelType: string;
  family: ModelFamily<C, P>;
  config: C;
  /** config.json as parsed (kept so a save writes back the same fields). */
  configJson: Record<string, unknown>;
  params: P;
}

export interface LoadOptions {
  /** Mark every parameter requiresGrad (default false: inference). */
  trainable?: boolean;
}

export interface SaveOptions {
  /** A checkpoint larger than this is sharded into files of at most this size (default 2 GiB). */
  maxShardBytes?: number;
}

const MAX_CONFIG_BYTES = 16 << 20;
const DEFAULT_SHARD_BYTES = 2 * 1024 ** 3;
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const LIST_SHOWN = 5;

/** Names of `keys` for a one-line message: the first few, then the count of the rest. */
function listKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, LIST_SHOWN).map((k) => `'${k}'`).join(', ');
  return keys.length > LIST_SHOWN ? `${shown} and ${keys.length - LIST_SHOWN} more` : shown;
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Reads and parses `dir/config.json`; errors name the file. */
export function readConfigJson(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`model directory '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`'${dir}' is not a directory (a model folder holds config.json and model.safetensors)`);
  let text: string;
  try {
    const fst = fs.statSync(file);
    if (!fst.isFile()) throw new Error('not a regular file');
    if (fst.size > MAX_CONFIG_BYTES) throw new Error(`${fst.size} bytes, over the limit of ${MAX_CONFIG_BYTES}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: missing (a model folder holds config.json and model.safetensors)`);
    throw new Error(`${file}: cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

function modelTypeOf(json: Record<string, unknown>, file: string): string {
  const t = Object.hasOwn(json, 'model_type') ? json['model_type'] : undefined;
  if (typeof t !== 'string' || t === '') throw new Error(`${file}: 'model_type' ${t === undefined ? 'is missing' : `must be a string, got ${JSON.stringify(t)}`}`);
  return t;
}

/** Tensors of a parameter tree (or a name -> tensor Map) by checkpoint key. */
function leavesOf(params: unknown): Map<string, Tensor> {
  return params instanceof Map ? (params as Map<string, Tensor>) : flatten<Tensor>(params);
}

/**
 * Fills every leaf of `params` from `ckpt`. Leaves sharing storage with one already filled
 * (tied weights) may be absent. Checks every key, dtype and shape before reading any data.
 */
export function fillParams(params: unknown, ckpt: Checkpoint, ignoreKeys: readonly RegExp[] = [], what = 'model'): void {
  const leaves = leavesOf(params);
  const present = new Set(ckpt.keys());
  const filledStorages = new Set<unknown>();
  for (const [k, t] of leaves) if (present.has(k)) filledStorages.add(t.storage);
  const missing = [...leaves].filter(([k, t]) => !present.has(k) && !filledStorages.has(t.storage)).map(([k]) => k);
  const unexpected = [...present].filter((k) => !leaves.has(k) && !ignoreKeys.some((re) => re.test(k)));
  if (missing.length || unexpected.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} missing key${missing.length > 1 ? 's' : ''} (${listKeys(missing)})`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected key${unexpected.length > 1 ? 's' : ''} (${listKeys(unexpected)})`);
    throw new Error(`${ckpt.path}: checkpoint does not match the ${what}: ${parts.join('; ')}`);
  }
  const todo: [string, Tensor][] = [];
  for (const [k, t] of leaves) {
    if (!present.has(k)) continue;
    const info = ckpt.info(k);
    if (!FLOAT_DTYPES.has(info.dtype)) throw new Error(`${info.file}: tensor '${k}' has dtype ${info.dtype}; a parameter needs F32, F16, BF16 or F64`);
    if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(`${info.file}: tensor '${k}' has shape ${fmtShape(info.shape)} but the ${what} expects ${fmtShape(t.shape)}`);
    }
    if (!t.contiguous || t.offset !== 0 || t.buffer().length !== t.size) throw new Error(`loadModel: parameter '${k}' is not a dense tensor (${t.describe()})`);
    todo.push([k, t]);
  }
  for (const [k, t] of todo) {
    const v = ckpt.readF32(k); // one tensor at a time: peak memory is params + the largest tensor
    const dst = t.buffer();
    if (t.dtype === 'f32') (dst as Float32Array).set(v);
    else dst.set(fromF32(t.dtype, v) as never);
  }
}

/**
 * Loads a Hugging Face model folder. Parameters are kept out of tidy scopes and, unless
 * `trainable`, do not require grad. The caller owns them (dispose the leaves to free them).
 */
export async function loadModel<C = unknown, P = unknown>(dir: string, opts: LoadOptions = {}): Promise<LoadedModel<C, P>> {
  const configJson = readConfigJson(dir);
  const configFile = path.join(dir, 'config.json');
  const modelType = modelTypeOf(configJson, configFile);
  let family: ModelFamily<C, P>;
  try {
    family = (await familyFor(modelType)) as unknown as ModelFamily<C, P>;
  } catch (e) {
    throw new Error(`${configFile}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const config = family.parseConfig(configJson, configFile);
  // Open the checkpoint before allocating, so a missing/pickle/corrupt file fails fast.
  const ckpt = openCheckpoint(dir);
  let params: P | null = null;
  try {
    params = untracked(() => family.init(config, null));
    const keyOf = family.checkpointKey;
    const byKey = keyOf === undefined ? params : new Map([...leavesOf(params)].map(([k, t]) => [keyOf.call(family, config, k), t] as [string, Tensor]));
    fillParams(byKey, ckpt, family.ignoreKeys ?? [], `${modelType} model described by ${configFile}`);
    for (const t of leavesOf(params).values()) {
      keep(t);
      t.requiresGrad = opts.trainable === true;
    }
    return { dir, modelType, family, config, configJson, params };
  } catch (e) {
    if (params !== null) for (const t of leavesOf(params).values()) t.dispose();
    throw e;
  } finally {
    ckpt.close();
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const bytes = Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
  writeFileAtomic(file, (fd) => {
    for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  });
}

/** Dense little-endian bytes of a tensor for the writer (copies only non-dense views). */
function toWrite(key: string, t: Tensor): TensorToWrite {
  if (t.isDisposed) throw new Error(`saveModel: parameter '${key}' was disposed`);
  const buf = t.buffer();
  if (t.contiguous && t.offset === 0 && buf.length === t.size) return { dtype: t.dtype, shape: t.shape, data: buf };
  if (t.contiguous) return { dtype: t.dtype, shape: t.shape, data: buf.subarray(t.offset, t.offset + t.size) };
  throw new Error(`saveModel: parameter '${key}' is a strided view (${t.describe()}); save dense tensors`);
}

/**
 * Writes `dir/config.json` and the weights (model.safetensors, or shards + index above
 * maxShardBytes), each file atomically; weights first, config last. Tied leaves (one storage
 * under several keys) are written once, under the first key. Stale weight files of the other
 * layout are removed.
 */
export function saveModel(dir: string, modelType: string | ModelFamily, configJson: Record<string, unknown>, params: unknown, opts: SaveOptions = {}): void {
  const type = typeof modelType === 'string' ? modelType : modelType.modelType;
  const given = Object.hasOwn(configJson, 'model_type') ? configJson['model_type'] : undefined;
  if (given !== undefined && given !== type) throw new Error(`saveModel: config.json has model_type ${JSON.stringify(given)} but the model is '${type}'`);
  const config = { ...configJson, model_type: given ?? type };
  const tensors = new Map<string, TensorToWrite>();
  const seen = new Set<unknown>();
  let total = 0;
  for (const [k, t] of leavesOf(params)) {
    if (seen.has(t.storage)) continue;
    seen.add(t.storage);
    const w = toWrite(k, t);
    tensors.set(k, w);
    total += w.data.byteLength;
  }
  fs.mkdirSync(dir, { recursive: true });
  const maxShard = opts.maxShardBytes ?? DEFAULT_SHARD_BYTES;
  const metadata = { format: 'pt' };
  if (total > maxShard) {
    writeSharded(dir, tensors, maxShard, metadata);
  } else {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, metadata);
    for (const f of fs.readdirSync(dir)) {
      if (f === 'model.safetensors.index.json' || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)) fs.rmSync(path.join(dir, f), { force: true });
    }
  }
  writeJsonAtomic(path.join(dir, 'config.json'), config);
}
