/**
 * The Query tab: search over the library of captioned images (`GET /v1/library`), shown as a grid of thumbnails
 * with their captions. Two modes, a radio group (#search-mode): by meaning (the image–text matcher ranks the
 * images by how well the query describes them; each shows its match percentage) or by words (full-text; the
 * query's words highlighted). Until one is chosen the server's default is used and shown (meaning when it has a
 * matcher); a server without one turns Meaning off. A caption the matcher doubts carries a "Low confidence"
 * badge. With an API key the thumbnails and images are fetched with it and shown from blob: URLs (an <img src>
 * or a link cannot send the key).
 */
import { getBlob, getLibrary, type LibraryPage, type SearchMode } from './api.js';
import { apiKey } from './auth.js';
import { confidenceBadge, matchText } from './confidence.js';
import { byId, h, setStatus } from './dom.js';
import { tagsLine } from './caption-view.js';

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
  const modes = [...byId('search-mode', HTMLFieldSetElement).querySelectorAll<HTMLInputElement>('input[name="search-mode"]')];
  const radio = (mode: SearchMode) => modes.find((m) => m.value === mode)!;
  let latest = 0; // only the newest search's answer is shown
  /** The mode the user chose; undefined: the server's default. */
  let chosen: SearchMode | undefined;
  /** Said before every summary once the server turned out to have no matcher. */
  let note = '';

  function showMode(mode: SearchMode): void {
    radio(mode).checked = true;
    input.placeholder = mode === 'meaning' ? 'Describe what you look for, e.g. a puppy on the grass' : 'Search captions, e.g. dog running';
  }

  async function search({ quiet = false } = {}): Promise<void> {
    const request = ++latest;
    const q = input.value.trim();
    if (!quiet) setStatus(status, 'Searching…', true);
    try {
      const page = await getLibrary(q, RESULT_LIMIT, chosen);
      if (request !== latest) return;
      showMode(page.mode);
      const words = page.mode === 'words' ? queryWords(q) : [];
      list.replaceChildren(...page.items.map((item) => resultItem(item, words)));
      list.dataset.mode = page.mode;
      setStatus(status, note + summary(page, q));
    } catch (err) {
      if (request !== latest) return;
      const { code = 'ERROR', message } = err as { code?: string; message: string };
      if (code === 'MODEL_NOT_FOUND' && chosen === 'meaning') {
        // This server has no image–text matcher: search by words, and say so.
        radio('meaning').disabled = true;
        note = 'Search by meaning needs the image–text matcher, which this server does not have: searching by words. ';
        chosen = 'words';
        showMode('words');
        return search({ quiet: true });
      }
      setStatus(status, `${code}: ${message}`);
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void search();
  });
  for (const mode of modes) {
    mode.addEventListener('change', () => {
      if (!mode.checked) return;
      chosen = mode.value as SearchMode;
      showMode(chosen);
      void search();
    });
  }
  return { search };
}

function resultItem(item: LibraryPage['items'][number], words: string[]): HTMLLIElement {
  const img = h('img', { alt: item.caption, loading: 'lazy', decoding: 'async' });
  const caption = h('p', {}, ...highlight(item.caption, words));
  const badges: HTMLElement[] = [];
  if (item.match) {
    const m = matchText(item.match.score);
    badges.push(
      h(
        'span',
        { className: 'match-score', title: m.label, dataset: { score: String(item.match.score) } },
        h('span', { textContent: m.text, attrs: { 'aria-hidden': 'true' } }),
        h('span', { className: 'visually-hidden', textContent: m.label }),
      ),
    );
  }
  const badge = confidenceBadge(item.confidence, 'compact');
  if (badge?.classList.contains('low')) badges.push(badge); // only doubts are worth the space here
  const tags = tagsLine(item.tags);
  if (tags) badges.push(h('span', { className: 'tags-line compact' }, ...tags.slice(1)));
  const meta = badges.length ? [h('p', { className: 'result-meta' }, ...badges)] : [];
  const link = h('a', { href: item.imageUrl, target: '_blank', rel: 'noopener' }, img, caption, ...meta);
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
export function summary(page: Pick<LibraryPage, 'count' | 'total'> & { mode?: LibraryPage['mode'] }, q: string): string {
  if (page.total === 0) return 'The library is empty: caption an image first.';
  if (page.count === 0) return `No images match “${q}” (the library holds ${page.total}).`;
  const images = `${page.count} image${page.count === 1 ? '' : 's'}`;
  if (!q) return `${images} most recent (of ${page.total}).`;
  if (page.mode === 'meaning') return `${images} ranked by how well “${q}” describes them (of ${page.total}).`;
  return `${images} matching “${q}” (of ${page.total}).`;
}
