// In-place AdamW and SGD steps (torch.optim semantics), computed in f64 per element.
// Optimizer state (m, v, buf) is rounded to f32 before it feeds the update, as PyTorch stores it.

import { checkLen, fail } from './util.ts';

/**
 * p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr * (m / bc1) / (sqrt(v / bc2) + eps).
 */
export function adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void {
  const K = 'adamw';
  const n = p.length;
  checkLen(K, 'g', g, n);
  checkLen(K, 'm', m, n);
  checkLen(K, 'v', v, n);
  if (!(bc1 > 0) || !(bc2 > 0)) fail(K, `bias corrections must be > 0, got bc1 ${bc1}, bc2 ${bc2}`);
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    let pi = p[i] * (1 - lr * weightDecay);
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    pi -= (lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + eps);
    p[i] = pi;
  }
}

/**
 * g' = g + wd*p; buf = first ? g' : momentum*buf + (1-dampening)*g';
 * step = nesterov ? g' + momentum*buf : buf (g' when momentum is 0); p -= lr*step.
 */
export function sgd(p: Float32Array, g: Float32Array, buf: Float32Array | null, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, first: boolean): void {
  const K = 'sgd';
  const n = p.length;
  checkLen(K, 'g', g, n);
  if (momentum !== 0) {
    if (!buf) fail(K, `momentum ${momentum} needs a momentum buffer`);
    checkLen(K, 'buf', buf, n);
  }
  for (let i = 0; i < n; i++) {
    const gi = g[i] + weightDecay * p[i];
    let step = gi;
    if (momentum !== 0 && buf) {
      buf[i] = first ? gi : momentum * buf[i] + (1 - dampening) * gi;
      step = nesterov ? gi + momentum * buf[i] : buf[i];
    }
    p[i] = p[i] - lr * step;
  }
}
