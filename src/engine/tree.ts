// Parameter trees: nested plain objects and arrays whose leaves are tensors. A leaf's path,
// dot-joined ("model.layers.0.self_attn.q_proj.weight"), equals its checkpoint key.

import { Tensor } from './tensor.ts';

export type Tree<L = Tensor> = L | null | readonly Tree<L>[] | { readonly [k: string]: Tree<L> };

/** Leaves in insertion order, keyed by dotted path. Null leaves (absent optional weights) are skipped. */
export function flatten<L = Tensor>(tree: unknown, prefix = '', isLeaf: (x: unknown) => boolean = (x) => x instanceof Tensor): Map<string, L> {
  const out = new Map<string, L>();
  const walk = (node: unknown, path: string): void => {
    if (node === null || node === undefined) return;
    if (isLeaf(node)) {
      if (out.has(path)) throw new Error(`flatten: duplicate path '${path}'`);
      out.set(path, node as L);
      return;
    }
    if (Array.isArray(node)) {
      node.forEach((c, i) => walk(c, path ? `${path}.${i}` : String(i)));
      return;
    }
    if (typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k);
      return;
    }
    throw new Error(`flatten: unexpected ${typeof node} at '${path}'`);
  };
  walk(tree, prefix);
  return out;
}

/** Same structure with each leaf mapped (null leaves stay null). */
export function mapTree<A, B>(tree: Tree<A>, fn: (leaf: A, path: string) => B, isLeaf: (x: unknown) => boolean = (x) => x instanceof Tensor, prefix = ''): Tree<B> {
  if (tree === null || tree === undefined) return null;
  if (isLeaf(tree)) return fn(tree as A, prefix);
  if (Array.isArray(tree)) return tree.map((c, i) => mapTree(c as Tree<A>, fn, isLeaf, prefix ? `${prefix}.${i}` : String(i)));
  const out: Record<string, Tree<B>> = {};
  for (const [k, v] of Object.entries(tree as Record<string, Tree<A>>)) out[k] = mapTree(v, fn, isLeaf, prefix ? `${prefix}.${k}` : k);
  return out;
}

/**
 * Rebuilds a tree from flat entries. Numeric path segments become array indices. Throws on a
 * path that is both a leaf and a branch.
 */
export function unflatten<L>(entries: Iterable<[string, L]>): Tree<L> {
  const root: Record<string, unknown> = {};
  for (const [path, leaf] of entries) {
    const parts = path.split('.');
    let node: Record<string, unknown> = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i]!;
      const child = node[p];
      if (child === undefined) node[p] = {};
      else if (typeof child !== 'object' || child === null || child instanceof Tensor) throw new Error(`unflatten: '${parts.slice(0, i + 1).join('.')}' is both a leaf and a branch`);
      node = node[p] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1]!;
    if (last in node) throw new Error(`unflatten: duplicate path '${path}'`);
    node[last] = leaf;
  }
  return arrayify(root) as Tree<L>;
}

function arrayify(node: unknown): unknown {
  if (node === null || typeof node !== 'object' || node instanceof Tensor || ArrayBuffer.isView(node)) return node;
  const obj = node as Record<string, unknown>;
  const keys = Object.keys(obj);
  for (const k of keys) obj[k] = arrayify(obj[k]);
  if (keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map((k) => obj[k]);
  return obj;
}

/** All tensors of a tree with requiresGrad set. */
export function trainable(tree: unknown): Map<string, Tensor> {
  return new Map([...flatten(tree)].filter(([, t]) => t.requiresGrad));
}
