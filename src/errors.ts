/**
 * Typed errors with stable codes. Every failure a user can cause (bad file, bad request,
 * missing model) is one of these, so the CLI, the server and batch jobs can report it
 * by `code` and keep going with the rest of the work.
 */
export const ErrorCodes = {
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  FILE_EMPTY: 'FILE_EMPTY',
  NOT_AN_IMAGE: 'NOT_AN_IMAGE',
  UNSUPPORTED_FORMAT: 'UNSUPPORTED_FORMAT',
  IMAGE_TRUNCATED: 'IMAGE_TRUNCATED',
  IMAGE_TOO_LARGE: 'IMAGE_TOO_LARGE',
  DECODE_FAILED: 'DECODE_FAILED',
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  MODEL_CORRUPT: 'MODEL_CORRUPT',
  DATASET_NOT_FOUND: 'DATASET_NOT_FOUND',
  DATASET_INVALID: 'DATASET_INVALID',
  FEATURE_STORE_INVALID: 'FEATURE_STORE_INVALID',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  PYTHON_UNAVAILABLE: 'PYTHON_UNAVAILABLE',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  TIMEOUT: 'TIMEOUT',
  OVERLOADED: 'OVERLOADED',
  /** An HTTP route or a library entry that does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** API keys are configured and the request presented none, or one that is unknown or revoked. */
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  /** The presented API key may not do this (an admin key can). */
  FORBIDDEN: 'FORBIDDEN',
  /** Too many requests from one API key (or one address without keys) in the rate-limit window. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** A file or folder the command must write or read could not be (not a directory, no space, read-only...). */
  IO_ERROR: 'IO_ERROR',
  /** A state-changing request from a web page of another origin (cross-site request forgery). */
  ORIGIN_NOT_ALLOWED: 'ORIGIN_NOT_ALLOWED',
  /** A Host header this server does not answer for (DNS rebinding, or a name missing from --allowed-hosts). */
  HOST_NOT_ALLOWED: 'HOST_NOT_ALLOWED',
  /** Storing the image would take the library, or the API key's share of it, over its quota. */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  /** The client sent its request too slowly (headers, or an upload below the minimum rate). */
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  /** The client closed the connection before the answer; the work for it was dropped (logged, never sent). */
  CLIENT_CLOSED: 'CLIENT_CLOSED',
  INTERNAL: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class PixelInfoError extends Error {
  readonly code: ErrorCode;
  /** The file, field or resource the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: ErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'PixelInfoError';
    this.code = code;
    this.subject = options.subject;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Wraps anything thrown into a PixelInfoError so reporting code has one shape to deal with. */
export function asPixelInfoError(err: unknown, subject?: string): PixelInfoError {
  if (err instanceof PixelInfoError) return err;
  const sys = err as NodeJS.ErrnoException;
  if (sys && typeof sys.code === 'string' && typeof sys.syscall === 'string' && sys.path) {
    // A system call on a path failed: say which operation, which path and why, without a stack trace.
    return new PixelInfoError(ErrorCodes.IO_ERROR, `cannot ${sys.syscall} ${sys.path}: ${sys.code}`, { subject: sys.path, cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new PixelInfoError(ErrorCodes.INTERNAL, subject ? `${subject}: ${message}` : message, { subject, cause: err });
}
