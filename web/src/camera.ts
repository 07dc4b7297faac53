/**
 * Live camera, for people who cannot see the scene: the camera's view is captioned on this device every few
 * seconds (src/browser, nothing uploaded), and a caption is spoken, and announced to screen readers, only when it
 * changes meaningfully: when its content words (not "a", "is", "the", ...) differ enough from the last one said.
 * One toggle button (aria-pressed) starts and stops it; Escape stops it too.
 */
import type { Captioner } from '../../src/browser/index.js';
import { speak } from './caption-view.js';
import { byId, setStatus } from './dom.js';

/** Seconds between captions of the camera's view. */
export const CAMERA_INTERVAL_MS = 3000;
/** Spoken again when the content words' Jaccard similarity to the last spoken caption is below this. */
export const CHANGE_THRESHOLD = 0.5;

const FUNCTION_WORDS = new Set('a an the is are was were be being of in on at to with and or for from by its his her their into onto near while up down some two three'.split(' '));

/** The words that say what is in the picture. */
function contentWords(text: string): Set<string> {
  return new Set(text.toLowerCase().split(/\s+/).filter((w) => w && !FUNCTION_WORDS.has(w)));
}

/** True when `next` says something else than `previous` (null: nothing said yet). */
export function changedMeaningfully(previous: string | null, next: string): boolean {
  if (previous === null) return true;
  const a = contentWords(previous);
  const b = contentWords(next);
  const union = new Set([...a, ...b]);
  if (union.size === 0) return false;
  let shared = 0;
  for (const w of a) if (b.has(w)) shared++;
  return shared / union.size < CHANGE_THRESHOLD;
}

/** Wires the camera toggle; `captioner` loads the on-device model (and turns the on-device switch on). */
export function createCamera({ captioner }: { captioner: () => Promise<Captioner> }): void {
  const button = byId('camera', HTMLButtonElement);
  const video = byId('camera-view', HTMLVideoElement);
  const said = byId('camera-caption');
  const status = byId('camera-status');
  let stream: MediaStream | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastSpoken: string | null = null;
  let running = false;

  if (!navigator.mediaDevices?.getUserMedia) {
    button.disabled = true;
    setStatus(status, 'This browser gives no camera access.');
    return;
  }

  async function start(): Promise<void> {
    setStatus(status, 'Starting the camera…', true);
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      setStatus(status, `The camera could not be opened (${(err as Error).name}).`);
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    await video.play().catch(() => {});
    running = true;
    lastSpoken = null;
    button.setAttribute('aria-pressed', 'true');
    button.textContent = 'Stop live camera';
    setStatus(status, 'Loading the model…', true);
    const model = await captioner().catch((err: Error) => {
      setStatus(status, `The model could not be loaded: ${err.message}`);
      return null;
    });
    if (!model || !running) return stop();
    setStatus(status, `Describing the camera's view every ${CAMERA_INTERVAL_MS / 1000} seconds, on this device.`);
    void tick(model);
  }

  async function tick(model: Captioner): Promise<void> {
    if (!running) return;
    const started = performance.now();
    try {
      if (video.readyState >= 2 && video.videoWidth > 0) {
        const frame = await createImageBitmap(video);
        const result = await model.caption(frame).finally(() => frame.close());
        const text = result.captions[0]?.text ?? '';
        said.dataset.latest = text;
        if (running && text && changedMeaningfully(lastSpoken, text)) {
          lastSpoken = text;
          said.textContent = text; // aria-live: screen readers announce it
          speak(text);
        }
      }
    } catch (err) {
      setStatus(status, `Captioning the camera's view failed: ${(err as Error).message}`);
    }
    if (running) timer = setTimeout(() => void tick(model), Math.max(0, CAMERA_INTERVAL_MS - (performance.now() - started)));
  }

  function stop(): void {
    running = false;
    clearTimeout(timer);
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    video.hidden = true;
    button.setAttribute('aria-pressed', 'false');
    button.textContent = 'Start live camera';
    setStatus(status, '');
  }

  button.addEventListener('click', () => void (running ? stop() : start()));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && running) stop();
  });
}
