// Which parameters train: path globs, requiresGrad flags, and running frozen parts without a
// graph. Kept apart from model.ts so systems can import it without an import cycle.

import { isGradEnabled, noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import { keep, type Tensor } from '../../engine/tensor.ts';
import type { PreparedImage } from './system.ts';
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


const treeIds = new WeakMap<object, number>();
let nextTreeId = 1;

/**
 * A frozen branch's features, cached on each image as `pixels['feature:<key>:<tree id>']` so later
 * passes over the same PreparedImage (training epochs) skip the tower; the cache goes with the
 * image's other tensors. `fn(subset)` computes the rows of the given images in order, `rows(image)`
 * of them per image; only the images without a cached entry are computed. A trainable branch
 * (grad on and any leaf requiring it) is always recomputed.
 */
export function cachedFrozen(images: readonly PreparedImage[], key: string, tree: object, rows: (im: PreparedImage) => number, fn: (subset: readonly PreparedImage[]) => Tensor): Tensor {
  if (isGradEnabled() && [...flatten<Tensor>(tree).values()].some((t) => t.requiresGrad)) return fn(images);
  let id = treeIds.get(tree);
  if (id === undefined) treeIds.set(tree, (id = nextTreeId++));
  const name = `feature:${key}:${id}`;
  const cached = (im: PreparedImage): Tensor | undefined => {
    const t = im.pixels[name];
    return t !== undefined && !t.isDisposed ? t : undefined;
  };
  const missing = images.filter((im) => cached(im) === undefined);
  if (missing.length > 0) {
    const out = noGrad(() => fn(missing));
    let at = 0;
    for (const im of missing) {
      const n = rows(im);
      im.pixels[name] = keep(F.contiguous(F.slice(out, 0, at, at + n)));
      at += n;
    }
    if (missing.length === images.length) return out;
    out.dispose();
  }
  const parts = images.map((im) => cached(im)!);
  return parts.length === 1 ? parts[0]! : F.concat(parts, 0);
}

/**
 * Per-layer auxiliary losses collected by decoder hooks (each layer runs in its own tidy scope,
 * so they are kept here), reduced once per pass: `reduce` returns coef · (sum | mean) and frees them.
 */
export class LayerLosses {
  private readonly items: Tensor[] = [];

  add(t: Tensor): void {
    this.items.push(keep(t));
  }

  reduce(how: 'sum' | 'mean', coef: number): Tensor | null {
    if (this.items.length === 0) return null;
    const all = F.stack(this.items, 0); // [layers]
    const out = F.mul(how === 'sum' ? F.sum(all) : F.mean(all), coef);
    for (const t of this.items.splice(0)) t.dispose();
    return out;
  }
}
