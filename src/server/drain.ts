/**
 * Stopping within a deadline. `app.close()` stops accepting connections, closes idle keep-alive ones, lets the
 * requests in flight finish, then drains the queue, releases the model and closes the library (app.ts). A client
 * can hold that open forever: an upload that stalls, an answer nobody reads. At the deadline every connection
 * still open is cut (their queued images leave the queue as abandoned), and close() completes as soon as a batch
 * already running is done.
 */
import type { FastifyInstance } from 'fastify';
import { markCutAtDeadline } from './hooks.js';

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** Closes `app`, cutting what is still open after `deadlineMs`. `cut`: whether anything had to be. */
export async function closeWithin(app: FastifyInstance, deadlineMs: number = DEFAULT_DRAIN_TIMEOUT_MS): Promise<{ cut: boolean }> {
  let cut = false;
  const timer = setTimeout(() => {
    cut = true;
    markCutAtDeadline(app);
    app.log.warn({ deadlineMs }, 'drain deadline passed: closing the connections still open');
    app.server.closeAllConnections();
  }, deadlineMs);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
  return { cut };
}
