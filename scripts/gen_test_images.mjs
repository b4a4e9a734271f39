// Writes the small image fixtures for test/image.test.ts into test/fixtures/images/ (run: node scripts/gen_test_images.mjs).
// Deterministic: pixel content is computed, bombs are hand-built PNG chunks with correct CRCs.
import sharp from 'sharp';
import { crc32, deflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';

const dir = new URL('../test/fixtures/images/', import.meta.url).pathname;
mkdirSync(dir, { recursive: true });
const put = (name, buf) => writeFileSync(dir + name, buf);

// 32x16 RGB: left half red (255,0,0), right half blue (0,0,255). Survives JPEG well; rotation is visible.
const W = 32, H = 16;
const halves = Buffer.alloc(W * H * 3);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
  const o = (y * W + x) * 3;
  if (x < W / 2) halves[o] = 255; else halves[o + 2] = 255;
}
const raw = (buf, w, h, channels) => sharp(buf, { raw: { width: w, height: h, channels } });

// 7x5 RGB with exact known values v = (x*37 + y*11 + c*71) % 256 (lossless formats compare exactly).
const pw = 7, ph = 5;
const pat = Buffer.alloc(pw * ph * 3);
for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) for (let c = 0; c < 3; c++) pat[(y * pw + x) * 3 + c] = (x * 37 + y * 11 + c * 71) % 256;
put('rgb.png', await raw(pat, pw, ph, 3).png().toBuffer());
put('palette.png', await raw(halves, W, H, 3).png({ palette: true, colours: 4 }).toBuffer());
put('rgb16.png', await raw(pat, pw, ph, 3).toColourspace('rgb16').png().toBuffer());

// grey 8-bit: value (x*37 + y*11) % 256; grey+alpha: grey 200, alpha 0 on left half, 255 on right.
const g = Buffer.alloc(pw * ph);
for (let i = 0; i < pw * ph; i++) g[i] = ((i % pw) * 37 + Math.floor(i / pw) * 11) % 256;
put('grey.png', await raw(g, pw, ph, 1).toColourspace('b-w').png().toBuffer());
const ga = Buffer.alloc(4 * 2 * 2);
for (let i = 0; i < 8; i++) { ga[i * 2] = 200; ga[i * 2 + 1] = i % 4 < 2 ? 0 : 255; }
put('grey_alpha.png', await raw(ga, 4, 2, 2).toColourspace('b-w').png().toBuffer());

// RGBA 4x2: left half (10,20,30) alpha 0, right half (10,20,30) alpha 255; middle-alpha pixel at (3,1): alpha 128.
const rgba = Buffer.alloc(4 * 2 * 4);
for (let i = 0; i < 8; i++) { rgba.set([10, 20, 30, i % 4 < 2 ? 0 : 255], i * 4); }
rgba[7 * 4 + 3] = 128;
put('rgba.png', await raw(rgba, 4, 2, 4).png().toBuffer());

put('cmyk.jpg', await raw(halves, W, H, 3).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer());
put('rgb.jpg', await raw(halves, W, H, 3).jpeg({ quality: 95 }).toBuffer());
// Stored 32x16 (red left); EXIF orientation 6 = display rotated 90 deg clockwise -> 16x32, red on top.
put('exif6.jpg', await raw(halves, W, H, 3).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer());

// Animated GIF, 2 frames of 4x4: frame 0 red, frame 1 blue.
const f0 = Buffer.alloc(48), f1 = Buffer.alloc(48);
for (let i = 0; i < 16; i++) { f0[i * 3] = 255; f1[i * 3 + 2] = 255; }
put('animated.gif', await sharp(Buffer.concat([f0, f1]), { raw: { width: 4, height: 8, channels: 3, pageHeight: 4 } }).gif({ loop: 0 }).toBuffer());

// Truncated PNG: first half of a 64x64 noise PNG (IDAT cut).
const noise = Buffer.alloc(64 * 64 * 3);
let s = 12345;
for (let i = 0; i < noise.length; i++) { s = (s * 1103515245 + 12345) >>> 0; noise[i] = s >>> 24; }
const noisePng = await raw(noise, 64, 64, 3).png().toBuffer();
put('truncated.png', noisePng.subarray(0, noisePng.length >> 1));
// Truncated JPEG: first half of a noise JPEG.
const noiseJpg = await raw(noise, 64, 64, 3).jpeg({ quality: 90 }).toBuffer();
put('truncated.jpg', noiseJpg.subarray(0, noiseJpg.length >> 1));
// Corrupt JPEG: SOI kept, every byte after it XOR 0x5A (no valid marker structure).
const corrupt = Buffer.from(noiseJpg.subarray(0, 600));
for (let i = 2; i < corrupt.length; i++) corrupt[i] ^= 0x5a;
put('corrupt.jpg', corrupt);

// Decompression bomb: 8-bit grey PNG declaring 100000x100000 (1e10 pixels) in a few dozen bytes.
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function bombPng(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 0; // bit depth 8, colour type grey; compression/filter/interlace 0
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}
put('bomb.png', bombPng(100000, 100000));
// Just over a 4096x4096 cap (4097x4096) for testing a project-chosen limit.
put('bomb_4097.png', bombPng(4097, 4096));
put('bomb.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="100%" height="100%" fill="red"/></svg>'));
put('small.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4" fill="red"/></svg>'));
put('not_image.txt', Buffer.from('this is not an image, just text\n'.repeat(4)));
