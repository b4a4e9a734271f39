// The visual encoder families (CLIP vision, DINOv2, ConvNeXt, BLIP-2 Q-Former) against the
// fixtures of scripts/gen_golden_vision.py: hand-written torch references with Hugging Face
// semantics, run in float64. Every fixture runs on each available backend with its checkpoint
// loaded straight from model.safetensors, then once more through loadModel + family.forward and
// through `chimera forward`. Also: config errors, input-shape errors, init and a backward pass.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeBackend, referenceBackend } from '../src/backends/index.ts';
import { backward, noGrad } from '../src/engine/autograd.ts';
import { setBackend, type Backend } from '../src/engine/backend.ts';
import * as F from '../src/engine/ops/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { fromData, liveBuffers, tidy, untracked, type Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { SafetensorsFile } from '../src/io/safetensors.ts';
import * as blip from '../src/models/blip2-qformer.ts';
import * as clip from '../src/models/clip-vision.ts';
import * as convnext from '../src/models/convnext.ts';
import * as dinov2 from '../src/models/dinov2.ts';
import { loadModel } from '../src/models/load.ts';
import { familyFor, type ModelFamily } from '../src/models/registry.ts';
import { closeReport } from './util.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = fs.existsSync(path.join(HERE, '../test/golden')) ? path.join(HERE, '..') : path.join(HERE, '../..');
const GOLDEN = path.join(ROOT, 'test/golden/models');
const RTOL = 1e-4;

// ---- fixtures -------------------------------------------------------------------------------------

interface Arr { shape: number[]; f32: Float32Array | null; i32: Int32Array | null }

function readAll(file: string): { arrays: Map<string, Arr>; meta: Record<string, string> } {
  const f = SafetensorsFile.open(file);
  try {
    const arrays = new Map<string, Arr>();
    for (const k of f.keys()) {
      const info = f.info(k);
      arrays.set(k, info.dtype === 'I32' ? { shape: info.shape, f32: null, i32: f.readI32(k) } : { shape: info.shape, f32: f.readF32(k), i32: null });
    }
    return { arrays, meta: f.metadata() };
  } finally {
    f.close();
  }
}

interface Fixture {
  name: string;
  dir: string;
  config: Record<string, unknown>;
  inputs: Map<string, Arr>;
  outputs: Map<string, Arr>;
  options: Record<string, unknown>;
}

function fixture(name: string): Fixture {
  const dir = path.join(GOLDEN, name);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const inputs = readAll(path.join(dir, 'inputs.safetensors')).arrays;
  const out = readAll(path.join(dir, 'outputs.safetensors'));
  return { name, dir, config, inputs, outputs: out.arrays, options: JSON.parse(out.meta['options'] ?? '{}') as Record<string, unknown> };
}

function tensorOf(a: Arr): Tensor {
  return a.f32 !== null ? fromData(a.f32.slice(), a.shape) : fromData(a.i32!.slice(), a.shape, 'i32');
}

function input(fx: Fixture, name: string): Tensor {
  const a = fx.inputs.get(name);
  assert.ok(a, `${fx.name}: inputs.safetensors has no '${name}'`);
  return tensorOf(a);
}

/** Params of `family` for the fixture, filled straight from model.safetensors (independent of loadModel). */
function paramsFor<C, P>(family: ModelFamily<C, P>, fx: Fixture): { cfg: C; params: P } {
  const cfg = family.parseConfig(fx.config, `${fx.name}/config.json`);
  const params = untracked(() => family.init(cfg, null));
  const leaves = flatten<Tensor>(params);
  const f = SafetensorsFile.open(path.join(fx.dir, 'model.safetensors'));
  try {
    assert.deepEqual([...leaves.keys()].sort(), f.keys().sort(), `${fx.name}: parameter tree keys differ from the checkpoint keys`);
    for (const [k, t] of leaves) {
      assert.deepEqual(t.shape, f.info(k).shape, `${fx.name}: shape of ${k}`);
      t.data.set(f.readF32(k));
    }
  } finally {
    f.close();
  }
  return { cfg, params };
}

function dispose(params: unknown): void {
  for (const t of flatten<Tensor>(params).values()) t.dispose();
}

/** Max |expected| over the array, for an absolute floor relative to the tensor's scale. */
function scaleOf(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function check(fx: Fixture, outName: string, actual: Tensor, fails: string[], label = outName): void {
  const exp = fx.outputs.get(outName);
  if (exp === undefined) { fails.push(`${label}: no expected '${outName}'`); return; }
  if (actual.shape.length !== exp.shape.length || actual.shape.some((d, i) => d !== exp.shape[i])) {
    fails.push(`${label}: shape [${actual.shape.join(', ')}], expected [${exp.shape.join(', ')}]`);
    return;
  }
  const r = closeReport(F.toArray(actual), exp.f32!, { rtol: RTOL, atol: 1e-5 * Math.max(1, scaleOf(exp.f32!)), shape: exp.shape, what: `${fx.name} ${label}` });
  if (r !== null) fails.push(r);
}

/** Worst |a - e| / (|e| + scale*1e-3) over the array: a rough measure reported by the tests. */
const worst = new Map<string, number>();
function track(key: string, actual: Tensor, exp: Arr | undefined): void {
  if (exp === undefined) return;
  const a = F.toArray(actual), e = exp.f32!, s = scaleOf(e);
  let w = 0;
  for (let i = 0; i < e.length; i++) w = Math.max(w, Math.abs(a[i]! - e[i]!) / (Math.abs(e[i]!) + 1e-3 * s));
  worst.set(key, Math.max(worst.get(key) ?? 0, w));
}

// ---- per-backend golden runs ----------------------------------------------------------------------

type Case = (fx: Fixture, fails: string[]) => void;

const cases: Record<string, Case> = {
  clip_vision(fx, fails) {
    const { cfg, params } = paramsFor(clip.family, fx);
    try {
      tidy(() => {
        const px = input(fx, 'pixel_values');
        const out = clip.forwardClipVision(params, cfg, px, { outputHiddenStates: true });
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('clip_vision', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
        assert.equal(out.hiddenStates!.length, cfg.numHiddenLayers + 1);
        out.hiddenStates!.forEach((h, i) => check(fx, `hidden_states.${i}`, h, fails));
        // LLaVA's feature layer: hidden_states[-2], computed without running the last layer.
        const L = cfg.numHiddenLayers;
        check(fx, `hidden_states.${L - 1}`, clip.clipHiddenState(params, cfg, px, -2), fails, 'clipHiddenState(-2)');
        check(fx, 'hidden_states.0', clip.clipHiddenState(params, cfg, px, 0), fails, 'clipHiddenState(0)');
        check(fx, 'post_layernorm_all', clip.postLayerNorm(params, cfg, out.lastHiddenState), fails);
      });
    } finally { dispose(params); }
  },
  clip_vision_interp(fx, fails) {
    const { cfg, params } = paramsFor(clip.family, fx);
    try {
      tidy(() => {
        const px = input(fx, 'pixel_values');
        assert.throws(() => clip.forwardClipVision(params, cfg, px), /40x24 but image_size is 32.*interpolatePosEncoding/);
        const out = clip.forwardClipVision(params, cfg, px, { interpolatePosEncoding: true });
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('clip_vision_interp', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
      });
    } finally { dispose(params); }
  },
  dinov2(fx, fails) {
    const { cfg, params } = paramsFor(dinov2.family, fx);
    try {
      tidy(() => {
        const px = input(fx, 'pixel_values');
        const out = dinov2.forwardDinov2(params, cfg, px, { outputHiddenStates: true });
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('dinov2', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
        out.hiddenStates!.forEach((h, i) => check(fx, `hidden_states.${i}`, h, fails));
        const mask = F.ne(F.cast(input(fx, 'bool_masked_pos'), 'f32'), 0);
        const m = dinov2.forwardDinov2(params, cfg, px, { boolMaskedPos: mask });
        check(fx, 'masked.last_hidden_state', m.lastHiddenState, fails);
        check(fx, 'masked.pooler_output', m.poolerOutput, fails);
      });
    } finally { dispose(params); }
  },
  dinov2_interp(fx, fails) {
    const { cfg, params } = paramsFor(dinov2.family, fx);
    try {
      assert.equal(cfg.posInterp, 'scale_factor');
      tidy(() => {
        const px = input(fx, 'pixel_values');
        for (const mode of ['scale_factor', 'size', 'antialias'] as const) {
          const pre = mode === 'scale_factor' ? '' : `${mode}.`;
          const out = dinov2.forwardDinov2(params, cfg, px, { posInterp: mode });
          check(fx, `${pre}last_hidden_state`, out.lastHiddenState, fails);
          check(fx, `${pre}pooler_output`, out.poolerOutput, fails);
          track(`dinov2_interp ${mode}`, out.lastHiddenState, fx.outputs.get(`${pre}last_hidden_state`));
        }
      });
    } finally { dispose(params); }
  },
  dinov2_registers(fx, fails) {
    const { cfg, params } = paramsFor(dinov2.family, fx);
    try {
      assert.equal(cfg.posInterp, 'antialias');
      assert.equal(cfg.numRegisterTokens, 2);
      tidy(() => {
        const out = dinov2.forwardDinov2(params, cfg, input(fx, 'pixel_values'));
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('dinov2_registers', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
      });
    } finally { dispose(params); }
  },
  convnext(fx, fails) {
    const { cfg, params } = paramsFor(convnext.family, fx);
    try {
      tidy(() => {
        const px = input(fx, 'pixel_values');
        const out = convnext.forwardConvNext(params, cfg, px, { outputHiddenStates: true });
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        // The same numbers from torchvision's ConvNeXt with the weights mapped from the HF names.
        check(fx, 'torchvision.last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'torchvision.pooler_output', out.poolerOutput, fails);
        track('convnext', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
        out.hiddenStates!.forEach((h, i) => check(fx, `hidden_states.${i}`, h, fails));
        const stages = convnext.convNextStages(params, cfg, px, 2);
        assert.equal(stages.length, 2);
        check(fx, 'hidden_states.2', stages[1]!, fails, 'convNextStages(2)[1]');
      });
    } finally { dispose(params); }
  },
  blip2_qformer(fx, fails) {
    const { cfg, params } = paramsFor(blip.family, fx);
    try {
      tidy(() => {
        const enc = input(fx, 'encoder_hidden_states');
        const out = blip.forwardQFormer(params, cfg, input(fx, 'query_embeds'), enc);
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('blip2_qformer', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
        const q = blip.forwardQFormerWithQueries(params, cfg, input(fx, 'query_tokens'), enc);
        check(fx, 'query_tokens.last_hidden_state', q.lastHiddenState, fails);
        check(fx, 'query_tokens.pooler_output', q.poolerOutput, fails);
      });
    } finally { dispose(params); }
  },
  blip2_qformer_text(fx, fails) {
    const { cfg, params } = paramsFor(blip.family, fx);
    try {
      tidy(() => {
        const out = blip.forwardQFormer(params, cfg, input(fx, 'query_embeds'), input(fx, 'encoder_hidden_states'), {
          queryLength: fx.options['query_length'] as number,
          attentionMask: input(fx, 'attention_mask'),
          encoderAttentionMask: input(fx, 'encoder_attention_mask'),
        });
        check(fx, 'last_hidden_state', out.lastHiddenState, fails);
        check(fx, 'pooler_output', out.poolerOutput, fails);
        track('blip2_qformer_text', out.lastHiddenState, fx.outputs.get('last_hidden_state'));
      });
    } finally { dispose(params); }
  },
};

function tryNative(): Backend | null {
  try {
    return nativeBackend();
  } catch {
    return null; // an addon that fails to load is reported by the native-backend tests
  }
}
const native = tryNative();
const backends: [string, Backend | null][] = [['reference', referenceBackend], ['native', native]];

for (const [bname, b] of backends) {
  test(`vision golden fixtures: ${bname} backend`, { skip: b === null ? 'native addon not available' : false }, async (t) => {
    for (const [name, run] of Object.entries(cases)) {
      await t.test(name, () => {
        setBackend(b!);
        const fx = fixture(name);
        const live = liveBuffers();
        const fails: string[] = [];
        noGrad(() => run(fx, fails));
        assert.deepEqual(fails, []);
        assert.equal(liveBuffers() - live, 0, `${name}: tensor buffers leaked`);
      });
    }
    setBackend(referenceBackend);
  });
}

test('vision golden fixtures: worst relative error (report)', () => {
  const lines = [...worst].map(([k, v]) => `${k}: ${v.toExponential(2)}`);
  console.log(`  max |err| / (|expected| + 1e-3*max|expected|) over last_hidden_state: ${lines.join('; ')}`);
});

// ---- through the loader and the CLI ------------------------------------------------------------------

const LOADABLE = ['clip_vision', 'clip_vision_interp', 'dinov2', 'dinov2_interp', 'convnext', 'blip2_qformer'];

test('vision fixtures through loadModel + family.forward', async (t) => {
  setBackend(native ?? referenceBackend);
  for (const name of LOADABLE) {
    await t.test(name, async () => {
      const fx = fixture(name);
      const m = await loadModel(fx.dir);
      try {
        const fails: string[] = [];
        noGrad(() => tidy(() => {
          const inputs = new Map(m.family.inputs.map((k) => [k, input(fx, k)] as const));
          const out = m.family.forward(m.params, m.config, inputs);
          assert.deepEqual([...out.keys()].sort(), ['last_hidden_state', 'pooler_output']);
          for (const [k, v] of out) check(fx, k, v, fails, `family.forward ${k}`);
        }));
        assert.deepEqual(fails, []);
      } finally {
        dispose(m.params);
      }
    });
  }
});

test('vision fixtures through `chimera forward`', async (t) => {
  const cli = path.join(ROOT, 'dist/src/cli/main.js');
  if (!fs.existsSync(cli)) { t.skip('dist/src/cli/main.js not built'); return; }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-vision-'));
  try {
    for (const name of LOADABLE) {
      await t.test(name, () => {
        const fx = fixture(name);
        const out = path.join(tmp, `${name}.safetensors`);
        const r = spawnSync(process.execPath, [cli, 'forward', '--model', fx.dir, '--inputs', path.join(fx.dir, 'inputs.safetensors'), '--out', out, '--backend', 'reference', '--json'], { encoding: 'utf8' });
        assert.equal(r.status, 0, `chimera forward failed: ${r.stderr}`);
        const got = readAll(out).arrays;
        const fails: string[] = [];
        for (const k of ['last_hidden_state', 'pooler_output']) {
          setBackend(referenceBackend);
          tidy(() => check(fx, k, tensorOf(got.get(k)!), fails, `chimera forward ${k}`));
        }
        assert.deepEqual(fails, []);
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// ---- registry, config errors, input errors -------------------------------------------------------

test('families are registered under their model_type', async () => {
  for (const [type, mod] of [['clip_vision_model', clip], ['dinov2', dinov2], ['convnext', convnext], ['blip_2_qformer', blip], ['clip', clip]] as const) {
    const f = await familyFor(type);
    assert.equal(f, mod.family as unknown as ModelFamily, type);
  }
  assert.deepEqual(clip.family.inputs, ['pixel_values']);
  assert.deepEqual(dinov2.family.inputs, ['pixel_values']);
  assert.deepEqual(convnext.family.inputs, ['pixel_values']);
  assert.deepEqual(blip.family.inputs, ['encoder_hidden_states', 'query_embeds']);
});

const CLIP_CFG = { model_type: 'clip_vision_model', hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, image_size: 16, patch_size: 8 };
const DINO_CFG = { model_type: 'dinov2', hidden_size: 8, num_hidden_layers: 2, num_attention_heads: 2, image_size: 14, patch_size: 7 };
const CONVNEXT_CFG = { model_type: 'convnext', hidden_sizes: [4, 8], depths: [1, 1], num_stages: 2 };
const QFORMER_CFG = { model_type: 'blip_2_qformer', hidden_size: 8, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 16, encoder_hidden_size: 6 };

test('config errors name the key', () => {
  const bad: [(j: unknown) => unknown, Record<string, unknown>, RegExp][] = [
    [clip.parseConfig, { ...CLIP_CFG, hidden_size: undefined }, /'hidden_size' is missing/],
    [clip.parseConfig, { ...CLIP_CFG, hidden_act: 'tanh' }, /'hidden_act' must be one of/],
    [clip.parseConfig, { ...CLIP_CFG, num_attention_heads: 3 }, /'hidden_size' 8 is not divisible by 'num_attention_heads' 3/],
    [clip.parseConfig, { ...CLIP_CFG, patch_size: 32 }, /'patch_size' 32 exceeds 'image_size' 16/],
    [clip.parseConfig, { model_type: 'clip', text_config: {} }, /'vision_config' is missing/],
    [clip.parseConfig, { model_type: 'clip', vision_config: { ...CLIP_CFG, layer_norm_eps: 'x' } }, /vision_config: 'layer_norm_eps' must be a number/],
    [dinov2.parseConfig, { ...DINO_CFG, patch_size: '7' }, /'patch_size' must be an integer/],
    [dinov2.parseConfig, { ...DINO_CFG, image_size: undefined }, /'image_size' is missing/],
    [dinov2.parseConfig, { ...DINO_CFG, mlp_ratio: 0 }, /'mlp_ratio' 0 gives an empty MLP/],
    [dinov2.parseConfig, { ...DINO_CFG, use_swiglu_ffn: 'yes' }, /'use_swiglu_ffn' must be true or false/],
    [convnext.parseConfig, { ...CONVNEXT_CFG, depths: [1] }, /'hidden_sizes' \(2\) and 'depths' \(1\) must both have num_stages = 2/],
    [convnext.parseConfig, { ...CONVNEXT_CFG, hidden_sizes: undefined }, /'hidden_sizes' is missing/],
    [convnext.parseConfig, { ...CONVNEXT_CFG, hidden_sizes: [4, -8] }, /'hidden_sizes' must be a list of non-negative integers/],
    [blip.parseConfig, { ...QFORMER_CFG, encoder_hidden_size: undefined }, /'encoder_hidden_size' is missing/],
    [blip.parseConfig, { ...QFORMER_CFG, position_embedding_type: 'relative_key' }, /'position_embedding_type' "relative_key" is not supported/],
    [blip.parseConfig, { ...QFORMER_CFG, cross_attention_frequency: 0 }, /'cross_attention_frequency' must be an integer/],
  ];
  for (const [parse, json, re] of bad) assert.throws(() => parse(json), re, JSON.stringify(json));
  // A blip-2 config: the Q-Former part, with encoder_hidden_size from the vision tower.
  const q = blip.parseConfig({ model_type: 'blip-2', vision_config: { hidden_size: 12 }, qformer_config: QFORMER_CFG });
  assert.equal(q.encoderHiddenSize, 12);
  const c = clip.parseConfig({ model_type: 'clip', vision_config: CLIP_CFG });
  assert.equal(c.hiddenAct, 'quick_gelu');
  const r = dinov2.parseConfig({ ...DINO_CFG, model_type: 'dinov2_with_registers' });
  assert.equal(r.numRegisterTokens, 4);
  assert.equal(r.posInterp, 'antialias');
});

test('wrong input shapes give clear errors', () => {
  setBackend(native ?? referenceBackend);
  const rng = new Rng(5);
  const cc = clip.parseConfig(CLIP_CFG), dc = dinov2.parseConfig(DINO_CFG), nc = convnext.parseConfig(CONVNEXT_CFG), qc = blip.parseConfig(QFORMER_CFG);
  const cp = untracked(() => clip.init(cc, rng)), dp = untracked(() => dinov2.init(dc, rng)), np = untracked(() => convnext.init(nc, rng)), qp = untracked(() => blip.init(qc, rng));
  try {
    noGrad(() => tidy(() => {
      const px = (...s: number[]): Tensor => F.randn(s, { rng });
      const fwd = (f: ModelFamily<never, never>, p: unknown, c: unknown, inputs: [string, Tensor][]): unknown => f.forward(p as never, c as never, new Map(inputs));
      assert.throws(() => fwd(clip.family as never, cp, cc, [['pixel_values', px(1, 1, 16, 16)]]), /clip_vision_model: pixel_values must be f32 \[B, 3, H, W\].*got \[1, 1, 16, 16\]/);
      assert.throws(() => fwd(clip.family as never, cp, cc, [['pixel_values', px(3, 16, 16)]]), /pixel_values must be f32 \[B, 3, H, W\].*got \[3, 16, 16\]/);
      assert.throws(() => fwd(clip.family as never, cp, cc, [['pixel_values', px(1, 3, 4, 16)]]), /H, W >= 8.*got \[1, 3, 4, 16\]/);
      assert.throws(() => clip.forwardClipVision(cp, cc, px(1, 3, 24, 16)), /24x16 but image_size is 16/);
      assert.throws(() => fwd(clip.family as never, cp, cc, []), /missing input pixel_values/);
      assert.throws(() => clip.forwardClipVision(cp, cc, px(1, 3, 16, 16), { stopAtHiddenState: 5 }), /stopAtHiddenState 5 is outside \[-3, 2\]/);
      assert.throws(() => fwd(dinov2.family as never, dp, dc, [['pixel_values', px(2, 4, 14, 14)]]), /dinov2: pixel_values must be f32 \[B, 3, H, W\]/);
      assert.throws(() => dinov2.forwardDinov2(dp, dc, px(1, 3, 14, 14), { boolMaskedPos: F.gt(px(1, 5), 0) }), /bool_masked_pos must be \[1, 4\]/);
      assert.throws(() => fwd(convnext.family as never, np, nc, [['pixel_values', px(1, 3, 4, 4)]]), /feature map before stage 1 is 1x1/);
      assert.throws(() => fwd(convnext.family as never, np, nc, [['pixel_values', px(1, 3, 2, 8)]]), /convnext: pixel_values must be f32 \[B, 3, H, W\] with H, W >= 4/);
      assert.throws(() => fwd(blip.family as never, qp, qc, [['encoder_hidden_states', px(2, 5, 7)], ['query_embeds', px(2, 4, 8)]]), /encoder_hidden_states must be f32 \[2, S, 6\] \(encoder_hidden_size 6\), got \[2, 5, 7\]/);
      assert.throws(() => fwd(blip.family as never, qp, qc, [['encoder_hidden_states', px(2, 5, 6)], ['query_embeds', px(2, 4, 9)]]), /query_embeds must be f32 \[B, T, 8\]/);
      assert.throws(() => fwd(blip.family as never, qp, qc, [['encoder_hidden_states', px(2, 5, 6)]]), /missing input query_embeds/);
      assert.throws(() => blip.forwardQFormer(qp, qc, px(2, 4, 8), px(2, 5, 6), { queryLength: 2 }), /layer 0 has no text FFN/);
      assert.throws(() => blip.forwardQFormer(qp, qc, px(2, 4, 8), px(2, 5, 6), { attentionMask: F.ones([2, 3]) }), /attention_mask must be \[2, 4\]/);
    }));
  } finally {
    for (const p of [cp, dp, np, qp]) dispose(p);
  }
});

// ---- init and training ------------------------------------------------------------------------------

test('init: HF keys, HF-like statistics, zeros without an rng, and a backward pass', () => {
  setBackend(native ?? referenceBackend);
  const rng = new Rng(7);
  const px = (...shape: number[]): [string, number[]][] => [['pixel_values', shape]];
  const cfgs: [ModelFamily<unknown, unknown>, unknown, [string, number[]][]][] = [
    [clip.family as never, clip.parseConfig(CLIP_CFG), px(2, 3, 16, 16)],
    [dinov2.family as never, dinov2.parseConfig({ ...DINO_CFG, num_register_tokens: 1, use_swiglu_ffn: true }), px(2, 3, 21, 14)],
    [convnext.family as never, convnext.parseConfig(CONVNEXT_CFG), px(2, 3, 16, 16)],
    [blip.family as never, blip.parseConfig(QFORMER_CFG), [['encoder_hidden_states', [2, 5, 6]], ['query_embeds', [2, 4, 8]]]],
  ];
  for (const [fam, cfg, inputs] of cfgs) {
    const zero = untracked(() => fam.init(cfg, null));
    const p = untracked(() => fam.init(cfg, rng));
    try {
      assert.deepEqual([...flatten<Tensor>(zero).keys()], [...flatten<Tensor>(p).keys()]);
      for (const [k, t] of flatten<Tensor>(zero)) assert.ok(t.data.every((v) => v === 0), `${fam.modelType} ${k} not zero`);
      for (const t of flatten<Tensor>(p).values()) t.requiresGrad = true;
      tidy(() => {
        const out = fam.forward(p, cfg, new Map(inputs.map(([k, shape]) => [k, F.randn(shape, { rng })] as const)));
        const pooled = out.get('pooler_output')!;
        backward(F.sum(F.square(pooled)));
        for (const [k, t] of flatten<Tensor>(p)) {
          if (k.endsWith('mask_token')) continue; // used only with bool_masked_pos
          assert.ok(t.grad !== null, `${fam.modelType}: no gradient reached ${k}`);
          t.grad.dispose();
          t.grad = null;
        }
      });
    } finally {
      dispose(zero);
      dispose(p);
    }
  }
  // HF key names of a few leaves.
  const keys = (fam: ModelFamily<unknown, unknown>, cfg: unknown): string[] => {
    const p = untracked(() => fam.init(cfg, null));
    const k = [...flatten<Tensor>(p).keys()];
    dispose(p);
    return k;
  };
  const ck = keys(clip.family as never, clip.parseConfig(CLIP_CFG));
  for (const k of ['vision_model.embeddings.class_embedding', 'vision_model.embeddings.patch_embedding.weight', 'vision_model.embeddings.position_embedding.weight',
    'vision_model.pre_layrnorm.weight', 'vision_model.encoder.layers.1.self_attn.out_proj.bias', 'vision_model.encoder.layers.0.mlp.fc2.weight', 'vision_model.post_layernorm.bias']) {
    assert.ok(ck.includes(k), k);
  }
  assert.ok(!ck.includes('vision_model.embeddings.patch_embedding.bias'));
  const qk = keys(blip.family as never, blip.parseConfig({ ...QFORMER_CFG, num_hidden_layers: 3 }));
  assert.ok(qk.includes('encoder.layer.2.crossattention.attention.key.weight'));
  assert.ok(!qk.some((k) => k.startsWith('encoder.layer.1.crossattention')));
  assert.ok(!qk.some((k) => /\.(intermediate|output)\.dense/.test(k) && !/attention\.output/.test(k)));
  const nk = keys(convnext.family as never, convnext.parseConfig(CONVNEXT_CFG));
  assert.ok(nk.includes('encoder.stages.1.downsampling_layer.1.weight') && !nk.some((k) => k.startsWith('encoder.stages.0.downsampling')));
  // CLIP's init follows CLIPPreTrainedModel: class_embedding ~ N(0, D^-0.5).
  const big = clip.parseConfig({ ...CLIP_CFG, hidden_size: 1024, num_attention_heads: 16 });
  const bp = untracked(() => clip.init(big, new Rng(3)));
  const ce = bp.vision_model.embeddings.class_embedding.data;
  const std = Math.sqrt(ce.reduce((s, v) => s + v * v, 0) / ce.length);
  assert.ok(Math.abs(std - 1024 ** -0.5) < 0.1 * 1024 ** -0.5, `class_embedding std ${std}`);
  dispose(bp);
});
