/** The thread of POST /v1/score (./worker-pool.ts): sentence scores computed off the event loop. */
import { parentPort } from 'node:worker_threads';
import { asPixelInfoError } from '../errors.js';
import { sentenceScores } from '../metrics/sentence.js';

export interface ScoreInput {
  references: string[];
  candidate: string;
}

parentPort?.on('message', ({ id, input }: { id: number; input: ScoreInput }) => {
  try {
    parentPort!.postMessage({ id, output: sentenceScores(input.references, input.candidate) });
  } catch (err) {
    parentPort!.postMessage({ id, error: asPixelInfoError(err).toJSON() });
  }
});
