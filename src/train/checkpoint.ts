// Training checkpoints, written atomically as a whole. Layout under an output folder ROOT:
//   ROOT/checkpoints/step-00000120/   a model folder (config.json, model.safetensors, tokenizer
//                                      files: loadModel and every command accept it) plus
//                                      optimizer.safetensors (AdamW moments, F32 [n] each),
//                                      trainer_state.json (stage, step, RNG, data position, ...)
//                                      and manifest.json (size + sha256 of every file)
//   ROOT/latest                        "checkpoints/step-00000120\n", the commit pointer
// A save writes everything into checkpoints/.tmp-step-N-<pid>-<hex>/, fsyncs each file and the
// folder, renames the folder into place, fsyncs checkpoints/, then replaces `latest` atomically;
// older checkpoints are removed only after that (renamed to .trash-* first, so a half-deleted
// folder never looks like a checkpoint). A kill -9 at any point leaves `latest` naming a complete,
// verifiable checkpoint (or no checkpoint at all before the first save completes).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile, writeFileAtomic, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import { saveModel } from '../models/load.ts';

export const CHECKPOINT_VERSION = 1;
const DIR_RE = /^step-(\d{8,})$/;
const TEMP_RE = /^\.(tmp|trash)-.*-(\d+)-[0-9a-f]+$/;

export interface CheckpointPayload {
  /** Global optimizer step the checkpoint was taken after (names the folder). */
  step: number;
  /** model_type of config.json (e.g. 'chimera_vlm'). */
  modelType: string;
  configJson: Record<string, unknown>;
  /** The model's parameter tree (dotted paths = keys). */
  params: unknown;
  /** Extra files copied into the model folder (tokenizer.json, tokenizer_config.json, ...). */
  files?: ReadonlyMap<string, Uint8Array>;
  /** Optimizer state by name (f32 arrays, stored as F32 [n]). */
  optimizer: ReadonlyMap<string, Float32Array>;
  /** Plain JSON trainer state (stage, step, RNG, data position, ...). */
  state: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  dir: string;
  step: number;
  state: Record<string, unknown>;
  optimizer: Map<string, Float32Array>;
  /** Problems met on the way (a `latest` that named a broken folder, ...). */
  warnings: string[];
}

export class CheckpointError extends Error {}

function stepName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`checkpoint step must be a non-negative integer, got ${step}`);
  return `step-${String(step).padStart(8, '0')}`;
}

function rand(): string {
  return Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0');
}

function fsyncPath(p: string): void {
  let fd: number;
  try { fd = fs.openSync(p, 'r'); } catch { return; }
  try { fs.fsyncSync(fd); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally { fs.closeSync(fd); }
}

function writeFileSynced(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    for (let done = 0; done < bytes.length;) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
  } finally { fs.closeSync(fd); }
}

function sha256File(file: string): { bytes: number; sha256: string } {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally { fs.closeSync(fd); }
  return { bytes, sha256: h.digest('hex') };
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Removes temp and trash folders (and temp files) left in ROOT/checkpoints and ROOT by dead writers; returns their names. */
export function cleanCheckpointTemps(root: string): string[] {
  const removed: string[] = [];
  for (const d of [path.join(root, 'checkpoints'), root]) {
    let names: string[];
    try { names = fs.readdirSync(d); } catch { continue; }
    for (const f of names) {
      const m = TEMP_RE.exec(f) ?? /\.tmp-(\d+)-[0-9a-f]+$/.exec(f);
      if (!m) continue;
      const pid = Number(m[m.length === 3 ? 2 : 1]);
      if (pidAlive(pid)) continue;
      try { fs.rmSync(path.join(d, f), { recursive: true, force: true }); removed.push(f); } catch { /* raced */ }
    }
  }
  return removed;
}

/** Complete checkpoint folders under ROOT/checkpoints, newest first. */
export function listCheckpoints(root: string): { dir: string; step: number }[] {
  let names: string[];
  try { names = fs.readdirSync(path.join(root, 'checkpoints')); } catch { return []; }
  return names.flatMap((f) => {
    const m = DIR_RE.exec(f);
    return m ? [{ dir: path.join(root, 'checkpoints', f), step: Number(m[1]) }] : [];
  }).sort((a, b) => b.step - a.step);
}

/**
 * Writes a checkpoint atomically (see the file comment) and keeps the newest `keepLast`.
 * Returns its folder. The previous checkpoint stays valid until this one is complete.
 */
export function saveCheckpoint(root: string, p: CheckpointPayload, opts: { keepLast?: number } = {}): string {
  const keepLast = opts.keepLast ?? 2;
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) throw new CheckpointError(`keepLast must be an integer >= 1, got ${keepLast}`);
  const ckDir = path.join(root, 'checkpoints');
  fs.mkdirSync(ckDir, { recursive: true });
  const name = stepName(p.step);
  const tmp = path.join(ckDir, `.tmp-${name}-${process.pid}-${rand()}`);
  fs.mkdirSync(tmp);
  try {
    saveModel(tmp, p.modelType, p.configJson, p.params);
    for (const [f, bytes] of p.files ?? []) {
      if (f.includes('/') || f.includes('\\') || f === 'config.json' || f.startsWith('model') || f === 'manifest.json' || f === 'trainer_state.json' || f === 'optimizer.safetensors') throw new CheckpointError(`checkpoint extra file name '${f}' is not allowed`);
      writeFileSynced(path.join(tmp, f), bytes);
    }
    const opt = new Map<string, TensorToWrite>();
    for (const [k, v] of p.optimizer) opt.set(k, { dtype: 'F32', shape: [v.length], data: v });
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), opt, { format: 'chimera-optimizer' });
    writeFileSynced(path.join(tmp, 'trainer_state.json'), Buffer.from(`${JSON.stringify({ version: CHECKPOINT_VERSION, step: p.step, ...p.state })}\n`));
    const files: Record<string, { bytes: number; sha256: string }> = {};
    for (const f of fs.readdirSync(tmp).sort()) files[f] = sha256File(path.join(tmp, f));
    writeFileSynced(path.join(tmp, 'manifest.json'), Buffer.from(`${JSON.stringify({ version: CHECKPOINT_VERSION, step: p.step, files }, null, 1)}\n`));
    fsyncPath(tmp);
    const final = path.join(ckDir, name);
    if (fs.existsSync(final)) {
      // Same step saved again (a stage end that is also a save point): swap, the old one to trash.
      const trash = path.join(ckDir, `.trash-${name}-${process.pid}-${rand()}`);
      fs.renameSync(final, trash);
      fs.renameSync(tmp, final);
      fs.rmSync(trash, { recursive: true, force: true });
    } else fs.renameSync(tmp, final);
    fsyncPath(ckDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const rel = `checkpoints/${name}\n`;
  writeFileAtomic(path.join(root, 'latest'), (fd) => { fs.writeSync(fd, rel); });
  for (const old of listCheckpoints(root).slice(keepLast)) {
    const trash = path.join(ckDir, `.trash-${path.basename(old.dir)}-${process.pid}-${rand()}`);
    try { fs.renameSync(old.dir, trash); fs.rmSync(trash, { recursive: true, force: true }); } catch { /* best effort */ }
  }
  return path.join(ckDir, name);
}

/** Checks a checkpoint folder against its manifest (sizes and sha256); throws naming the file. */
export function verifyCheckpoint(dir: string): { step: number } {
  const mf = path.join(dir, 'manifest.json');
  let man: { version?: unknown; step?: unknown; files?: Record<string, { bytes: number; sha256: string }> };
  try { man = JSON.parse(fs.readFileSync(mf, 'utf8')); } catch (e) { throw new CheckpointError(`${mf}: cannot read the manifest: ${(e as Error).message}`); }
  if (man.version !== CHECKPOINT_VERSION) throw new CheckpointError(`${mf}: checkpoint version ${JSON.stringify(man.version)}; this Chimera reads version ${CHECKPOINT_VERSION}`);
  if (typeof man.step !== 'number' || man.files === undefined || typeof man.files !== 'object') throw new CheckpointError(`${mf}: malformed manifest`);
  for (const need of ['config.json', 'optimizer.safetensors', 'trainer_state.json']) if (!Object.hasOwn(man.files, need)) throw new CheckpointError(`${mf}: lists no ${need}`);
  for (const [f, want] of Object.entries(man.files)) {
    const p = path.join(dir, f);
    let got: { bytes: number; sha256: string };
    try { got = sha256File(p); } catch (e) { throw new CheckpointError(`${p}: missing or unreadable: ${(e as Error).message}`); }
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256) throw new CheckpointError(`${p}: does not match the manifest (${got.bytes} bytes, sha256 ${got.sha256.slice(0, 12)}…; expected ${want.bytes} bytes, ${String(want.sha256).slice(0, 12)}…)`);
  }
  return { step: man.step };
}

/** Reads a verified checkpoint's trainer state and optimizer tensors. */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  const { step } = verifyCheckpoint(dir);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as Record<string, unknown>;
  const optimizer = new Map<string, Float32Array>();
  const f = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  try {
    for (const k of f.keys()) optimizer.set(k, f.readF32(k));
  } finally { f.close(); }
  return { dir, step, state, optimizer, warnings: [] };
}

/**
 * The checkpoint `latest` names, verified; if it is missing or broken, the newest folder that
 * verifies (with a warning). null when ROOT holds no usable checkpoint.
 */
export function loadLatestCheckpoint(root: string): LoadedCheckpoint | null {
  const warnings: string[] = [];
  const tried = new Set<string>();
  const pointer = path.join(root, 'latest');
  if (fs.existsSync(pointer)) {
    const rel = fs.readFileSync(pointer, 'utf8').trim();
    const dir = path.resolve(root, rel);
    tried.add(dir);
    if (!DIR_RE.test(path.basename(rel)) || path.dirname(rel) !== 'checkpoints') warnings.push(`${pointer}: names '${rel}', not a checkpoint folder`);
    else {
      try { return { ...readCheckpoint(dir), warnings }; } catch (e) { warnings.push(`${pointer} names a checkpoint that does not verify: ${(e as Error).message}`); }
    }
  }
  for (const c of listCheckpoints(root)) {
    if (tried.has(c.dir)) continue;
    try {
      const l = readCheckpoint(c.dir);
      if (fs.existsSync(pointer)) warnings.push(`using ${c.dir} instead`);
      return { ...l, warnings };
    } catch (e) { warnings.push((e as Error).message); }
  }
  return null;
}

/** Copies a finished model folder (config, weights, tokenizer) of a checkpoint to `dest`, atomically replacing it. */
export function exportModel(checkpointDir: string, dest: string): void {
  const parent = path.dirname(path.resolve(dest));
  fs.mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.tmp-${path.basename(dest)}-${process.pid}-${rand()}`);
  fs.mkdirSync(tmp);
  try {
    for (const f of fs.readdirSync(checkpointDir)) {
      if (f === 'optimizer.safetensors' || f === 'trainer_state.json' || f === 'manifest.json') continue;
      writeFileSynced(path.join(tmp, f), fs.readFileSync(path.join(checkpointDir, f)));
    }
    fsyncPath(tmp);
    if (fs.existsSync(dest)) {
      const trash = path.join(parent, `.trash-${path.basename(dest)}-${process.pid}-${rand()}`);
      fs.renameSync(dest, trash);
      fs.renameSync(tmp, dest);
      fs.rmSync(trash, { recursive: true, force: true });
    } else fs.renameSync(tmp, dest);
    fsyncPath(parent);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
