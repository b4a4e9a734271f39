// Task templates (SPEC §1.11), SPHINX padded-square box encoding and the output parsers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/engine/rng.ts';
import {
  boxText, decodeBox, decodePoint, encodeBox, encodePoint, formatNormBox, formatNormBoxes, groundedText, iou, padOffsets,
  parseBoxes, parseBoxGroups, parseFirstBox, parseGrounded, parsePoints, TEMPLATES,
} from '../src/data/tasks.ts';
import type { Box } from '../src/data/types.ts';

test('templates match SPEC §1.11 exactly', () => {
  assert.equal(TEMPLATES.vqa('What colour is it?'), 'What colour is it?\nAnswer the question using a single word or phrase.');
  assert.equal(TEMPLATES.rec('the red circle'), 'Please provide the bounding box coordinate of the region this sentence describes: the red circle.');
  assert.equal(TEMPLATES.caption(), 'Provide a one-sentence caption for the provided image.');
  assert.equal(TEMPLATES.detailed_caption(), 'Generate a detailed description about the image.');
  assert.equal(TEMPLATES.grounded_caption(), 'Describe the image concisely. Include the bounding box for each mentioned object.');
  assert.equal(TEMPLATES.detection('dogs'), 'Detect all dogs shown in the image.');
  assert.equal(TEMPLATES.keypoints('[0.10, 0.20, 0.30, 0.40]'), 'Detect the key points of the person in the region [0.10, 0.20, 0.30, 0.40].');
  assert.equal(TEMPLATES.text_detection(), 'Please detect all texts and provide their bounding box coordinate.');
  assert.equal(TEMPLATES.vizwiz('Q?'), "Q? When the provided information is insufficient, respond with 'Unanswerable'.\nAnswer the question using a single word or phrase.");
});

test('padded-square encoding: offsets and a hand-computed box', () => {
  assert.deepEqual(padOffsets(640, 480), [0, 80]);
  assert.deepEqual(padOffsets(480, 641), [80, 0]); // (641-480)//2 = 80
  assert.deepEqual(padOffsets(5, 5), [0, 0]);
  // 640x480: y += 80, divide by 640.
  assert.deepEqual(encodeBox([64, 0, 320, 480], 640, 480), [0.1, 0.125, 0.5, 0.875]);
  assert.equal(boxText([64, 0, 320, 480], 640, 480), '[0.10, 0.13, 0.50, 0.88]');
  assert.equal(formatNormBoxes([[0, 0, 1, 1], [0.5, 0.25, 0.75, 1.2]]), '[0.00, 0.00, 1.00, 1.00; 0.50, 0.25, 0.75, 1.00]');
  assert.equal(groundedText('a cat', [[0, 0, 10, 10]], 10, 10), '<p>a cat</p> [0.00, 0.00, 1.00, 1.00]');
  assert.throws(() => encodeBox([0, 0, 1, 1], 0, 5), /image size/);
});

test('round trip encode -> text -> parse -> decode gives IoU 1 for any W,H', () => {
  const rng = new Rng(7);
  for (let t = 0; t < 500; t++) {
    const W = 1 + rng.int(3000), H = 1 + rng.int(3000);
    const x1 = rng.uniform() * W, x2 = x1 + rng.uniform() * (W - x1), y1 = rng.uniform() * H, y2 = y1 + rng.uniform() * (H - y1);
    const box: Box = [x1, y1, x2, y2];
    const nb = encodeBox(box, W, H);
    for (const v of nb) assert.ok(v >= 0 && v <= 1 + 1e-12);
    // Full precision: the parse is exact up to the printed digits.
    const back = decodeBox(parseFirstBox(formatNormBox(nb, 12))!, W, H);
    if (x2 - x1 > 1e-6 && y2 - y1 > 1e-6) assert.ok(Math.abs(iou(back, box) - 1) < 1e-6, `W=${W} H=${H}`);
    // Two decimals: the parsed box equals the rounded normalised box exactly.
    const p2 = parseFirstBox(formatNormBox(nb))!;
    p2.forEach((v, i) => assert.equal(v, Number(Math.min(1, nb[i]!).toFixed(2))));
    const pt = decodePoint(encodePoint([x1, y2], W, H), W, H);
    assert.ok(Math.abs(pt[0] - x1) < 1e-6 && Math.abs(pt[1] - y2) < 1e-6);
  }
  // Integer boxes of a square image survive 2 decimals exactly when they are multiples of S/100.
  assert.equal(iou(decodeBox(parseFirstBox(boxText([10, 20, 50, 90], 100, 100))!, 100, 100), [10, 20, 50, 90]), 1);
});

test('iou: hand cases', () => {
  assert.equal(iou([0, 0, 2, 2], [1, 1, 3, 3]), 1 / 7);
  assert.equal(iou([0, 0, 1, 1], [2, 2, 3, 3]), 0);
  assert.equal(iou([0, 0, 0, 0], [0, 0, 0, 0]), 0);
  assert.equal(iou([2, 2, 0, 0], [0, 0, 2, 2]), 1);
});

test('box parser tolerates spaces, ints, missing brackets, clamping, ; groups', () => {
  assert.deepEqual(parseFirstBox('[0.1,0.2,0.3,0.4]'), [0.1, 0.2, 0.3, 0.4]);
  assert.deepEqual(parseFirstBox('  [ 0.1 ,  0.2 ,0.3,   0.4 ] '), [0.1, 0.2, 0.3, 0.4]);
  assert.deepEqual(parseFirstBox('The box is 0.1, 0.2, 0.3, 0.4.'), [0.1, 0.2, 0.3, 0.4]);
  assert.deepEqual(parseFirstBox('[0.1, 0.2, 0.3, 0.4'), [0.1, 0.2, 0.3, 0.4]);
  assert.deepEqual(parseFirstBox('[0, 0, 1, 1]'), [0, 0, 1, 1]);
  assert.deepEqual(parseFirstBox('[0.5, 1.3, -0.2, 0.4]'), [0, 0.4, 0.5, 1]);
  assert.deepEqual(parseFirstBox('(.25, .5, .75, 1.)'), [0.25, 0.5, 0.75, 1]);
  assert.equal(parseFirstBox('no box here'), null);
  assert.equal(parseFirstBox('[0.1, 0.2, 0.3]'), null);
  assert.deepEqual(parseBoxGroups('[0.1, 0.1, 0.2, 0.2; 0.3, 0.3, 0.4, 0.4] and [0.5,0.5,0.6,0.6]'), [[[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4]], [[0.5, 0.5, 0.6, 0.6]]]);
  assert.equal(parseBoxes('[0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4]').length, 2);
});

test('points and grounded phrases', () => {
  assert.deepEqual(parsePoints('[0.1, 0.2] [0.3,0.4]'), [[0.1, 0.2], [0.3, 0.4]]);
  assert.deepEqual(parsePoints('[0.1, 0.2; 0.3, 0.4]'), [[0.1, 0.2], [0.3, 0.4]]);
  const g = parseGrounded('<p>A red circle</p> [0.10, 0.20, 0.30, 0.40] and <p>two dogs</p> [0.5,0.5,0.6,0.6;0.7,0.7,0.8,0.8] near <p>nothing</p>.');
  assert.equal(g.length, 3);
  assert.deepEqual(g[0], { phrase: 'A red circle', boxes: [[0.1, 0.2, 0.3, 0.4]], points: [] });
  assert.equal(g[1]!.boxes.length, 2);
  assert.deepEqual(g[2], { phrase: 'nothing', boxes: [], points: [] });
  const k = parseGrounded('<p>top</p> [0.50, 0.10] <p>centre</p> [0.5, 0.5]');
  assert.deepEqual(k.map((x) => x.points), [[[0.5, 0.1]], [[0.5, 0.5]]]);
});
