// The tape: ops call `record` to attach a backward node to their output; `backward` walks the
// nodes in reverse topological order and accumulates gradients into leaves' `.grad`.
// Backward computations run with recording off (no higher-order gradients).

import { spendNode, Tensor, untracked, type GradNode } from './tensor.ts';
import { fmt, shapeEq } from './shape.ts';
// ops import this module too; the cycle is safe because both sides only call each other at run time.
import { clone, onesLike } from './ops/core.ts';
import { add, addInPlace } from './ops/elementwise.ts';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording any backward nodes. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op over these inputs must record a node. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Attaches a backward node to `out` when any input requires grad. `vjp` receives the output
 * gradient and returns one gradient (or null) per input, in order. `saved` are tensors the vjp
 * reads: they are kept alive (as shared handles) until the node runs or is dropped; the vjp
 * must read them through the handles passed to it.
 */
export function record(
  op: string,
  inputs: readonly Tensor[],
  out: Tensor,
  saved: readonly Tensor[],
  vjp: (g: Tensor, saved: Tensor[]) => (Tensor | null)[],
): Tensor {
  if (!needsGrad(...inputs)) return out;
  const handles = untracked(() => saved.map((t) => t.share()));
  const node: GradNode = { op, inputs, saved: handles, vjp: (g) => vjp(g, handles), refs: 1 };
  for (const t of inputs) if (t.node !== null) t.node.refs++;
  out.node = node;
  out.requiresGrad = true;
  return out;
}

/** Marks a tensor as a trainable leaf. */
export function param<T extends Tensor>(t: T): T {
  t.requiresGrad = true;
  return t;
}

/**
 * Backpropagates from `root` (a scalar unless `grad` is given). Leaf tensors with
 * requiresGrad accumulate into `.grad` (so repeated calls accumulate, as in PyTorch).
 * Nodes are released as they run; a graph can be walked once.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error('backward: the tensor does not require grad (no parameter took part, or it was computed under noGrad)');
  if (grad === undefined && root.size !== 1) throw new Error(`backward: root has shape ${fmt(root.shape)}; pass a gradient for non-scalar roots`);
  // Topological order by iterative DFS.
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0) {
      if (seen.has(t.id)) { stack.pop(); continue; }
      seen.add(t.id);
    }
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const c = inputs[i]!;
      if (c.requiresGrad && !seen.has(c.id)) stack.push([c, 0]);
    } else {
      order.push(t);
      stack.pop();
    }
  }
  const grads = new Map<number, Tensor>();
  untracked(() => {
    noGrad(() => {
      grads.set(root.id, grad ? grad.share() : onesLike(root));
      for (let idx = order.length - 1; idx >= 0; idx--) {
        const t = order[idx]!;
        const g = grads.get(t.id);
        if (g === undefined) continue;
        const node = t.node;
        if (node === null) {
          // Leaf: accumulate into .grad.
          grads.delete(t.id);
          if (!shapeEq(g.shape, t.shape)) throw new Error(`backward: gradient ${fmt(g.shape)} does not match leaf ${t.describe()}`);
          // .grad owns a dense buffer of its own, so later accumulation can be in place.
          if (t.grad === null) {
            t.grad = g.storage.refs === 1 && g.contiguous && g.offset === 0 ? g : clone(g);
            if (t.grad !== g) g.dispose();
          } else {
            addInPlace(t.grad, g);
            g.dispose();
          }
          continue;
        }
        if (node.vjp === null) throw new Error(`backward: the graph through '${node.op}' was already used or released; run forward again`);
        const gin = node.vjp(g);
        grads.delete(t.id);
        spendNode(node);
        // A vjp may return g itself or one tensor for several inputs: give each use its own handle.
        const used = new Set<Tensor>([g]);
        for (let k = 0; k < node.inputs.length; k++) {
          const inp = node.inputs[k]!;
          let gi = gin[k];
          if (gi === null || gi === undefined || !inp.requiresGrad) {
            if (gi && !used.has(gi)) { used.add(gi); gi.dispose(); }
            continue;
          }
          if (used.has(gi)) gi = gi.share();
          used.add(gi);
          if (!shapeEq(gi.shape, inp.shape)) throw new Error(`backward: '${node.op}' produced gradient ${fmt(gi.shape)} for input ${fmt(inp.shape)}`);
          const prev = grads.get(inp.id);
          if (prev === undefined) grads.set(inp.id, gi);
          else {
            grads.set(inp.id, add(prev, gi));
            prev.dispose();
            gi.dispose();
          }
        }
        g.dispose();
      }
    });
  });
  for (const g of grads.values()) g.dispose();
}
