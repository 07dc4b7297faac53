/**
 * Library quotas: the bytes of stored originals may not pass `totalBytes` (the whole library) nor, when API keys
 * exist, `perKeyBytes` (what one key has stored; an image held by two keys counts for each). A request that would
 * pass either is 413 QUOTA_EXCEEDED: checked before the upload is read (from its Content-Length) and again with
 * the image's size just before it is stored. `store=false` requests are not counted: they keep nothing.
 *
 * Usage is read from the library at most every USAGE_CACHE_MS per key (a sum over stored images), and what this
 * process stores in between is added to it; replicas sharing a database see each other's images within that time.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { LibraryStore, Viewer } from '../library/index.js';

export interface QuotaOptions {
  /** Most bytes of originals in the whole library; 0 or undefined: no limit. */
  totalBytes?: number;
  /** Most bytes of originals one API key may have stored (only when keys exist); 0 or undefined: no limit. */
  perKeyBytes?: number;
}

/** How long a usage figure is reused by the check before the upload, ms. */
const USAGE_CACHE_MS = 5000;

export class LibraryQuota {
  private readonly cache = new Map<string, { bytes: number; until: number }>();

  constructor(
    private readonly library: Pick<LibraryStore, 'storedBytes'>,
    private readonly options: QuotaOptions = {},
  ) {}

  get enabled(): boolean {
    return Boolean(this.options.totalBytes || this.options.perKeyBytes);
  }

  /** Throws QUOTA_EXCEEDED when storing `bytes` more for `viewer` would pass a quota. */
  async check(viewer: Viewer, bytes: number): Promise<void> {
    const { totalBytes, perKeyBytes } = this.options;
    if (totalBytes) {
      const used = await this.usage(undefined);
      if (used + bytes > totalBytes) throw exceeded(`the library holds ${mb(used)} of its ${mb(totalBytes)} quota`);
    }
    if (perKeyBytes && viewer.keyId !== null) {
      const used = await this.usage(viewer.keyId);
      if (used + bytes > perKeyBytes) throw exceeded(`this API key's images take ${mb(used)} of its ${mb(perKeyBytes)} quota`);
    }
  }

  /** `bytes` were stored: as a new image (`created`), and/or newly for the viewer's key (`newForKey`). */
  record(viewer: Viewer, bytes: number, { created, newForKey }: { created: boolean; newForKey: boolean }): void {
    const add = (key: string) => {
      const cached = this.cache.get(key);
      if (cached) cached.bytes += bytes;
    };
    if (created) add('*');
    if (newForKey && viewer.keyId !== null) add(viewer.keyId);
  }

  private async usage(owner: string | undefined): Promise<number> {
    const key = owner ?? '*';
    const cached = this.cache.get(key);
    if (cached && performance.now() < cached.until) return cached.bytes;
    const bytes = await this.library.storedBytes(owner);
    if (this.cache.size > 10_000) this.cache.clear(); // one entry per key that uploads; bounded all the same
    this.cache.set(key, { bytes, until: performance.now() + USAGE_CACHE_MS });
    return bytes;
  }
}

function exceeded(why: string): PixelInfoError {
  return new PixelInfoError(ErrorCodes.QUOTA_EXCEEDED, `storing this image would pass the library quota: ${why}; delete images, or send store=false to caption without storing`);
}

function mb(bytes: number): string {
  return bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
