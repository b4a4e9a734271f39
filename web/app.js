// Chimera playground: plain browser JavaScript, no build step, no external resources.
// Talks to the same server: /v1/chimera/info, /v1/chimera/plan, /v1/chat/completions (SSE).
// Grounding boxes [x1, y1, x2, y2] with values in [0, 1] are normalised by the padded square
// side S = max(W, H) with the image centred on it (SPEC §1.11): pixel x = v * S - (S - W) / 2.

const $ = (id) => document.getElementById(id);
const canvas = $('canvas');
const ctx = canvas.getContext('2d');
const VIEW_COLOURS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
export const BOX_COLOUR = '#ff00ff';

const state = {
  info: null,
  messages: [],
  /** The image waiting for the next user message: {dataUrl, img, w, h}. */
  pending: null,
  /** The image shown on the canvas (the last one sent or pending). */
  shown: null,
  views: [],
  boxes: [],
  controller: null,
  /** Canvas mapping: canvas = (image px - origin) * scale. */
  origin: [0, 0],
  scale: 1,
};
// For tests and debugging.
window.chimera = state;
window.chimera.toCanvas = (x, y) => [(x - state.origin[0]) * state.scale, (y - state.origin[1]) * state.scale];

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = $('api_key').value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function apiError(res) {
  try {
    const j = await res.json();
    return j.error ? `${res.status}: ${j.error.message}` : `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

async function loadInfo() {
  const status = $('status');
  try {
    const h = await fetch('/health');
    if (h.status !== 200) {
      status.textContent = h.status === 503 ? 'loading model…' : `health ${h.status}`;
      status.className = 'status';
      setTimeout(loadInfo, 1000);
      return;
    }
    const r = await fetch('/v1/chimera/info', { headers: headers() });
    if (!r.ok) throw new Error(await apiError(r));
    state.info = await r.json();
    $('model').textContent = `model: ${state.info.id}${state.info.preset ? ` (${state.info.preset})` : ''} · context ${state.info.max_positions} · images ≤ ${state.info.max_images}`;
    $('max_tokens').value = String(Math.min(Number($('max_tokens').value), state.info.limits.max_tokens));
    status.textContent = 'ready';
    status.className = 'status ok';
  } catch (e) {
    status.textContent = `error: ${e.message}`;
    status.className = 'status bad';
  }
}

// ---- image in, tiling overlay, boxes --------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = () => reject(fr.error);
    fr.readAsDataURL(file);
  });
}

async function setImage(file) {
  if (!file || !file.type.startsWith('image/')) return note(`not an image: ${file ? file.type || file.name : 'nothing'}`, 'error');
  const dataUrl = await readFile(file);
  const img = new Image();
  img.src = dataUrl;
  await img.decode();
  state.pending = { dataUrl, img, w: img.naturalWidth, h: img.naturalHeight };
  state.shown = state.pending;
  state.boxes = [];
  await refreshPlan();
}

async function refreshPlan() {
  state.views = [];
  $('plan-info').textContent = '';
  const im = state.shown;
  if (im) {
    const detail = $('detail').value;
    try {
      const r = await fetch(`/v1/chimera/plan?w=${im.w}&h=${im.h}&detail=${detail}`, { headers: headers() });
      if (!r.ok) throw new Error(await apiError(r));
      const plan = await r.json();
      state.views = plan.views;
      $('plan-info').textContent = `${im.w}×${im.h}: ${plan.views.length} view${plan.views.length === 1 ? '' : 's'}, ${plan.positions} LLM positions (detail ${plan.detail})`;
    } catch (e) {
      $('plan-info').textContent = `no tiling: ${e.message}`;
    }
  }
  draw();
}

/** Boxes [x1, y1, x2, y2] with every value in [0, 1] and x1 <= x2, y1 <= y2. */
export function parseBoxes(text) {
  const out = [];
  const num = '\\s*(\\d*\\.?\\d+(?:[eE][-+]?\\d+)?)\\s*';
  const re = new RegExp(`\\[${num},${num},${num},${num}\\]`, 'g');
  for (const m of text.matchAll(re)) {
    const b = m.slice(1, 5).map(Number);
    if (b.every((v) => v >= 0 && v <= 1) && b[0] <= b[2] && b[1] <= b[3]) out.push(b);
  }
  return out;
}

/** Normalised box -> image pixels (padded-square convention). */
export function boxToPixels(b, W, H) {
  const S = Math.max(W, H), ox = (S - W) / 2, oy = (S - H) / 2;
  return [b[0] * S - ox, b[1] * S - oy, b[2] * S - ox, b[3] * S - oy];
}

function draw() {
  const im = state.shown;
  if (!im) {
    canvas.width = 512; canvas.height = 384;
    ctx.fillStyle = '#eee';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    $('drop-hint').hidden = false;
    renderBoxList();
    return;
  }
  $('drop-hint').hidden = false;
  // The canvas covers the image and every view region (regions may extend past the image).
  let x0 = 0, y0 = 0, x1 = im.w, y1 = im.h;
  const views = $('show-views').checked ? state.views : [];
  for (const v of views) {
    x0 = Math.min(x0, v.region.x); y0 = Math.min(y0, v.region.y);
    x1 = Math.max(x1, v.region.x + v.region.w); y1 = Math.max(y1, v.region.y + v.region.h);
  }
  const scale = Math.min(512 / (x1 - x0), 512 / (y1 - y0));
  canvas.width = Math.round((x1 - x0) * scale);
  canvas.height = Math.round((y1 - y0) * scale);
  state.origin = [x0, y0];
  state.scale = scale;
  const T = window.chimera.toCanvas;
  ctx.fillStyle = '#ddd';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const [ix, iy] = T(0, 0);
  ctx.drawImage(im.img, ix, iy, im.w * scale, im.h * scale);
  views.forEach((v, i) => {
    const [vx, vy] = T(v.region.x, v.region.y);
    const inset = v.cell ? 0 : 3;
    ctx.strokeStyle = VIEW_COLOURS[i % VIEW_COLOURS.length];
    ctx.lineWidth = 2;
    ctx.setLineDash(v.cell ? [] : [8, 4]);
    ctx.strokeRect(vx + inset, vy + inset, v.region.w * scale - 2 * inset, v.region.h * scale - 2 * inset);
    ctx.setLineDash([]);
    ctx.fillStyle = VIEW_COLOURS[i % VIEW_COLOURS.length];
    ctx.font = '12px sans-serif';
    ctx.fillText(`${v.name} ${v.size[0]}×${v.size[1]}`, vx + 5, vy + (v.cell ? 14 : 28));
  });
  if ($('show-boxes').checked) {
    ctx.strokeStyle = BOX_COLOUR;
    ctx.lineWidth = 3;
    for (const b of state.boxes) {
      const [px1, py1, px2, py2] = boxToPixels(b, im.w, im.h);
      const [cx1, cy1] = T(px1, py1), [cx2, cy2] = T(px2, py2);
      ctx.strokeRect(cx1, cy1, cx2 - cx1, cy2 - cy1);
    }
  }
  renderBoxList();
}

function renderBoxList() {
  const ul = $('boxes');
  ul.textContent = '';
  const im = state.shown;
  for (const b of state.boxes) {
    const li = document.createElement('li');
    li.dataset.box = JSON.stringify(b);
    const px = im ? boxToPixels(b, im.w, im.h).map((v) => Math.round(v)) : [];
    li.textContent = `[${b.join(', ')}]${im ? ` → pixels (${px[0]}, ${px[1]})–(${px[2]}, ${px[3]})` : ''}`;
    ul.appendChild(li);
  }
}

// ---- chat -----------------------------------------------------------------------------------

function note(text, cls) {
  const div = document.createElement('div');
  div.className = `msg ${cls}`;
  div.textContent = text;
  $('log').appendChild(div);
  $('log').scrollTop = $('log').scrollHeight;
  return div;
}

function addMessage(role, text, img) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Chimera';
  div.appendChild(who);
  if (img) {
    const t = document.createElement('img');
    t.src = img.dataUrl;
    t.alt = 'attached image';
    div.appendChild(t);
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  div.appendChild(body);
  $('log').appendChild(div);
  $('log').scrollTop = $('log').scrollHeight;
  return body;
}

function numberField(id) {
  const v = $(id).value.trim();
  return v === '' ? undefined : Number(v);
}

async function send(text) {
  if (state.controller) return;
  const content = [];
  const img = state.pending;
  if (img) content.push({ type: 'image_url', image_url: { url: img.dataUrl, detail: $('detail').value } });
  content.push({ type: 'text', text });
  const userMsg = { role: 'user', content: img ? content : text };
  addMessage('user', text, img);
  const out = addMessage('assistant', '');
  out.parentElement.classList.add('streaming');
  const body = {
    model: state.info ? state.info.id : undefined,
    messages: [...state.messages, userMsg],
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberField('temperature'),
    top_p: numberField('top_p'),
    max_tokens: numberField('max_tokens'),
    seed: numberField('seed'),
  };
  state.controller = new AbortController();
  $('send').disabled = true;
  $('stop').disabled = false;
  $('usage').textContent = '';
  const t0 = performance.now();
  let firstAt = null, answer = '', finish = null, usage = null, timings = null;
  try {
    const res = await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: state.controller.signal });
    if (!res.ok) throw new Error(await apiError(res));
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          const ch = j.choices && j.choices[0];
          if (ch && ch.delta && ch.delta.content) {
            firstAt ??= performance.now();
            answer += ch.delta.content;
            out.textContent = answer;
            state.boxes = parseBoxes(answer);
            draw();
          }
          if (ch && ch.finish_reason) finish = ch.finish_reason;
          if (j.usage) { usage = j.usage; timings = j.timings; }
        }
      }
    }
    state.messages.push(userMsg, { role: 'assistant', content: answer });
    if (img) state.pending = null;
    const total = performance.now() - t0;
    const parts = [`finish: ${finish ?? '?'}`, `total ${total.toFixed(0)} ms`];
    if (firstAt !== null) parts.push(`first token ${(firstAt - t0).toFixed(0)} ms`);
    if (usage) parts.push(`tokens: ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion`);
    if (timings) parts.push(`prefill ${timings.prefill_ms} ms, decode ${timings.decode_tokens_per_second} tok/s, images ${timings.image_ms} ms, queue ${timings.queue_ms} ms`);
    $('usage').textContent = parts.join(' · ');
    $('usage').dataset.finish = finish ?? '';
  } catch (e) {
    if (e.name === 'AbortError') note('(stopped)', 'error');
    else note(`error: ${e.message}`, 'error');
  } finally {
    out.parentElement.classList.remove('streaming');
    out.parentElement.dataset.done = '1';
    state.controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

// ---- wiring ---------------------------------------------------------------------------------

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text) return;
  $('prompt').value = '';
  send(text);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('form').requestSubmit();
  }
});
$('stop').addEventListener('click', () => state.controller && state.controller.abort());
$('reset').addEventListener('click', () => {
  state.messages = [];
  state.boxes = [];
  state.pending = state.shown;
  $('log').textContent = '';
  $('usage').textContent = '';
  draw();
});
$('clear-image').addEventListener('click', () => {
  state.pending = null;
  state.shown = null;
  state.views = [];
  state.boxes = [];
  $('plan-info').textContent = '';
  draw();
});
$('file').addEventListener('change', (e) => setImage(e.target.files[0]));
$('detail').addEventListener('change', refreshPlan);
$('show-views').addEventListener('change', draw);
$('show-boxes').addEventListener('change', draw);
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  setImage(e.dataTransfer.files[0]);
});
document.addEventListener('paste', (e) => {
  const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((it) => it.type.startsWith('image/'));
  if (item) setImage(item.getAsFile());
});
window.chimera.setImage = setImage;
draw();
loadInfo();
