/**
 * The Query tab: full-text search over the library of captioned images (`GET /v1/library`), shown as a grid of
 * thumbnails with their captions, the query's words highlighted. With an API key the thumbnails and images are
 * fetched with it and shown from blob: URLs (an <img src> or a link cannot send the key).
 */
import { getBlob, getLibrary, type LibraryPage } from './api.js';
import { apiKey } from './auth.js';
import { byId, h, setStatus } from './dom.js';

/** Most thumbnails shown per search. */
const RESULT_LIMIT = 48;

export interface LibraryView {
  /** Searches for the text in the search box; `quiet` skips the "Searching…" line (when the tab is just shown). */
  search(options?: { quiet?: boolean }): Promise<void>;
}

/** Wires the search form (#search-form, #search) to the result list (#results) and its status line (#search-status). */
export function createLibraryView(): LibraryView {
  const form = byId('search-form', HTMLFormElement);
  const input = byId('search', HTMLInputElement);
  const status = byId('search-status');
  const list = byId('results', HTMLUListElement);
  let latest = 0; // only the newest search's answer is shown

  async function search({ quiet = false } = {}): Promise<void> {
    const request = ++latest;
    const q = input.value.trim();
    if (!quiet) setStatus(status, 'Searching…', true);
    try {
      const page = await getLibrary(q, RESULT_LIMIT);
      if (request !== latest) return;
      list.replaceChildren(...page.items.map((item) => resultItem(item, queryWords(q))));
      setStatus(status, summary(page, q));
    } catch (err) {
      if (request !== latest) return;
      const { code = 'ERROR', message } = err as { code?: string; message: string };
      setStatus(status, `${code}: ${message}`);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void search();
  });
  return { search };
}

function resultItem(item: LibraryPage['items'][number], words: string[]): HTMLLIElement {
  const img = h('img', { alt: item.caption, loading: 'lazy', decoding: 'async' });
  const caption = h('p', {}, ...highlight(item.caption, words));
  const link = h('a', { href: item.imageUrl, target: '_blank', rel: 'noopener' }, img, caption);
  if (apiKey() === null) {
    img.src = item.thumbnailUrl;
  } else {
    void showBlob(img, item.thumbnailUrl);
    link.addEventListener('click', (event) => {
      event.preventDefault();
      openBlob(item.imageUrl);
    });
  }
  return h('li', {}, link);
}

/** Shows the image at `path`, fetched with the API key; its blob: URL is released once the image is decoded. */
async function showBlob(img: HTMLImageElement, path: string): Promise<void> {
  try {
    const url = URL.createObjectURL(await getBlob(path));
    img.addEventListener('load', () => URL.revokeObjectURL(url), { once: true });
    img.addEventListener('error', () => URL.revokeObjectURL(url), { once: true });
    img.src = url;
  } catch {
    img.classList.add('missing'); // its caption still shows
  }
}

/** Opens the image at `path` in a new tab: the tab is opened now (while the click allows it), the image fetched into it. */
function openBlob(path: string): void {
  const tab = window.open('', '_blank');
  if (!tab) return; // pop-ups blocked
  getBlob(path).then(
    (blob) => {
      const url = URL.createObjectURL(blob);
      tab.location.href = url;
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    },
    () => tab.close(),
  );
}

/** The words of a query, lower case, as the search matches them (each a prefix of a caption word). */
export function queryWords(q: string): string[] {
  return q.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** `text` as nodes, words starting with one of `words` wrapped in <mark> (text nodes only, never HTML). */
function highlight(text: string, words: string[]): Array<Node | string> {
  return text.split(/(\s+)/).map((part) => {
    const lower = part.toLowerCase();
    return words.some((w) => lower.startsWith(w)) ? h('mark', { textContent: part }) : part;
  });
}

/** The status line under the search box. */
export function summary(page: Pick<LibraryPage, 'count' | 'total'>, q: string): string {
  if (page.total === 0) return 'The library is empty: caption an image first.';
  if (page.count === 0) return `No images match “${q}” (the library holds ${page.total}).`;
  return `${page.count} image${page.count === 1 ? '' : 's'} ${q ? `matching “${q}”` : 'most recent'} (of ${page.total}).`;
}
