// Optimizers and schedules against torch.optim (fixtures from scripts/gen_golden_optim.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nativeBackend, useBackend, type BackendName } from '../src/backends/index.ts';
import { backward, param } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { tidy } from '../src/engine/tensor.ts';
import { AdamW, clipGradNorm, SGD, type Optimizer } from '../src/train/optim.ts';
import { cosineWithWarmup } from '../src/train/schedule.ts';

interface Golden {
  p0: number[]; grads: number[][];
  cases: Record<string, { kind: 'adamw' | 'sgd'; opts: Record<string, unknown>; traj: number[][] }>;
  clip: { a: number[]; b: number[]; norm: number; a_clipped: number[]; b_clipped: number[] };
}
const golden = JSON.parse(readFileSync(new URL('../../test/golden/optim.json', import.meta.url), 'utf8')) as Golden;
const backends: BackendName[] = nativeBackend() ? ['reference', 'native'] : ['reference'];

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(err <= tol * (1 + Math.abs(want[i]!)), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

for (const be of backends) {
  for (const [name, c] of Object.entries(golden.cases)) {
    test(`${name} matches torch.optim on ${be}`, () => {
      useBackend(be);
      const p = param(F.tensor(golden.p0));
      const params = new Map([['p', p]]);
      const opt: Optimizer = c.kind === 'adamw' ? new AdamW(params, c.opts) : new SGD(params, c.opts);
      golden.grads.forEach((g, i) => {
        p.grad = F.tensor(g);
        opt.step();
        close(p.data, c.traj[i]!, 2e-6, `${name} step ${i + 1}`);
      });
    });
  }

  test(`clipGradNorm matches torch.nn.utils.clip_grad_norm_ on ${be}`, () => {
    useBackend(be);
    const a = param(F.zeros([5, 3])), b = param(F.zeros([4]));
    a.grad = F.tensor(golden.clip.a, [5, 3]);
    b.grad = F.tensor(golden.clip.b);
    const norm = clipGradNorm(new Map([['a', a], ['b', b]]), 1.0);
    assert.ok(Math.abs(norm - golden.clip.norm) < 1e-5 * golden.clip.norm);
    close(a.grad.data, golden.clip.a_clipped, 1e-6, 'a');
    close(b.grad.data, golden.clip.b_clipped, 1e-6, 'b');
  });

  test(`gradient accumulation over two half batches equals one full batch on ${be}`, () => {
    useBackend(be);
    const rng = new Rng(3);
    const w = param(F.randn([6, 4], { rng }));
    const x = F.randn([8, 6], { rng });
    const full = tidy(() => {
      backward(F.mean(F.square(F.matmul(x, w))));
      return F.clone(w.grad!);
    });
    w.grad = null;
    for (const half of [F.slice(x, 0, 0, 4), F.slice(x, 0, 4, 8)]) {
      tidy(() => backward(F.scale(F.mean(F.square(F.matmul(half, w))), 0.5)));
    }
    close(w.grad!.data, full.data, 1e-5, 'accumulated grad');
  });
}

test('cosine schedule with linear warmup', () => {
  const f = cosineWithWarmup({ lr: 1, warmupSteps: 10, totalSteps: 110, minLr: 0.1 });
  assert.equal(f(0), 0.1);
  assert.equal(f(9), 1);
  assert.ok(Math.abs(f(10) - 1) < 1e-12);
  assert.ok(Math.abs(f(60) - 0.55) < 1e-12, 'halfway through the decay');
  assert.ok(Math.abs(f(110) - 0.1) < 1e-12);
  assert.throws(() => cosineWithWarmup({ lr: 1, warmupSteps: 5, totalSteps: 2 }), /warmupSteps/);
});
