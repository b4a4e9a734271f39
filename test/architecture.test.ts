// The layering is enforced: engine <- backends; engine <- nn <- vision/bridges <- models <-
// train/serve <- cli; io and data depend only on engine. Walks every import in src/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const src = resolve(new URL('../../src', import.meta.url).pathname);

/** Layers each top-level folder may import from (besides itself). */
const allowed: Record<string, string[]> = {
  engine: [],
  backends: ['engine'],
  io: ['engine'],
  data: ['engine', 'io'],
  nn: ['engine'],
  vision: ['engine', 'nn', 'io'],
  bridges: ['engine', 'nn', 'vision', 'io'],
  models: ['engine', 'nn', 'vision', 'bridges', 'io'],
  train: ['engine', 'nn', 'vision', 'bridges', 'models', 'io', 'data'],
  serve: ['engine', 'nn', 'vision', 'bridges', 'models', 'io', 'data', 'backends', 'train'],
  eval: ['engine', 'io', 'data', 'models', 'vision'],
  cli: ['engine', 'nn', 'vision', 'bridges', 'models', 'io', 'data', 'backends', 'train', 'serve', 'eval'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('imports respect the layer order', () => {
  const violations: string[] = [];
  for (const f of files(src)) {
    const layer = relative(src, f).split('/')[0]!;
    if (layer.endsWith('.ts')) continue; // src/index.ts re-exports everything
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      const target = relative(src, resolve(dirname(f), m[1]!)).split('/')[0]!;
      if (target === layer || target.endsWith('.ts')) continue;
      if (!(allowed[layer] ?? []).includes(target)) violations.push(`${relative(src, f)} imports ${m[1]} (${layer} -> ${target})`);
    }
  }
  assert.deepEqual(violations, []);
});
