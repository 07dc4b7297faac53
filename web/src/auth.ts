/**
 * The page's API key, for servers that need one (docs/api.md, "API keys"). The key is asked for only when the
 * API answers 401: an accessible modal dialog (#key-dialog, a native <dialog>: focus moves into it and stays
 * there, Escape cancels) takes a pasted key, which is kept in sessionStorage (this tab only, gone when it
 * closes) and sent as `Authorization: Bearer <key>` by the API client (./api.ts). "Forget API key" in the
 * footer removes it. Nothing here runs at import time.
 */
import { byId } from './dom.js';

const STORAGE_KEY = 'pixel-info.api-key';

/** Why the dialog is shown: no key yet, or the one sent was refused (unknown or revoked). */
export type KeyRequestReason = 'missing' | 'rejected';

/** Where the key is kept when the browser refuses storage: this page only. */
let unstoredKey: string | null = null;

/** The key in use, or null. */
export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? unstoredKey;
  } catch {
    return unstoredKey;
  }
}

/** The headers that authenticate a request: the Bearer key when one is set. */
export function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Forgets the key and reloads the page, so that nothing shown with it stays on screen. */
export function forgetKey(): void {
  unstoredKey = null;
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
  location.reload();
}

function keepKey(key: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    unstoredKey = key; // storage disabled: kept until the page is left
  }
}

let pending: Promise<string | null> | null = null;

/**
 * Asks for a key with the dialog and keeps it. Resolves with the key, or null when the dialog is cancelled.
 * Requests refused at the same time (a search's thumbnails) share one dialog.
 */
export function requestKey(reason: KeyRequestReason): Promise<string | null> {
  pending ??= showDialog(reason).finally(() => (pending = null));
  return pending;
}

/** Shows "Forget API key" while a key is kept, and wires it. Call once at start. */
export function bindKeyControls(): void {
  const forget = byId('forget-key', HTMLButtonElement);
  forget.hidden = apiKey() === null;
  forget.addEventListener('click', forgetKey);
}

function showDialog(reason: KeyRequestReason): Promise<string | null> {
  const dialog = byId('key-dialog', HTMLDialogElement);
  const input = byId('api-key', HTMLInputElement);
  const error = byId('key-error');
  const cancel = byId('key-cancel', HTMLButtonElement);
  input.value = '';
  error.hidden = reason !== 'rejected';
  error.textContent = reason === 'rejected' ? 'The server did not accept this key: it is unknown or has been revoked. Check it and try again.' : '';

  return new Promise((resolve) => {
    const onCancel = () => dialog.close('');
    const onClose = () => {
      cancel.removeEventListener('click', onCancel);
      const key = dialog.returnValue === 'save' ? input.value.trim() : '';
      input.value = '';
      if (!key) return resolve(null);
      keepKey(key);
      byId('forget-key').hidden = false;
      resolve(key);
    };
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    input.focus();
  });
}
