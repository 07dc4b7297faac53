/**
 * Gets the encoded bytes of an image from a path or a buffer, refusing missing, special,
 * empty and oversized inputs before anything is decoded.
 */
import { open, stat } from 'node:fs/promises';
import { PixelInfoError, ErrorCodes } from '../errors.js';

export interface ImageBytes {
  bytes: Buffer;
  /** What error messages and LoadedImage.source call this input. */
  source: string;
}

export async function readImageBytes(input: string | Uint8Array, maxBytes: number, name?: string): Promise<ImageBytes> {
  if (typeof input === 'string') return readFromPath(input, maxBytes, name ?? input);
  if (!(input instanceof Uint8Array)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'loadImage expects a file path or a Buffer', { subject: name });
  }
  const source = name ?? '<buffer>';
  const bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  checkSize(bytes.length, maxBytes, source);
  return { bytes, source };
}

async function readFromPath(path: string, maxBytes: number, source: string): Promise<ImageBytes> {
  // stat by path first: opening a FIFO or a device would block a libuv thread or never end.
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw fileError(err, source);
  });
  if (st.isDirectory()) {
    throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: is a directory, not an image file`, { subject: source });
  }
  if (!st.isFile()) {
    throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: is not a regular file`, { subject: source });
  }
  checkSize(st.size, maxBytes, source);

  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw fileError(err as NodeJS.ErrnoException, source);
  }
  try {
    const bytes = await handle.readFile();
    checkSize(bytes.length, maxBytes, source); // the file may have changed since stat
    return { bytes, source };
  } catch (err) {
    if (err instanceof PixelInfoError) throw err;
    throw fileError(err as NodeJS.ErrnoException, source);
  } finally {
    await handle.close();
  }
}

function checkSize(size: number, maxBytes: number, source: string): void {
  if (size === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, `${source}: file is empty (0 bytes)`, { subject: source });
  if (size > maxBytes) {
    throw new PixelInfoError(
      ErrorCodes.IMAGE_TOO_LARGE,
      `${source}: ${size} bytes is more than the ${maxBytes}-byte limit`,
      { subject: source },
    );
  }
}

function fileError(err: NodeJS.ErrnoException, source: string): PixelInfoError {
  const reason =
    err.code === 'ENOENT' || err.code === 'ENOTDIR'
      ? 'no such file'
      : err.code === 'EACCES' || err.code === 'EPERM'
        ? 'permission denied'
        : err.code === 'EISDIR'
          ? 'is a directory, not an image file'
          : `cannot be read (${err.message})`;
  return new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: ${reason}`, { subject: source, cause: err });
}
