// The playground's static files (web/ at the package root), found relative to this module so the
// same lookup works from src/ and from dist/src/. A fixed allow-list of names: no path from the
// request ever reaches the file system.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** The folder holding web/index.html: the package root's web/, searched upward from this file. */
export function findWebDir(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const cand = path.join(dir, 'web');
    if (fs.existsSync(path.join(cand, 'index.html'))) return cand;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** Loads the allow-listed files once. */
export function loadWebFiles(dir: string | null): Map<string, StaticFile> {
  const out = new Map<string, StaticFile>();
  if (dir === null) return out;
  for (const [name, type] of Object.entries(WEB_FILES)) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) out.set(name, { body: fs.readFileSync(p), type });
  }
  return out;
}
