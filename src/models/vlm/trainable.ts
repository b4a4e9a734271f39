// Which parameters train: path globs, requiresGrad flags, and running frozen parts without a
// graph. Kept apart from model.ts so systems can import it without an import cycle.

import { isGradEnabled, noGrad } from '../../engine/autograd.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';

/** Label value the loss skips. */
export const IGNORE_INDEX = -100;

/** A glob over dotted paths: '*' matches within one segment, '**' across; a glob also matches everything under the path. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.split('**').map((part) => part.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*')).join('.*');
  return new RegExp(`^${body}(\\..*)?$`);
}

/** Sets requiresGrad on exactly the leaves matched by `globs`; returns the trainable paths. */
export function setTrainable(params: unknown, globs: readonly string[]): string[] {
  const res = globs.map(globToRegExp);
  const on: string[] = [];
  for (const [path, t] of flatten<Tensor>(params)) {
    t.requiresGrad = res.some((re) => re.test(path));
    if (t.requiresGrad) on.push(path);
  }
  return on;
}

/** Runs fn without a graph when no leaf of `tree` is trainable (frozen encoders). */
export function runFrozen<T>(tree: unknown, fn: () => T): T {
  if (!isGradEnabled()) return fn();
  for (const t of flatten<Tensor>(tree).values()) if (t.requiresGrad) return fn();
  return noGrad(fn);
}

