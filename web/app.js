// Pixel Info web app: Caption, Query and Info tabs over the HTTP API (see /openapi.json). Plain ES module, no build.
import { heatmapRgba } from './heatmap.js';

const $ = (id) => document.getElementById(id);
const MAX_VIEW_SIDE = 720;

// --- tabs (WAI-ARIA tabs pattern: roving tabindex, arrows/Home/End, automatic activation) ---------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];
const onTabShown = { query: () => searchLibrary($('search').value, { quiet: true }), info: () => loadModelCard() };

function selectTab(tab, { focus = false } = {}) {
  for (const t of tabs) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !selected;
  }
  if (focus) tab.focus();
  const name = tab.id.replace('tab-', '');
  history.replaceState(null, '', name === 'caption' ? location.pathname : `#${name}`);
  onTabShown[name]?.();
}

for (const tab of tabs) {
  tab.addEventListener('click', () => selectTab(tab));
  tab.addEventListener('keydown', (event) => {
    const i = tabs.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(tabs[(next + tabs.length) % tabs.length], { focus: true });
  });
}

// --- API ----------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function api(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError('NETWORK', 'The server could not be reached.', 0);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const retry = response.headers.get('retry-after');
    const message = body?.error?.message ?? `HTTP ${response.status}`;
    throw new ApiError(body?.error?.code ?? `HTTP_${response.status}`, retry ? `${message} (retry in ${retry} s)` : message, response.status);
  }
  return body;
}

// --- Caption tab --------------------------------------------------------------------------------------------------

const state = {
  file: null,
  bitmap: null,
  result: null,
  selected: 0,
  busy: false,
};

const view = $('view');
const ctx = view.getContext('2d');
const overlay = document.createElement('canvas');
const dropzone = $('dropzone');
const fileInput = $('file');

function setStatus(text, { busy = false, el = $('status') } = {}) {
  el.textContent = text;
  el.classList.toggle('busy', busy);
}

function showError(err) {
  const box = $('error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.textContent = '';
  const code = document.createElement('code');
  code.textContent = err.code ?? 'ERROR';
  box.append(code, ` ${err.message}`);
}

function updateButtons() {
  const hasImage = Boolean(state.file);
  $('captionize').disabled = !hasImage || state.busy;
  $('refresh').disabled = !state.result || state.busy;
  $('clear').disabled = !hasImage || state.busy;
  $('copy').disabled = !state.result;
  $('speak').disabled = !state.result || !('speechSynthesis' in window);
}

async function setImage(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith('image/')) {
    showError({ code: 'NOT_AN_IMAGE', message: `${file.name || 'The file'} is not an image (${file.type}).` });
    return;
  }
  showError(null);
  state.file = file;
  state.result = null;
  state.bitmap?.close?.();
  state.bitmap = null;
  renderResult();
  $('file-name').textContent = file.name ? `${file.name} · ${formatBytes(file.size)}` : `Pasted image · ${formatBytes(file.size)}`;
  try {
    state.bitmap = await createImageBitmap(file);
    // Drawn at MAX_VIEW_SIDE on the longer side (small images scaled up, big ones down); CSS fits it to the card.
    const scale = MAX_VIEW_SIDE / Math.max(state.bitmap.width, state.bitmap.height);
    view.width = Math.max(1, Math.round(state.bitmap.width * scale));
    view.height = Math.max(1, Math.round(state.bitmap.height * scale));
    dropzone.dataset.state = 'loaded';
    drawView(null);
  } catch {
    dropzone.dataset.state = 'empty';
    setStatus('This browser cannot preview the image, but it can still be captioned.');
  }
  view.setAttribute('aria-label', `Image ${file.name || 'pasted from the clipboard'}`);
  updateButtons();
  $('captionize').focus();
}

function clearAll() {
  state.file = null;
  state.result = null;
  state.bitmap?.close?.();
  state.bitmap = null;
  fileInput.value = '';
  dropzone.dataset.state = 'empty';
  view.setAttribute('aria-label', 'No image yet');
  $('file-name').textContent = '';
  showError(null);
  setStatus('');
  renderResult();
  updateButtons();
  $('choose').focus();
}

/** The image, with the heat-map of word `index` of the selected caption over it when index is a number. */
function drawView(index) {
  if (!state.bitmap) return;
  ctx.clearRect(0, 0, view.width, view.height);
  ctx.drawImage(state.bitmap, 0, 0, view.width, view.height);
  const caption = state.result?.captions[state.selected];
  const grid = index === null ? undefined : caption?.attention?.[index];
  if (!grid) return;
  // The heat-map is computed at up to 360 px and scaled up by the canvas (smooth already: it is bilinear).
  const scale = Math.min(1, 360 / Math.max(view.width, view.height));
  overlay.width = Math.max(1, Math.round(view.width * scale));
  overlay.height = Math.max(1, Math.round(view.height * scale));
  const octx = overlay.getContext('2d');
  octx.putImageData(new ImageData(heatmapRgba(grid, overlay.width, overlay.height), overlay.width, overlay.height), 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(overlay, 0, 0, view.width, view.height);
}

function showWord(index) {
  const words = [...document.querySelectorAll('#caption .word')];
  words.forEach((w, i) => w.classList.toggle('active', i === index));
  drawView(index);
  const caption = state.result?.captions[state.selected];
  view.setAttribute(
    'aria-label',
    index === null || !caption ? `Image ${state.file?.name ?? ''}`.trim() : `Attention of the word "${caption.tokens[index]}" over the image`,
  );
}

async function captionize() {
  if (!state.file || state.busy) return;
  state.busy = true;
  updateButtons();
  showError(null);
  setStatus('Captioning…', { busy: true });
  const beam = Number($('beam').value);
  const nbest = Math.min(Number($('nbest').value), beam);
  const form = new FormData();
  form.append('image', state.file, state.file.name || 'pasted-image');
  try {
    const result = await api(`/v1/captions?beam=${beam}&nbest=${nbest}&attention=true`, { method: 'POST', body: form });
    state.result = result;
    state.selected = 0;
    setStatus('');
    renderResult();
    drawView(null);
    scoreReferences();
  } catch (err) {
    setStatus('');
    showError(err);
  } finally {
    state.busy = false;
    updateButtons();
  }
}

function renderResult() {
  const captionEl = $('caption');
  const alternatives = $('alternatives');
  captionEl.textContent = '';
  alternatives.textContent = '';
  $('timings').textContent = '';
  const result = state.result;
  $('word-hint').hidden = !result;
  if (!result) {
    captionEl.className = 'caption placeholder';
    captionEl.textContent = state.file ? 'Press Captionize to describe this image.' : 'Choose an image and press Captionize.';
    $('scores').hidden = true;
    updateButtons();
    return;
  }
  const caption = result.captions[state.selected];
  captionEl.className = 'caption';
  caption.tokens.forEach((token, i) => {
    const word = document.createElement('button');
    word.type = 'button';
    word.className = 'word';
    word.textContent = token;
    word.dataset.index = String(i);
    word.setAttribute('aria-describedby', 'word-hint');
    word.addEventListener('mouseenter', () => showWord(i));
    word.addEventListener('focus', () => showWord(i));
    word.addEventListener('mouseleave', () => document.activeElement !== word && showWord(null));
    word.addEventListener('blur', () => showWord(null));
    word.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      captionEl.querySelectorAll('.word')[Math.min(caption.tokens.length - 1, Math.max(0, i + step))]?.focus();
    });
    captionEl.append(word);
  });

  result.captions.forEach((c, i) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.setAttribute('aria-pressed', String(i === state.selected));
    const text = document.createElement('span');
    text.textContent = c.text;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = `${c.score.toFixed(2)} · p ${Math.exp(c.logProb).toExponential(1)}`;
    score.title = 'Ranking score (log-probability, length-normalised) and the probability of the whole caption';
    button.append(text, score);
    button.addEventListener('click', () => {
      state.selected = i;
      renderResult();
      drawView(null);
      scoreReferences();
    });
    li.append(button);
    alternatives.append(li);
  });

  const t = result.timings;
  $('timings').textContent =
    `${result.image.width}×${result.image.height} ${result.image.format} · ${Math.round(t.requestMs)} ms on the server ` +
    `(encoder ${Math.round(t.encoderMs)} ms, decoder ${Math.round(t.decoderMs)} ms, queue ${Math.round(t.queueMs)} ms, batch of ${t.batchSize})`;
  updateButtons();
}

function altText() {
  const caption = state.result?.captions[state.selected];
  if (!caption) return '';
  return state.selected === 0 && state.result.altText ? state.result.altText : `${caption.text[0].toUpperCase()}${caption.text.slice(1)}.`;
}

async function copyAltText() {
  const text = altText();
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API unavailable (insecure context or denied): the old way.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.className = 'visually-hidden';
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) {
      showError({ code: 'CLIPBOARD', message: 'Copying is not allowed here; select the caption and copy it by hand.' });
      return;
    }
  }
  setStatus(`Copied: “${text}”`);
}

function readAloud() {
  if (!('speechSynthesis' in window)) return;
  speechSynthesis.cancel();
  const utterance = new SpeechSynthesisUtterance(altText());
  utterance.lang = 'en';
  speechSynthesis.speak(utterance);
}

let scoreTimer;
let scoreRequest = 0;
function scoreReferences() {
  clearTimeout(scoreTimer);
  scoreTimer = setTimeout(async () => {
    const references = $('references').value.split('\n').map((l) => l.trim()).filter(Boolean);
    const caption = state.result?.captions[state.selected];
    if (!caption || references.length === 0) {
      $('scores').hidden = true;
      return;
    }
    const request = ++scoreRequest;
    try {
      const { scores } = await api('/v1/score', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ references: references.slice(0, 50), candidate: caption.text }),
      });
      if (request !== scoreRequest) return; // a newer request is on its way
      for (const cell of document.querySelectorAll('#scores td')) cell.textContent = scores[cell.dataset.metric].toFixed(3);
      $('scores').hidden = false;
    } catch (err) {
      showError(err);
    }
  }, 250);
}

// Image input: picker, drag and drop, paste.
$('choose').addEventListener('click', () => fileInput.click());
fileInput.addEventListener('change', () => setImage(fileInput.files[0]));
for (const type of ['dragenter', 'dragover']) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
dropzone.addEventListener('drop', (event) => {
  event.preventDefault();
  setImage(event.dataTransfer?.files?.[0]);
});
document.addEventListener('paste', (event) => {
  const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (!file) return;
  event.preventDefault();
  selectTab($('tab-caption'));
  setImage(file);
});

$('captionize').addEventListener('click', captionize);
$('refresh').addEventListener('click', captionize);
$('clear').addEventListener('click', clearAll);
$('copy').addEventListener('click', copyAltText);
$('speak').addEventListener('click', readAloud);
$('references').addEventListener('input', scoreReferences);
if (!('speechSynthesis' in window)) $('speak-note').hidden = false;

// --- Query tab ------------------------------------------------------------------------------------------------------

let searchRequest = 0;
async function searchLibrary(q, { quiet = false } = {}) {
  const request = ++searchRequest;
  const status = $('search-status');
  if (!quiet) setStatus('Searching…', { busy: true, el: status });
  try {
    const data = await api(`/v1/library?q=${encodeURIComponent(q.trim())}&limit=48`);
    if (request !== searchRequest) return;
    renderResults(data, q.trim());
  } catch (err) {
    setStatus(`${err.code}: ${err.message}`, { el: status });
  }
}

function renderResults(data, q) {
  const list = $('results');
  list.textContent = '';
  const words = q.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  for (const item of data.items) {
    const li = document.createElement('li');
    const link = document.createElement('a');
    link.href = item.imageUrl;
    link.target = '_blank';
    link.rel = 'noopener';
    const img = document.createElement('img');
    img.src = item.thumbnailUrl;
    img.alt = item.caption;
    img.loading = 'lazy';
    img.decoding = 'async';
    const caption = document.createElement('p');
    appendHighlighted(caption, item.caption, words);
    link.append(img, caption);
    li.append(link);
    list.append(li);
  }
  const what = q ? `matching “${q}”` : 'most recent';
  const text =
    data.total === 0
      ? 'The library is empty: caption an image first.'
      : data.count === 0
        ? `No images match “${q}” (the library holds ${data.total}).`
        : `${data.count} image${data.count === 1 ? '' : 's'} ${what} (of ${data.total}).`;
  setStatus(text, { el: $('search-status') });
}

/** Appends `text` to `el`, wrapping words that start with a query word in <mark>, without innerHTML. */
function appendHighlighted(el, text, words) {
  for (const part of text.split(/(\s+)/)) {
    const lower = part.toLowerCase();
    if (words.length && words.some((w) => lower.startsWith(w))) {
      const mark = document.createElement('mark');
      mark.textContent = part;
      el.append(mark);
    } else {
      el.append(part);
    }
  }
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  searchLibrary($('search').value);
});

// --- Info tab -------------------------------------------------------------------------------------------------------

let cardLoaded = false;
async function loadModelCard() {
  if (cardLoaded) return;
  const info = $('info');
  try {
    const card = await api('/v1/model');
    cardLoaded = true;
    renderCard(info, card);
  } catch (err) {
    info.textContent = '';
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = `${err.code}: ${err.message}`;
    info.append(p);
  }
}

function section(title, rows, { lead = false, text, note } = {}) {
  const card = document.createElement('section');
  card.className = `card${lead ? ' lead' : ''}`;
  const h = document.createElement('h2');
  h.textContent = title;
  card.append(h);
  if (text) {
    const p = document.createElement('p');
    p.textContent = text;
    card.append(p);
  }
  const dl = document.createElement('dl');
  for (const [k, v] of rows) {
    if (v === undefined || v === null || v === '') continue;
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = String(v);
    dl.append(dt, dd);
  }
  if (dl.childElementCount) card.append(dl);
  if (note) {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = note;
    card.append(p);
  }
  return card;
}

const fmt = (v, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : v);

function renderCard(el, card) {
  el.textContent = '';
  const arch = card.architecture ?? {};
  const cfg = arch.config ?? {};
  const training = card.training ?? {};
  const data = card.data ?? {};
  const val = card.metrics?.val ?? {};
  const test = card.metrics?.test ?? null;
  el.append(
    section(card.name ?? 'Model', [
      ['Format', card.format && `${card.format} v${card.version}`],
      ['Exported', card.date && new Date(card.date).toLocaleString()],
    ], { lead: true, text: arch.description ?? '' }),
    section('Architecture', [
      ['Type', arch.type],
      ['Encoder', arch.encoder && `${arch.encoder.name} (${arch.encoder.source})`],
      ['Parameters', typeof arch.parameters === 'number' ? `${(arch.parameters / 1e6).toFixed(1)} M (decoder)` : undefined],
      ['Vocabulary', cfg.vocab_size ?? card.vocab?.size],
      ['Embedding / hidden / attention', [cfg.embed_dim, cfg.hidden_dim, cfg.attention_dim].filter(Boolean).join(' / ')],
      ['Feature map', cfg.feature_dim && `7 × 7 × ${cfg.feature_dim}`],
      ['Max caption length', card.maxLength],
      ['ONNX', card.onnx && `opset ${card.onnx.opset}, ${card.onnx.weights ?? ''}`],
    ]),
    section('Training data', [
      ['Captions', data.captions?.source?.file ?? data.captions?.file],
      ['Training images', data.features?.count],
      ['Features from', data.features?.encoder?.name],
      ['Selected checkpoint', training.selected && `${training.selected.stage} epoch ${training.selected.epoch}`],
      ['Epochs', training.epochs && Object.entries(training.epochs).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['Batch size / learning rate', training.args && `${training.args.batch_size} / ${training.args.lr}`],
      ['PyTorch', training.torch],
      ['Trained', training.date && new Date(training.date).toLocaleString()],
    ]),
    section(`Metrics (validation${card.metrics?.val_decoding ? `, ${card.metrics.val_decoding}` : ''})`, [
      ['BLEU-1', fmt(val.bleu1)],
      ['BLEU-2', fmt(val.bleu2)],
      ['BLEU-3', fmt(val.bleu3)],
      ['BLEU-4', fmt(val.bleu4)],
      ['METEOR', fmt(val.meteor)],
      ['ROUGE-L', fmt(val.rougeL ?? val.rouge_l)],
      ['CIDEr', fmt(val.cider)],
      ['Mean length', fmt(val.mean_length, 1)],
      ['Distinct words used', val.vocab_used],
    ], { note: test ? undefined : 'No test-split scores in this model card.' }),
  );
  if (test && typeof test === 'object') {
    el.append(section(`Metrics (test${card.decoding?.beamSize ? `, beam ${card.decoding.beamSize}` : ''}, COCO toolkit definitions)`, Object.entries(test).map(([k, v]) => [k, fmt(v)])));
  }
}

// --- start ------------------------------------------------------------------------------------------------------------

updateButtons();
const initial = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
if (initial) selectTab(initial);

function formatBytes(n) {
  return n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1024 ** 2).toFixed(1)} MB`;
}
