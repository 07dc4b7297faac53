/**
 * API keys as both stores make and check them. A key is `pxi_` and 32 random bytes in base64url (the prefix makes
 * a leaked key easy to recognise and to search for in logs and repositories); only its SHA-256 is stored, so a
 * copy of the database does not hold a usable key. A presented key is found by the hash of what was presented:
 * the lookup never compares the secret itself, byte by byte, with stored secrets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const API_KEY_PREFIX = 'pxi_';
const KEY_BYTES = 32;
/** base64url of 32 bytes, without padding. */
const KEY_PATTERN = /^pxi_[A-Za-z0-9_-]{43}$/;
const NAME_MAX = 64;

/** A new plain key (shown once) and what is stored of it. */
export function newApiKey(): { key: string; id: string; hash: string } {
  const key = API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
  return { key, id: `key_${randomBytes(8).toString('hex')}`, hash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Whether `key` has the shape of a key this system makes (anything else is rejected without a lookup). */
export function isWellFormedKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

/** A key's name: 1-64 printable characters, trimmed; INVALID_ARGUMENT otherwise. */
export function checkKeyName(name: string): string {
  const trimmed = typeof name === 'string' ? name.trim() : '';
  if (!trimmed || trimmed.length > NAME_MAX || /\p{Cc}/u.test(trimmed)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `a key name must be 1-${NAME_MAX} printable characters, got ${JSON.stringify(name)}`, {
      subject: 'name',
    });
  }
  return trimmed;
}

export function duplicateKeyName(name: string, cause?: unknown): PixelInfoError {
  return new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `a key named "${name}" already exists (revoke it first, or pick another name)`, {
    subject: 'name',
    cause,
  });
}
