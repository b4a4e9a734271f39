// The web playground in headless Chromium (Debian's chromium through playwright-core): the page
// loads from the server, takes an image, shows the model's view tiling, streams the answer, and
// draws the answer's grounding boxes on the image (checked by reading canvas pixels).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startServer, type ChimeraServer } from '../src/serve/server.ts';
import { makePng, ScriptedChatModel, tmpDir } from './helpers/tiny-model.ts';

// Callbacks below run in the page; the project compiles without DOM typings.
declare const document: any;
declare const window: any;

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p)) ?? null;
const skip = CHROMIUM === null ? 'chromium is not installed (apt-get install -y chromium)' : false;

let browser: Browser | null = null;
const servers: ChimeraServer[] = [];
after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.shutdown(100)));
});

test('playground: image in, tiling overlay, streamed answer, boxes drawn on the image, usage shown', { skip }, async () => {
  const reply = 'The square is at [0.2, 0.4, 0.6, 0.6].';
  const m = new ScriptedChatModel({ reply, delayMs: 1 });
  const s = await startServer(m, { port: 0 });
  servers.push(s);
  await s.ready;
  browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  await page.goto(s.url);
  await page.waitForFunction(() => document.getElementById('status')!.textContent === 'ready');
  assert.match(await page.textContent('#model') ?? '', /scripted-tiny/);

  // A 200x100 image: padded square side 200, offset y 50.
  await page.setInputFiles('#file', { name: 'wide.png', mimeType: 'image/png', buffer: await makePng(200, 100, [40, 160, 40]) });
  await page.waitForFunction(() => /5 views, 20 LLM positions/.test(document.getElementById('plan-info')!.textContent ?? ''));

  await page.fill('#prompt', 'Where is the square?');
  await page.press('#prompt', 'Enter');
  await page.waitForSelector('#usage[data-finish="stop"]', { timeout: 15_000 });
  assert.equal(await page.textContent('.msg.assistant .text'), reply);
  assert.match(await page.textContent('#usage') ?? '', /tokens: \d+ prompt \+ \d+ completion/);
  assert.deepEqual(await page.$$eval('#boxes li', (els) => els.map((e) => JSON.parse((e as any).dataset['box']!))), [[0.2, 0.4, 0.6, 0.6]]);
  assert.match(await page.textContent('#boxes li') ?? '', /pixels \(40, 30\)–\(120, 70\)/);

  // The request carried the image (decoded server side at its real size) with the page's detail.
  const rec = m.prepared.at(-1)!;
  assert.deepEqual(rec.images.map((i) => [i.width, i.height, i.detail]), [[200, 100, 'high']]);

  // Canvas pixels: the box's left edge (image x=40, y=50) is magenta; inside the box the image shows.
  const px = await page.evaluate(() => {
    const c = document.getElementById('canvas') as any;
    const g = c.getContext('2d')!;
    const st = window.chimera;
    const at = (x: number, y: number): number[] => {
      const [cx, cy] = st.toCanvas(x, y);
      return [...g.getImageData(Math.round(cx), Math.round(cy), 1, 1).data];
    };
    return { edge: at(40, 50), centre: at(70, 40), views: st.views.length };
  });
  assert.equal(px.views, 5);
  assert.deepEqual(px.edge.slice(0, 3), [255, 0, 255], `box edge colour ${px.edge}`);
  assert.deepEqual(px.centre.slice(0, 3), [40, 160, 40], `inside the box the image shows (${px.centre})`);

  // Multi-turn: the second message sends the history, the image stays in the first turn.
  await page.fill('#prompt', 'And now?');
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant[data-done="1"]').length === 2);
  const second = m.prepared.at(-1)!;
  assert.equal(second.turns.length, 3);
  assert.equal(second.images.length, 1);

  const shot = await page.screenshot({ fullPage: true });
  assert.ok(shot.length > 10_000, `screenshot has content (${shot.length} bytes)`);
  fs.writeFileSync(path.join(tmpDir('chimera-playground-'), 'playground.png'), shot);
  assert.deepEqual(errors, []);
});
