/**
 * The three ways an image reaches the Caption tab: the file picker (#choose opens #file), dragging a file onto
 * the drop zone (#dropzone), and pasting one anywhere on the page.
 */
import { byId } from './dom.js';

export interface ImageInput {
  /** Empties the file picker, so choosing the same file again still fires. */
  reset(): void;
}

/** Calls `onImage` with each file chosen, dropped or pasted; `how` says which (a paste may need to switch tabs). */
export function bindImageInput(onImage: (file: File, how: 'picker' | 'drop' | 'paste') => void): ImageInput {
  const choose = byId('choose', HTMLButtonElement);
  const fileInput = byId('file', HTMLInputElement);
  const dropzone = byId('dropzone');

  choose.addEventListener('click', () => fileInput.click());
  fileInput.addEventListener('change', () => {
    const file = fileInput.files?.[0];
    if (file) onImage(file, 'picker');
  });

  for (const type of ['dragenter', 'dragover'] as const) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault(); // allows the drop
      dropzone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'drop'] as const) dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    const file = event.dataTransfer?.files[0];
    if (file) onImage(file, 'drop');
  });

  document.addEventListener('paste', (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
    if (!file) return;
    event.preventDefault();
    onImage(file, 'paste');
  });

  return {
    reset: () => {
      fileInput.value = '';
    },
  };
}
