// Writes data/fashion-mnist/subset-{images-idx3,labels-idx1}-ubyte.gz: the first PER_CLASS
// training images of each of the 10 classes of Fashion-MNIST (Zalando SE, MIT licence), in the
// dataset's own gzip'd IDX format, so src/data/fashion.ts reads the subset and the full set alike.
// Usage: node scripts/make_fashion_subset.mjs [SRC_DIR] [PER_CLASS]
// SRC_DIR defaults to /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist;
// without root: `apt-get download dataset-fashion-mnist && dpkg -x *.deb x`, then x/usr/share/...).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

const src = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const perClass = Number(process.argv[3] ?? 100);
const out = new URL('../data/fashion-mnist/', import.meta.url).pathname;

function idx(file, magic) {
  const b = gunzipSync(readFileSync(join(src, file)));
  if (b.readUInt32BE(0) !== magic) throw new Error(`${file}: bad magic ${b.readUInt32BE(0).toString(16)}`);
  return b;
}
const img = idx('train-images-idx3-ubyte.gz', 0x803);
const lab = idx('train-labels-idx1-ubyte.gz', 0x801);
const n = img.readUInt32BE(4), rows = img.readUInt32BE(8), cols = img.readUInt32BE(12);
if (lab.readUInt32BE(4) !== n) throw new Error('image and label counts differ');
const count = new Array(10).fill(0), picked = [];
for (let i = 0; i < n && picked.length < 10 * perClass; i++) {
  const c = lab[8 + i];
  if (count[c] < perClass) { count[c]++; picked.push(i); }
}
const px = rows * cols;
const imgOut = Buffer.alloc(16 + picked.length * px), labOut = Buffer.alloc(8 + picked.length);
imgOut.writeUInt32BE(0x803, 0); imgOut.writeUInt32BE(picked.length, 4); imgOut.writeUInt32BE(rows, 8); imgOut.writeUInt32BE(cols, 12);
labOut.writeUInt32BE(0x801, 0); labOut.writeUInt32BE(picked.length, 4);
picked.forEach((i, k) => { img.copy(imgOut, 16 + k * px, 16 + i * px, 16 + (i + 1) * px); labOut[8 + k] = lab[8 + i]; });
mkdirSync(out, { recursive: true });
// mtime 0 in the gzip header keeps the output byte-identical across runs.
writeFileSync(join(out, 'subset-images-idx3-ubyte.gz'), gzipSync(imgOut, { level: 9 }));
writeFileSync(join(out, 'subset-labels-idx1-ubyte.gz'), gzipSync(labOut, { level: 9 }));
console.log(JSON.stringify({ images: picked.length, per_class: perClass, source_indices_max: picked[picked.length - 1] }));
