// A `chimera init` folder of a multimodal preset as a ChatModel: load, prepare a conversation with
// images decoded from real files of any mode, generate, and refuse mismatched inputs clearly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { useBackend } from '../src/backends/index.ts';
import { decodeImage } from '../src/io/image.ts';
import { loadChatModel } from '../src/models/chat-model.ts';
import { createPreset } from '../src/models/vlm/create.ts';
import { generate } from '../src/serve/generate.ts';

useBackend('auto');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-vlmchat-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

async function images(): Promise<Buffer[]> {
  const rgb = Buffer.alloc(30 * 20 * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37) % 256;
  const base = sharp(rgb, { raw: { width: 30, height: 20, channels: 3 } });
  return [
    await base.clone().png().toBuffer(),
    await base.clone().greyscale().png().toBuffer(),
    await base.clone().ensureAlpha(0.5).png().toBuffer(),
    await base.clone().png({ palette: true }).toBuffer(),
    await base.clone().toColourspace('rgb16').png().toBuffer(),
    await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer(),
    await base.clone().toColourspace('cmyk').jpeg().toBuffer(),
  ];
}

for (const preset of ['sphinx-tiny:tiny', 'llava-1.5:tiny']) {
  test(`${preset}: init folder -> chat model -> prepare with images of every mode -> generate`, async () => {
    const dir = path.join(TMP, preset.replace(':', '-'));
    createPreset(preset, dir, { seed: 3 });
    const m = await loadChatModel(dir);
    assert.equal(m.preset, preset);
    assert.ok(m.maxImages >= 1);
    for (const buf of await images()) {
      const img = await decodeImage(buf);
      const p = m.prepare([{ role: 'user', content: [{ type: 'image', image: 0 }, { type: 'text', text: 'What is this?' }] }], [{ image: img, detail: 'high' }]);
      assert.equal(p.images.length, 1);
      assert.equal(p.ids.length >= p.images[0]!.positions, true);
      const plan = m.planImage(img.width, img.height, 'high');
      assert.equal(p.images[0]!.positions, plan.positions);
      const [r] = await generate(p.lm, [p.ids], { maxNewTokens: 4, decode: (ids) => m.tokenizer.decode(ids), stopTokenIds: m.stopTokenIds, stopStrings: m.stopStrings });
      assert.ok(r!.tokens.length >= 1 && r!.tokens.length <= 4);
      p.dispose();
    }
    const img = await decodeImage((await images())[0]!);
    assert.throws(() => m.prepare([{ role: 'user', content: 'hi' }], [{ image: img }]), /1 image given but 0 referenced/);
    assert.throws(() => m.prepare([{ role: 'user', content: [{ type: 'image', image: 1 }] }], [{ image: img }]), /refers to image 1 but 1 image was given/);
    m.dispose();
  });
}

test('unknown presets and inconsistent configs fail with errors naming the problem', () => {
  assert.throws(() => createPreset('sphinx-9k', path.join(TMP, 'x')), /unknown preset 'sphinx-9k'/);
  assert.throws(() => createPreset('sphinx-tiny', path.join(TMP, 'y')), /over 1\.1B parameters .* pass --force .* 'sphinx-tiny:tiny'/);
  assert.equal(fs.existsSync(path.join(TMP, 'y', 'model.safetensors')), false);
  const dir = path.join(TMP, 'bad');
  createPreset('sphinx:tiny', dir, { configOnly: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  cfg.vision_config.dinov2.patch_size = 8; // a 7x7 grid next to CLIP's 4x4
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return assert.rejects(loadChatModel(dir), /dinov2 gives a 7x7 token grid but the other encoders give 4x4/);
});
