// Image input (src/io/image.ts) and pixel preprocessing (src/vision/preprocess.ts).
// Fixtures: scripts/gen_test_images.mjs (sharp) and test/fixtures/images/gen_pil_golden.py (Pillow).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decodeImage, parseDataUrl, DEFAULT_IMAGE_LIMITS } from '../src/io/image.ts';
import {
  CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, centerCrop, cropRegion, meanFill, normalize, padToSquare,
  resizeAndPad, resizeBicubic, resizeShortestEdge, sphinxPreprocess, llavaPadPreprocess, toTensor, type RgbImage,
} from '../src/vision/preprocess.ts';

// Compiled to dist/test/; the fixtures stay in the source tree.
const dir = resolve(new URL('../../test/fixtures/images/', import.meta.url).pathname);
const fx = (name: string): string => resolve(dir, name);
const u8 = (v: number): number => Math.round(v * 255);
/** RGB 0..255 of pixel (x, y) of an HWC image. */
const at = (img: { width: number; data: Float32Array }, x: number, y: number): number[] =>
  [0, 1, 2].map((c) => u8(img.data[(y * img.width + x) * 3 + c]!));
const near = (a: number[], b: number[], tol: number, what: string): void =>
  assert.ok(a.every((v, i) => Math.abs(v - b[i]!) <= tol), `${what}: ${a} vs ${b} (tol ${tol})`);

function assertRgb(img: { width: number; height: number; data: Float32Array; layout: string }): void {
  assert.equal(img.layout, 'hwc');
  assert.ok(img.data instanceof Float32Array);
  assert.equal(img.data.length, img.width * img.height * 3);
  for (const v of img.data) assert.ok(v >= 0 && v <= 1);
}

// ---- decodeImage: format matrix ------------------------------------------------------------

test('rgb png decodes exactly, from a path and from a buffer', async () => {
  for (const input of [fx('rgb.png'), readFileSync(fx('rgb.png'))]) {
    const img = await decodeImage(input);
    assertRgb(img);
    assert.equal(img.format, 'png');
    assert.deepEqual([img.width, img.height], [7, 5]);
    for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) {
      assert.deepEqual(at(img, x, y), [0, 1, 2].map((c) => (x * 37 + y * 11 + c * 71) % 256));
    }
  }
});

test('16-bit png -> 8-bit RGB with the same values', async () => {
  const img = await decodeImage(fx('rgb16.png'));
  assertRgb(img);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) {
    near(at(img, x, y), [0, 1, 2].map((c) => (x * 37 + y * 11 + c * 71) % 256), 1, `(${x},${y})`);
  }
});

test('grey png -> 3 equal channels', async () => {
  const img = await decodeImage(fx('grey.png'));
  assertRgb(img);
  for (let y = 0; y < 5; y++) for (let x = 0; x < 7; x++) {
    const g = (x * 37 + y * 11) % 256;
    assert.deepEqual(at(img, x, y), [g, g, g]);
  }
});

test('grey+alpha and RGBA are composited over white, or a given background', async () => {
  const ga = await decodeImage(fx('grey_alpha.png'));
  assertRgb(ga);
  assert.deepEqual(at(ga, 0, 0), [255, 255, 255]); // alpha 0
  assert.deepEqual(at(ga, 3, 0), [200, 200, 200]); // alpha 255
  const rgba = await decodeImage(fx('rgba.png'));
  assertRgb(rgba);
  assert.deepEqual(at(rgba, 0, 0), [255, 255, 255]);
  assert.deepEqual(at(rgba, 2, 0), [10, 20, 30]);
  near(at(rgba, 3, 1), [10 + (245 * 127) / 255, 20 + (235 * 127) / 255, 30 + (225 * 127) / 255], 2, 'alpha 128 over white');
  const black = await decodeImage(fx('rgba.png'), { background: [0, 0, 0] });
  assert.deepEqual(at(black, 0, 0), [0, 0, 0]);
  await assert.rejects(decodeImage(fx('rgba.png'), { background: [0, 0, 300] }), /background/);
});

test('palette png and CMYK jpeg -> sRGB', async () => {
  const pal = await decodeImage(fx('palette.png'));
  assertRgb(pal);
  assert.deepEqual([pal.width, pal.height], [32, 16]);
  near(at(pal, 2, 8), [255, 0, 0], 0, 'palette red');
  near(at(pal, 29, 8), [0, 0, 255], 0, 'palette blue');
  const cmyk = await decodeImage(fx('cmyk.jpg'));
  assertRgb(cmyk);
  assert.equal(cmyk.format, 'jpeg');
  // CMYK round trip through libvips' profile is not exact; the hue must survive.
  const r = at(cmyk, 2, 8);
  const b = at(cmyk, 29, 8);
  assert.ok(r[0]! > 180 && r[1]! < 80 && r[2]! < 80, `cmyk red ${r}`);
  assert.ok(b[2]! > 120 && b[2]! > b[0]! + 60 && b[2]! > b[1]! + 60, `cmyk blue ${b}`);
});

test('EXIF orientation 6 is applied: 32x16 stored -> 16x32, red half on top', async () => {
  const plain = await decodeImage(fx('rgb.jpg'));
  assert.deepEqual([plain.width, plain.height], [32, 16]);
  const img = await decodeImage(fx('exif6.jpg'));
  assertRgb(img);
  assert.deepEqual([img.width, img.height], [16, 32]);
  near(at(img, 8, 3), [255, 0, 0], 12, 'top is red');
  near(at(img, 8, 28), [0, 0, 255], 12, 'bottom is blue');
});

test('animated gif: first frame only', async () => {
  const img = await decodeImage(fx('animated.gif'));
  assertRgb(img);
  assert.deepEqual([img.width, img.height], [4, 4]);
  assert.deepEqual(at(img, 1, 1), [255, 0, 0]);
});

// ---- decodeImage: hazards ------------------------------------------------------------------

test('decompression bomb (74-byte PNG declaring 100000x100000) is refused fast, naming the limit', async () => {
  const t0 = performance.now();
  await assert.rejects(decodeImage(fx('bomb.png')), (e: Error) => /maxPixels=33554432/.test(e.message) && /decodeImage/.test(e.message));
  assert.ok(performance.now() - t0 < 200, 'refused from the header');
  // A header just over a project-chosen cap (4097x4096 vs 4096^2) is refused by our own check too.
  await assert.rejects(decodeImage(fx('bomb_4097.png'), { limits: { maxPixels: 4096 * 4096 } }), /decodeImage: image exceeds the limit maxPixels=16777216/);
  // SVG is not an accepted format by default; a huge SVG is refused either way.
  await assert.rejects(decodeImage(fx('bomb.svg')), /maxPixels|unsupported image format 'svg'/);
  await assert.rejects(decodeImage(fx('small.svg')), /unsupported image format 'svg' \(allowed: jpeg, png, webp, gif, tiff\)/);
  const svg = await decodeImage(fx('small.svg'), { formats: ['svg'] });
  assert.deepEqual([svg.width, svg.height], [4, 4]);
});

test('byte limit is checked before reading, for paths and buffers', async () => {
  await assert.rejects(decodeImage(fx('rgb.png'), { limits: { maxBytes: 100 } }), /file is 199 bytes, over the limit maxBytes=100/);
  await assert.rejects(decodeImage(readFileSync(fx('rgb.png')), { limits: { maxBytes: 100 } }), /input is 199 bytes, over the limit maxBytes=100/);
  await assert.rejects(decodeImage(fx('rgb.png'), { limits: { maxBytes: 0 } }), /limit maxBytes must be a positive integer/);
});

test('truncated and corrupt files give clear errors; lenient mode is opt-in', async () => {
  await assert.rejects(decodeImage(fx('truncated.png')), /decodeImage: corrupt or truncated image data/);
  await assert.rejects(decodeImage(fx('truncated.jpg')), /decodeImage: corrupt or truncated image data/);
  await assert.rejects(decodeImage(fx('corrupt.jpg')), /decodeImage: corrupt or truncated image data/);
  const lenient = await decodeImage(fx('truncated.jpg'), { failOn: 'none' });
  assert.deepEqual([lenient.width, lenient.height], [64, 64]);
  // Truncation at many cut points of a valid PNG: never accepted in strict mode, never a crash.
  // (Cuts inside the final 12-byte IEND chunk are accepted by libpng: all pixel data is present.)
  const png = readFileSync(fx('rgb.png'));
  for (let cut = 1; cut < png.length - 12; cut += 3) await assert.rejects(decodeImage(png.subarray(0, cut)), /decodeImage:/);
});

test('non-image, empty and missing inputs', async () => {
  await assert.rejects(decodeImage(fx('not_image.txt')), /decodeImage: unsupported or unrecognised image format/);
  await assert.rejects(decodeImage(Buffer.alloc(0)), /input is empty/);
  await assert.rejects(decodeImage(fx('no_such_file.png')), /decodeImage: cannot read/);
  await assert.rejects(decodeImage(dir), /not a regular file/);
});

// ---- data URLs -----------------------------------------------------------------------------

test('parseDataUrl: good, bad base64, wrong media type, oversized', async () => {
  const png = readFileSync(fx('rgb.png'));
  const url = `data:image/png;base64,${png.toString('base64')}`;
  const got = parseDataUrl(url);
  assert.equal(got.mediaType, 'image/png');
  assert.ok(got.data.equals(png));
  assert.equal((await decodeImage(got.data)).width, 7);
  assert.equal(parseDataUrl(`DATA:Image/PNG;charset=x;base64,${png.toString('base64')}`).mediaType, 'image/png');
  assert.throws(() => parseDataUrl('data:image/png;base64,abc'), /not a multiple of 4/);
  assert.throws(() => parseDataUrl('data:image/png;base64,ab$d'), /not valid base64/);
  assert.throws(() => parseDataUrl('data:image/png;base64,a=bc'), /not valid base64/);
  assert.throws(() => parseDataUrl('data:image/png;base64,ab cd'), /not a multiple of 4|not valid base64/);
  assert.throws(() => parseDataUrl('data:image/png;base64,'), /empty payload/);
  assert.throws(() => parseDataUrl('data:image/png,rawtext'), /only base64/);
  assert.throws(() => parseDataUrl('data:text/html;base64,PGI+'), /media type 'text\/html' is not accepted/);
  assert.throws(() => parseDataUrl('data:image/svg+xml;base64,PGI+'), /media type 'image\/svg\+xml' is not accepted/);
  assert.throws(() => parseDataUrl('data:;base64,PGI+'), /media type '\(none\)'/);
  assert.throws(() => parseDataUrl('https://example.com/a.png'), /not a data URL/);
  assert.throws(() => parseDataUrl('data:image/png;base64PGI+'), /only base64|missing ','/);
  assert.throws(() => parseDataUrl(url, { maxBytes: 100 }), /over the limit maxBytes=100/);
  // The size check runs before decoding: a huge payload is refused without allocating it.
  assert.throws(() => parseDataUrl(`data:image/png;base64,${'A'.repeat(40_000_000)}`), new RegExp(`maxBytes=${DEFAULT_IMAGE_LIMITS.maxBytes}`));
});

// ---- preprocessing -------------------------------------------------------------------------

function solid(w: number, h: number, rgb: [number, number, number]): RgbImage {
  const data = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set(rgb.map((v) => v / 255), i * 3);
  return { width: w, height: h, data };
}

test('pad-to-square geometry and CLIP-mean fill', () => {
  assert.deepEqual(meanFill(CLIP_MEAN).map(u8), [122, 116, 104]);
  const wide = padToSquare(solid(6, 3, [255, 0, 0])); // offset (6-3)//2 = 1 row on top, 2 below
  assert.deepEqual([wide.width, wide.height], [6, 6]);
  for (let x = 0; x < 6; x++) {
    assert.deepEqual(at(wide, x, 0), [122, 116, 104]);
    for (const y of [1, 2, 3]) assert.deepEqual(at(wide, x, y), [255, 0, 0]);
    for (const y of [4, 5]) assert.deepEqual(at(wide, x, y), [122, 116, 104]);
  }
  const tall = padToSquare(solid(2, 5, [0, 255, 0]), [0, 0, 0]); // 1 column left, 2 right
  assert.deepEqual([tall.width, tall.height], [5, 5]);
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => at(tall, x, 2)[1]), [0, 255, 255, 0, 0]);
  const sq = solid(3, 3, [1, 2, 3]);
  assert.deepEqual(padToSquare(sq).data, sq.data);
});

test('crop region, centre crop and resize-and-pad (AnyRes) geometry', () => {
  const img: RgbImage = { width: 4, height: 3, data: new Float32Array(36).map((_, i) => Math.floor(i / 3) / 255) };
  const r = cropRegion(img, { x: 2, y: 1, w: 3, h: 3 }, [1, 1, 1]);
  assert.deepEqual([0, 1, 2].map((x) => at(r, x, 0)[0]), [6, 7, 255]);
  assert.deepEqual(at(r, 0, 2), [255, 255, 255]);
  const c = centerCrop(img, 2, 1); // offsets floor(2/2)=1, floor(2/2)=1
  assert.deepEqual([at(c, 0, 0)[0], at(c, 1, 0)[0]], [5, 6]);
  // SPEC §4.3: 800x600 into 672x672 -> 672x504, 84 rows of black above and below.
  const big = resizeAndPad(solid(800, 600, [255, 255, 255]), 672, 672);
  assert.deepEqual([big.width, big.height], [672, 672]);
  assert.deepEqual(at(big, 300, 83), [0, 0, 0]);
  assert.deepEqual(at(big, 300, 84), [255, 255, 255]);
  assert.deepEqual(at(big, 300, 587), [255, 255, 255]);
  assert.deepEqual(at(big, 300, 588), [0, 0, 0]);
  // Tall: 300x1000 into 336x672 -> height 672, width min(ceil(300*672/1000), 336) = 202, x offset 67.
  const t = resizeAndPad(solid(300, 1000, [255, 255, 255]), 336, 672);
  assert.deepEqual([at(t, 66, 10)[0], at(t, 67, 10)[0], at(t, 268, 10)[0], at(t, 269, 10)[0]], [0, 255, 255, 0]);
  const s = resizeShortestEdge(solid(10, 7, [0, 0, 0]), 5); // long = int(5*10/7) = 7
  assert.deepEqual([s.width, s.height], [7, 5]);
  assert.throws(() => cropRegion(img, { x: 0.5, y: 0, w: 1, h: 1 }), /offsets must be integers/);
  assert.throws(() => resizeBicubic(img, 0, 3), /target size must be positive integers/);
  assert.throws(() => padToSquare({ width: 4, height: 3, data: new Float32Array(35) }), /36 values, got 35/);
});

test('bicubic resize matches Pillow Image.resize(BICUBIC) bit-exactly', () => {
  const g = JSON.parse(readFileSync(fx('pil_golden.json'), 'utf8')) as { width: number; height: number; cases: Array<{ op: string; w: number; h: number; b64: string }> };
  const { width: W, height: H } = g;
  const data = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
    data[(y * W + x) * 3 + c] = ((x * 37 + y * 11 + c * 71 + x * y * 13) % 256) / 255;
  }
  const img: RgbImage = { width: W, height: H, data };
  assert.ok(g.cases.length >= 7);
  for (const cs of g.cases) {
    const want = Buffer.from(cs.b64, 'base64');
    const got = cs.op === 'resize' ? resizeBicubic(img, cs.w, cs.h) : resizeBicubic(padToSquare(img), cs.w, cs.h);
    assert.deepEqual([got.width, got.height], [cs.w, cs.h]);
    const mism = Array.from(got.data).filter((v, i) => u8(v) !== want[i]).length;
    assert.equal(mism, 0, `${cs.op} -> ${cs.w}x${cs.h}: ${mism} of ${want.length} samples differ from Pillow`);
  }
  // Unquantised resize (float, no clamping, like PIL mode 'F' / torch) stays within rounding of the 8-bit one.
  const smooth: RgbImage = { width: W, height: H, data: data.map((_, i) => ((Math.floor(i / 3) % W) * 4 + Math.floor(i / 3 / W) * 5 + (i % 3) * 20) / 255) };
  const f = resizeBicubic(smooth, 50, 40, { quantize: false });
  const q = resizeBicubic(smooth, 50, 40);
  const worst = Math.max(...Array.from(f.data, (v, i) => Math.abs(v - q.data[i]!)));
  assert.ok(worst < 1.01 / 255, `float vs 8-bit resize differ by ${worst * 255}/255`);
  assert.ok(resizeBicubic(solid(9, 9, [7, 8, 9]), 4, 13).data.every((v, i) => u8(v) === [7, 8, 9][i % 3]));
});

test('normalisation values and CHW layout', () => {
  assert.deepEqual(CLIP_STD, [0.26862954, 0.26130258, 0.27577711]);
  const img: RgbImage = { width: 2, height: 1, data: new Float32Array([1, 0.5, 0, 0, 0, 1]) };
  const out = normalize(img, IMAGENET_MEAN, IMAGENET_STD); // [3, 1, 2]
  const want = [(1 - 0.485) / 0.229, (0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225, (1 - 0.406) / 0.225];
  want.forEach((v, i) => assert.ok(Math.abs(out[i]! - v) < 1e-6, `${i}: ${out[i]} vs ${v}`));
  // The CLIP-mean fill normalises to ~0 (within 1/255 of the mean, over std).
  const pad = normalize(solid(1, 1, [122, 116, 104]));
  pad.forEach((v) => assert.ok(Math.abs(v) < 0.02, `fill -> ${v}`));
  const t = toTensor(solid(3, 2, [0, 0, 0]));
  assert.deepEqual([...t.shape], [3, 2, 3]);
  assert.throws(() => normalize(img, CLIP_MEAN, [1, 0, 1]), /std must be/);
  // Pipelines: SPHINX and LLaVA-1.5 'pad' give [3, S, S].
  const src = solid(40, 10, [255, 0, 0]); // padded 15 rows above and below
  assert.equal(sphinxPreprocess(src, 16).length, 3 * 16 * 16);
  const lv = llavaPadPreprocess(src, 12);
  assert.equal(lv.length, 3 * 12 * 12);
  // Top-left corner is the pad colour (normalised ~0), the centre row is red.
  assert.ok(Math.abs(lv[0]!) < 0.02);
  assert.ok(Math.abs(lv[6 * 12 + 6]! - (1 - CLIP_MEAN[0]) / CLIP_STD[0]) < 1e-5);
});
