/**
 * The Caption tab: its state (the image, the API's result, the selected alternative, whether a request is
 * running) in one store, and the actions on it: take an image, Captionize / Refresh caption, New image, choose
 * an alternative, copy the alt text, read it aloud. The views (caption-view, heatmap, references) draw from
 * the store; nothing else holds caption state.
 */
import { resolveGeneration } from '../../src/decoder/generation.js';
import { getModelCard, postCaption, type CaptionResponse } from './api.js';
import { altTextOf, canSpeak, copyText, createCaptionView, speak } from './caption-view.js';
import { byId, h, setStatus } from './dom.js';
import { ImageCanvas } from './heatmap.js';
import { bindImageInput } from './image-input.js';
import { createReferenceScores } from './references.js';
import { createStore } from './store.js';
import { captionOnDevice, deviceCaptioner } from './device.js';
import { createCamera } from './camera.js';

export interface CaptionState {
  /** The image to caption, as chosen, dropped or pasted. */
  file: File | null;
  /** The API's answer for `file`. */
  result: CaptionResponse | null;
  /** Index of the alternative shown (0: the best). */
  selected: number;
  /** A captioning request is running. */
  busy: boolean;
}

/** An error to show in the caption card's alert box. */
interface ShownError {
  code?: string;
  message: string;
}

/** Wires the Caption tab. `onPaste` runs when an image is pasted (e.g. to show this tab). */
export function createCaptionTab({ onPaste }: { onPaste: () => void }): void {
  const store = createStore<CaptionState>({ file: null, result: null, selected: 0, busy: false });
  const el = {
    captionize: byId('captionize', HTMLButtonElement),
    refresh: byId('refresh', HTMLButtonElement),
    clear: byId('clear', HTMLButtonElement),
    copy: byId('copy', HTMLButtonElement),
    speak: byId('speak', HTMLButtonElement),
    speakNote: byId('speak-note'),
    choose: byId('choose', HTMLButtonElement),
    beam: byId('beam', HTMLSelectElement),
    nbest: byId('nbest', HTMLSelectElement),
    status: byId('status'),
    error: byId('error'),
    fileName: byId('file-name'),
    dropzone: byId('dropzone'),
    view: byId('view', HTMLCanvasElement),
    onDevice: byId('on-device', HTMLInputElement),
    deviceLoad: byId('device-load'),
    deviceProgress: byId('device-progress', HTMLProgressElement),
    deviceLoadText: byId('device-load-text'),
  };
  const canvas = new ImageCanvas(el.view);
  // The beam size the model runs with unless told otherwise (its card's, else the library default): the same
  // resolver as the server's. Captioning waits for it, so a click before the card arrives uses it too.
  const beamChosen = getModelCard().then(
    (card) => selectIfOffered(el.beam, resolveGeneration({}, card.decoding).beamSize),
    () => {}, // the Info tab reports an unreadable card
  );
  const selectedCaption = () => store.get().result?.captions[store.get().selected];

  const captionView = createCaptionView({
    onWord: showWord,
    onSelect: (selected) => store.set({ selected }),
  });
  const references = createReferenceScores(() => selectedCaption()?.text ?? null, showError);
  const imageInput = bindImageInput((file, how) => {
    if (how === 'paste') onPaste();
    void setImage(file);
  });

  store.subscribe((state, previous) => {
    el.captionize.disabled = !state.file || state.busy;
    el.refresh.disabled = !state.result || state.busy;
    el.clear.disabled = !state.file || state.busy;
    el.copy.disabled = !state.result;
    el.speak.disabled = !state.result || !canSpeak();
    if (state.result !== previous.result || state.selected !== previous.selected || state.file !== previous.file) {
      captionView.render(state.result, state.selected, Boolean(state.file));
      canvas.draw();
      references.schedule();
    }
  });

  /** Hovered or focused word `index` of the shown caption: its heat-map over the image (null: the image alone). */
  function showWord(index: number | null): void {
    const caption = selectedCaption();
    captionView.markWord(index);
    canvas.draw(index === null ? undefined : caption?.attention?.[index]);
    const label = index !== null && caption ? `Attention of the word "${caption.tokens[index]}" over the image` : imageLabel(store.get().file);
    el.view.setAttribute('aria-label', label);
  }

  async function setImage(file: File): Promise<void> {
    if (file.type && !file.type.startsWith('image/')) {
      showError({ code: 'NOT_AN_IMAGE', message: `${file.name || 'The file'} is not an image (${file.type}).` });
      return;
    }
    showError(null);
    setStatus(el.status, '');
    store.set({ file, result: null, selected: 0 });
    el.fileName.textContent = `${file.name || 'Pasted image'} · ${formatBytes(file.size)}`;
    el.view.setAttribute('aria-label', imageLabel(file));
    const shown = await canvas.load(file);
    if (store.get().file !== file) return; // another image came meanwhile
    el.dropzone.dataset.state = shown ? 'loaded' : 'empty';
    if (!shown) setStatus(el.status, 'This browser cannot preview the image, but it can still be captioned.');
    el.captionize.focus();
  }

  async function captionize(): Promise<void> {
    const { file, busy } = store.get();
    if (!file || busy) return;
    store.set({ busy: true });
    showError(null);
    setStatus(el.status, 'Captioning…', true);
    await beamChosen;
    const beam = Number(el.beam.value);
    const nbest = Math.min(Number(el.nbest.value), beam);
    try {
      const result = el.onDevice.checked ? await captionOnDevice(file, { beam, nbest }) : await postCaption(file, { beam, nbest, fileName: file.name });
      if (store.get().file === file) store.set({ result, selected: 0 });
      setStatus(el.status, '');
    } catch (err) {
      setStatus(el.status, '');
      showError(err);
    } finally {
      store.set({ busy: false });
    }
  }

  function clear(): void {
    store.set({ file: null, result: null, selected: 0 });
    canvas.clear();
    imageInput.reset();
    el.dropzone.dataset.state = 'empty';
    el.view.setAttribute('aria-label', 'No image yet');
    el.fileName.textContent = '';
    showError(null);
    setStatus(el.status, '');
    el.choose.focus();
  }

  async function copyAltText(): Promise<void> {
    const text = altTextOf(store.get().result, store.get().selected);
    if (!text) return;
    if (await copyText(text)) setStatus(el.status, `Copied: “${text}”`);
    else showError({ code: 'CLIPBOARD', message: 'Copying is not allowed here; select the caption and copy it by hand.' });
  }

  /** Shows an error (an ApiError or anything with a code and a message) in the alert box; null hides it. */
  function showError(err: unknown): void {
    el.error.hidden = !err;
    if (!err) return el.error.replaceChildren();
    const { code = 'ERROR', message = String(err) } = err as Partial<ShownError>;
    el.error.replaceChildren(h('code', { textContent: code }), ` ${message}`);
  }

  /** Turning "Caption on this device" on loads the model here (once; the browser keeps it), showing progress, size and time. */
  async function prepareDevice(): Promise<void> {
    if (!el.onDevice.checked) return;
    el.deviceLoad.hidden = false;
    el.deviceLoadText.textContent = 'Loading the model…';
    try {
      const captioner = await deviceCaptioner(({ loaded, total }) => {
        el.deviceProgress.value = total ? loaded / total : 0;
        el.deviceLoadText.textContent = `Loading the model: ${formatBytes(loaded)} of ${formatBytes(total)}`;
      });
      const { bytes, downloadedBytes, ms, device, threads } = captioner.loadStats;
      el.deviceProgress.value = 1;
      const where = downloadedBytes > 0 ? `${formatBytes(downloadedBytes)} downloaded` : 'from this browser\'s cache';
      el.deviceLoadText.textContent = `Model ready on this device: ${formatBytes(bytes)} (${where}) in ${(ms / 1000).toFixed(1)} s · ${device === 'webgpu' ? 'WebGPU' : `WebAssembly, ${threads} thread${threads === 1 ? '' : 's'}`}`;
    } catch (err) {
      el.deviceLoadText.textContent = '';
      el.deviceLoad.hidden = true;
      el.onDevice.checked = false;
      showError(err);
    }
  }

  el.onDevice.addEventListener('change', () => void prepareDevice());
  // The live camera captions on this device only: starting it turns the switch on (and loads the model).
  createCamera({
    captioner: async () => {
      if (!el.onDevice.checked) {
        el.onDevice.checked = true;
        await prepareDevice();
      }
      return deviceCaptioner();
    },
  });
  el.captionize.addEventListener('click', () => void captionize());
  el.refresh.addEventListener('click', () => void captionize());
  el.clear.addEventListener('click', clear);
  el.copy.addEventListener('click', () => void copyAltText());
  el.speak.addEventListener('click', () => speak(altTextOf(store.get().result, store.get().selected)));
  el.speakNote.hidden = canSpeak();
  store.set({}); // the buttons' first state (the placeholder caption is in index.html)
}

/** The canvas's accessible name while it shows the image alone. */
function imageLabel(file: File | null): string {
  return file ? `Image ${file.name || 'pasted from the clipboard'}` : 'No image yet';
}

/** "512 B", "37 KB", "2.4 MB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

/** Selects the option whose value is `value`, if the select offers it. */
function selectIfOffered(select: HTMLSelectElement, value: number): void {
  if ([...select.options].some((o) => o.value === String(value))) select.value = String(value);
}
