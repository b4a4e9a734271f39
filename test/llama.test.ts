// LLaMA family: golden parity with a hand-written HF-semantics torch module, rotary tables,
// KV-cache decoding vs the full pass, batching and left padding, gradients, and clear errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { nativeBackend, useBackend, type BackendName } from '../src/backends/index.ts';
import { backward, noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, liveBuffers, tidy, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import { ropeInvFreq } from '../src/nn/rope.ts';
import { family, initLlama, llamaEmbed, llamaForward, LlamaModel, parseLlamaConfig, type LlamaConfig, type LlamaParams } from '../src/models/llama.ts';
import { loadModel } from '../src/models/load.ts';
import { allclose } from './util.ts';

const backends: BackendName[] = nativeBackend() ? ['reference', 'native'] : ['reference'];
const golden = new URL('../../test/golden/models/', import.meta.url).pathname;

function baseJson(over: Record<string, unknown> = {}): Record<string, unknown> {
  const json: Record<string, unknown> = {
    model_type: 'llama', vocab_size: 50, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 40, rms_norm_eps: 1e-6,
    initializer_range: 0.2, hidden_act: 'silu', ...over,
  };
  for (const k of Object.keys(json)) if (json[k] === undefined) delete json[k]; // undefined = absent
  return json;
}

function model(over: Record<string, unknown> = {}, seed = 1): { cfg: LlamaConfig; p: LlamaParams } {
  const cfg = parseLlamaConfig(baseJson(over), 'test config');
  const p = initLlama(cfg, new Rng(seed));
  // Non-trivial norm weights so their application is exercised.
  const r = new Rng(seed + 100);
  for (const [k, t] of flatten(p)) if (k.endsWith('norm.weight')) for (let i = 0; i < t.size; i++) t.data[i] = 1 + 0.2 * (r.uniform() - 0.5);
  return { cfg, p };
}

function ids(rows: number[][]): Tensor {
  return fromData(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], 'i32');
}

function randIds(rng: Rng, B: number, T: number, V: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(V)));
}

/** Values of x[b, t0:t1, :] (x [B, T, V]). */
function rows(x: Tensor, b: number, t0: number, t1: number): Float32Array {
  const [, T, V] = x.shape as [number, number, number];
  const d = F.denseData(x);
  assert.ok(t1 <= T);
  return d.slice((b * T + t0) * V, (b * T + t1) * V);
}

function full(p: LlamaParams, cfg: LlamaConfig, toks: number[][], mask?: number[][]): Tensor {
  return noGrad(() => llamaForward(p, cfg, ids(toks), mask ? { attentionMask: fromData(Uint8Array.from(mask.flat()), [mask.length, mask[0]!.length], 'bool') } : {}));
}

for (const be of backends) {
  describe(`llama on ${be}`, () => {
    test('golden parity with the HF-semantics torch module', async () => {
      useBackend(be);
      for (const name of ['llama_gqa', 'llama_tied_llama3', 'llama_linear']) {
        const dir = golden + name;
        const m = await loadModel<LlamaConfig, LlamaParams>(dir);
        const inp = SafetensorsFile.open(`${dir}/inputs.safetensors`), out = SafetensorsFile.open(`${dir}/outputs.safetensors`);
        const input = fromData(inp.readI32('input_ids'), inp.info('input_ids').shape, 'i32');
        const want = out.readF32('logits');
        inp.close();
        out.close();
        const got = noGrad(() => m.family.forward(m.params, m.config, new Map([['input_ids', input]]))).get('logits')!;
        assert.deepEqual(got.shape, [2, 7, m.config.vocabSize]);
        allclose(F.denseData(got), want, { rtol: 1e-4, atol: 1e-5, shape: got.shape, what: `${name} logits` });
        // The tied fixture stores no lm_head; the untied ones do.
        assert.equal(m.params.lm_head === null, name === 'llama_tied_llama3');
        for (const t of flatten(m.params).values()) t.dispose();
      }
    });

    test('KV-cache decoding equals the full forward pass', () => {
      useBackend(be);
      const { cfg, p } = model();
      const toks = randIds(new Rng(5), 2, 11, cfg.vocabSize);
      const ref = full(p, cfg, toks);
      const lm = new LlamaModel(p, cfg);
      // Prefill 4, then one token at a time; and prefill 3, then chunks of 5 and 3.
      for (const chunks of [[4, 1, 1, 1, 1, 1, 1, 1], [3, 5, 3]]) {
        const cache = lm.newCache(2, 16);
        let t0 = 0;
        for (const n of chunks) {
          const step = tidy(() => lm.forward(ids(toks.map((r) => r.slice(t0, t0 + n))), cache));
          for (let b = 0; b < 2; b++) allclose(rows(step, b, 0, n), rows(ref, b, t0, t0 + n), { rtol: 1e-4, atol: 1e-5, what: `row ${b} positions ${t0}..${t0 + n}` });
          const last = lm.forward(ids(toks.map((r) => r.slice(t0, t0 + n))), lm.newCache(2, 16), { lastOnly: true });
          assert.deepEqual(last.shape, [2, 1, cfg.vocabSize]);
          step.dispose();
          last.dispose();
          t0 += n;
        }
        assert.equal(cache.length, 11);
        cache.dispose();
      }
      // With grad enabled a cached step keeps its graph (past keys/values are constants).
      const cache = lm.newCache(2, 16);
      let t0 = 0;
      for (const n of [3, 5, 3]) {
        tidy(() => {
          const step = llamaForward(p, cfg, ids(toks.map((r) => r.slice(t0, t0 + n))), { cache });
          assert.ok(step.requiresGrad);
          for (let b = 0; b < 2; b++) allclose(rows(step, b, 0, n), rows(ref, b, t0, t0 + n), { rtol: 1e-4, atol: 1e-5, what: `graph-carrying step at ${t0}` });
        });
        t0 += n;
      }
      cache.dispose();
    });

    test('a batch of two equals two batches of one', () => {
      useBackend(be);
      const { cfg, p } = model({ tie_word_embeddings: true, attention_bias: true });
      const toks = randIds(new Rng(6), 2, 9, cfg.vocabSize);
      const both = full(p, cfg, toks);
      for (let b = 0; b < 2; b++) allclose(rows(both, b, 0, 9), rows(full(p, cfg, [toks[b]!]), 0, 0, 9), { rtol: 1e-4, atol: 1e-5, what: `row ${b}` });
    });

    test('a left-padded batch equals its unpadded rows (full pass and cached decoding)', () => {
      useBackend(be);
      const { cfg, p } = model({ rope_scaling: { rope_type: 'llama3', factor: 4, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } });
      const rng = new Rng(7);
      const a = randIds(rng, 1, 8, cfg.vocabSize)[0]!, b = randIds(rng, 1, 5, cfg.vocabSize)[0]!;
      const padded = [a, [0, 0, 0, ...b]];
      const mask = [a.map(() => 1), [0, 0, 0, 1, 1, 1, 1, 1]];
      const batch = full(p, cfg, padded, mask);
      allclose(rows(batch, 0, 0, 8), rows(full(p, cfg, [a]), 0, 0, 8), { rtol: 1e-4, atol: 1e-5, what: 'unpadded row' });
      allclose(rows(batch, 1, 3, 8), rows(full(p, cfg, [b]), 0, 0, 5), { rtol: 1e-4, atol: 1e-5, what: 'padded row' });
      // Cached: padded prefill, then decode steps with and without an explicit mask.
      const more = randIds(rng, 2, 3, cfg.vocabSize);
      const refA = full(p, cfg, [[...a, ...more[0]!]]), refB = full(p, cfg, [[...b, ...more[1]!]]);
      for (const explicit of [false, true]) {
        const lm = new LlamaModel(p, cfg);
        const cache = lm.newCache(2, 12);
        const pre = lm.forward(ids(padded), cache, { attentionMask: fromData(Uint8Array.from(mask.flat()), [2, 8], 'bool') });
        allclose(rows(pre, 1, 3, 8), rows(refB, 0, 0, 5), { rtol: 1e-4, atol: 1e-5, what: 'padded prefill' });
        for (let s = 0; s < 3; s++) {
          const m = explicit ? { attentionMask: fromData(Int32Array.from([...Array(9 + s).fill(1), ...[0, 0, 0], ...Array(6 + s).fill(1)]), [2, 9 + s], 'i32') } : {};
          const step = lm.forward(ids([[more[0]![s]!], [more[1]![s]!]]), cache, m);
          allclose(rows(step, 0, 0, 1), rows(refA, 0, 8 + s, 9 + s), { rtol: 1e-4, atol: 1e-5, what: `row 0 decode step ${s}` });
          allclose(rows(step, 1, 0, 1), rows(refB, 0, 5 + s, 6 + s), { rtol: 1e-4, atol: 1e-5, what: `row 1 decode step ${s} (explicit mask: ${explicit})` });
        }
        cache.dispose();
      }
    });

    test('sliding window (Mistral): cached decoding equals the full pass; a wide window changes nothing', () => {
      useBackend(be);
      const toks = randIds(new Rng(8), 2, 10, 50);
      const { cfg, p } = model({ model_type: 'mistral', sliding_window: 4 });
      const wide = parseLlamaConfig(baseJson({ sliding_window: 10 }));
      const none = parseLlamaConfig(baseJson());
      const ref = full(p, cfg, toks);
      allclose(F.denseData(full(p, wide, toks)), F.denseData(full(p, none, toks)), { rtol: 1e-5, atol: 1e-6, what: 'window >= length' });
      assert.ok(Math.abs(rows(ref, 0, 9, 10)[0]! - rows(full(p, none, toks), 0, 9, 10)[0]!) > 1e-5, 'a window of 4 must change late positions');
      const lm = new LlamaModel(p, cfg);
      const cache = lm.newCache(2, 10);
      let t0 = 0;
      for (const n of [3, 1, 4, 1, 1]) {
        const step = lm.forward(ids(toks.map((r) => r.slice(t0, t0 + n))), cache);
        for (let b = 0; b < 2; b++) allclose(rows(step, b, 0, n), rows(ref, b, t0, t0 + n), { rtol: 1e-4, atol: 1e-5, what: `window step at ${t0}` });
        t0 += n;
      }
    });

    test('gradients reach every parameter and match finite differences', () => {
      useBackend(be);
      const { cfg, p } = model({ attention_bias: true, mlp_bias: true, num_hidden_layers: 1, vocab_size: 20 });
      const rng = new Rng(9);
      const toks = ids(randIds(rng, 2, 6, 20)), targets = ids(randIds(rng, 2, 6, 20));
      const mask = fromData(Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]), [2, 6], 'bool'); // left padding: fully masked query rows
      const loss = (): Tensor => F.crossEntropy(llamaForward(p, cfg, toks, { attentionMask: mask }), targets);
      const leaves = flatten(p);
      tidy(() => backward(loss()));
      const dir = new Map<string, Float32Array>();
      let analytic = 0;
      for (const [k, t] of leaves) {
        assert.ok(t.grad !== null, `${k} received no gradient`);
        const g = F.denseData(t.grad);
        assert.ok(g.some((x) => x !== 0), `${k} has an all-zero gradient`);
        const d = rng.fillNormal(new Float32Array(t.size));
        dir.set(k, d);
        for (let i = 0; i < g.length; i++) analytic += g[i]! * d[i]!;
        t.grad.dispose();
        t.grad = null;
      }
      // Directional derivative along a unit direction by central differences (f32 forward, so a loose tolerance).
      let norm = 0;
      for (const d of dir.values()) for (const x of d) norm += x * x;
      norm = Math.sqrt(norm);
      for (const d of dir.values()) for (let i = 0; i < d.length; i++) d[i]! /= norm;
      analytic /= norm;
      const eps = 1e-2;
      const shift = (s: number): void => { for (const [k, t] of leaves) { const d = dir.get(k)!; for (let i = 0; i < t.size; i++) t.data[i]! += s * d[i]!; } };
      shift(eps);
      const lp = noGrad(() => tidy(() => F.item(loss())));
      shift(-2 * eps);
      const lm = noGrad(() => tidy(() => F.item(loss())));
      shift(eps);
      const numeric = (lp - lm) / (2 * eps);
      assert.ok(Math.abs(numeric - analytic) <= 1e-2 * Math.abs(analytic) + 1e-4, `directional derivative: autograd ${analytic}, finite differences ${numeric}`);
    });
  });
}

describe('llama (backend-independent)', () => {
  test('parameter tree paths are the HF checkpoint keys', () => {
    useBackend('reference');
    const cfg = parseLlamaConfig(baseJson({ num_hidden_layers: 1, attention_bias: true }));
    const keys = [...flatten(initLlama(cfg, null)).keys()];
    const attn = ['q', 'k', 'v', 'o'].flatMap((x) => [`model.layers.0.self_attn.${x}_proj.weight`, `model.layers.0.self_attn.${x}_proj.bias`]);
    assert.deepEqual(keys.sort(), [
      'lm_head.weight', 'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight',
      'model.layers.0.mlp.down_proj.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.post_attention_layernorm.weight', ...attn, 'model.norm.weight',
    ].sort());
    const tied = flatten(initLlama(parseLlamaConfig(baseJson({ tie_word_embeddings: true })), null));
    assert.ok(!tied.has('lm_head.weight'));
    assert.ok(family.ignoreKeys!.some((re) => re.test('model.layers.3.self_attn.rotary_emb.inv_freq')));
    const shapes = Object.fromEntries([...flatten(initLlama(parseLlamaConfig(baseJson({ head_dim: 16 })), null))].map(([k, t]) => [k, t.shape]));
    assert.deepEqual(shapes['model.layers.1.self_attn.q_proj.weight'], [64, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.k_proj.weight'], [32, 32]);
    assert.deepEqual(shapes['model.layers.1.self_attn.o_proj.weight'], [32, 64]);
    assert.ok(flatten(initLlama(cfg, null)).get('model.norm.weight')!.data.every((x) => x === 0), 'rng null gives zeros');
  });

  test('rotary inverse frequencies match HF for default, llama3, linear and dynamic scaling', () => {
    const cases = JSON.parse(readFileSync(golden + 'llama_rope.json', 'utf8')) as Record<string, { config: Record<string, unknown>; seq_len: number | null; inv_freq: number[] }>;
    for (const [name, c] of Object.entries(cases)) {
      const cfg = parseLlamaConfig(baseJson({ intermediate_size: 8, num_key_value_heads: null, ...c.config }));
      const got = ropeInvFreq(cfg.rope, c.seq_len ?? undefined);
      allclose(got, c.inv_freq, { rtol: 2e-7, atol: 0, what: `${name} inv_freq` });
    }
  });

  test('inputs_embeds give the same logits as input_ids; no tensors leak', () => {
    useBackend('reference');
    const { cfg, p } = model();
    const toks = ids(randIds(new Rng(10), 2, 5, cfg.vocabSize));
    const a = full(p, cfg, [[...F.denseI32(toks).slice(0, 5)], [...F.denseI32(toks).slice(5)]]);
    const b = noGrad(() => llamaForward(p, cfg, llamaEmbed(p, cfg, toks)));
    allclose(F.denseData(b), F.denseData(a), { rtol: 1e-6, atol: 1e-7 });
    const lm = new LlamaModel(p, cfg);
    const before = liveBuffers();
    const cache = lm.newCache(2, 8);
    tidy(() => { lm.forward(toks, cache); lm.forward(ids([[1], [2]]), cache, { lastOnly: true }); lm.hidden(ids([[3], [4]]), cache); });
    cache.dispose();
    tidy(() => { backward(F.sum(llamaForward(p, cfg, toks))); });
    for (const t of flatten(p).values()) { t.grad?.dispose(); t.grad = null; }
    assert.equal(liveBuffers(), before, 'forward/decode/backward left tensors alive');
  });

  test('bad configs name the key', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ hidden_act: 'gelu' }, /'hidden_act' must be "silu"/],
      [{ num_key_value_heads: 3 }, /'num_key_value_heads' \(3\) must divide 'num_attention_heads' \(4\)/],
      [{ num_attention_heads: 5, num_key_value_heads: 5 }, /'num_attention_heads' \(5\) must divide 'hidden_size' \(32\)/],
      [{ vocab_size: undefined }, /'vocab_size' is missing/],
      [{ hidden_size: 0 }, /'hidden_size' must be an integer/],
      [{ rms_norm_eps: 'x' }, /'rms_norm_eps'/],
      [{ rope_scaling: { rope_type: 'yarn', factor: 2 } }, /'rope_type' must be one of/],
      [{ rope_scaling: { type: 'linear' } }, /rope_scaling: 'factor' is missing/],
      [{ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, /'original_max_position_embeddings' is missing/],
      [{ head_dim: 7 }, /must be even/],
      [{ partial_rotary_factor: 0.5 }, /'partial_rotary_factor' must be 1/],
      [{ attention_bias: 'yes' }, /'attention_bias' must be true or false/],
    ];
    for (const [over, re] of bad) {
      assert.throws(() => parseLlamaConfig(baseJson(over), 'x/config.json'), (e: Error) => re.test(e.message) && e.message.startsWith('x/config.json'), `${JSON.stringify(over)}`);
    }
    const c = parseLlamaConfig(baseJson({ num_key_value_heads: undefined, eos_token_id: [2, 7], rope_scaling: { type: 'linear', factor: 2 } }));
    assert.equal(c.numKvHeads, 4);
    assert.deepEqual(c.eosTokenIds, [2, 7]);
    assert.equal(c.rope.theta, 10000);
    assert.deepEqual(c.rope.scaling, { type: 'linear', factor: 2 });
  });

  test('out-of-range ids, long sequences, full caches and bad masks give clear errors', () => {
    useBackend('reference');
    const { cfg, p } = model();
    assert.throws(() => full(p, cfg, [[1, 50, 2]]), /token id 50 at \[0, 1\] is outside \[0, 50\) \(vocab_size 50\)/);
    assert.throws(() => full(p, cfg, [[-1]]), /token id -1/);
    assert.throws(() => full(p, cfg, [Array(41).fill(1)]), /41 positions \(0 cached \+ 41 new\) exceed max_position_embeddings 40/);
    const lm = new LlamaModel(p, cfg);
    assert.throws(() => lm.newCache(1, 41), /capacity 41 exceeds max_position_embeddings 40/);
    const cache = lm.newCache(1, 4);
    lm.forward(ids([[1, 2, 3]]), cache).dispose();
    assert.throws(() => lm.forward(ids([[1, 2]]), cache), /3 cached \+ 2 new positions exceed the capacity of 4/);
    assert.equal(cache.length, 3, 'a failed step leaves the cache as it was');
    assert.throws(() => lm.forward(ids([[1]]), cache, { attentionMask: fromData(new Uint8Array(3).fill(1), [1, 3], 'bool') }), /\[1, 4\]/);
    assert.throws(() => lm.forward(ids([[1], [2]]), cache), /does not fit this model and batch 2/);
    assert.throws(() => llamaForward(p, cfg, fromData(new Float32Array(8), [1, 1, 8])), /inputs_embeds \[B, T, 32\]/);
    assert.throws(() => family.forward(p, cfg, new Map()), /missing input 'input_ids'/);
    cache.dispose();
  });
});
