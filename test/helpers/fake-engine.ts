/** A CaptionEngine for server tests: every image gets the same caption, instantly; the image size is the caller's. */
import type { CaptionEngine } from '../../src/server/engine.js';
import type { CaptionOutcome } from '../../src/pipeline/captioner.js';

export function fakeZebraEngine(size: { width: number; height: number }): CaptionEngine {
  return {
    card: { name: 'fake' },
    modelId: 'fake@0123456789ab',
    async caption(inputs) {
      return inputs.map(
        (_, i): CaptionOutcome => ({
          source: `<buffer ${i}>`,
          image: { format: 'png', ...size },
          captions: [{ text: 'a striped zebra grazing', tokens: ['a', 'striped', 'zebra', 'grazing'], score: -1, logProb: -1 }],
          timings: { preprocessMs: 0, encoderMs: 0, decoderMs: 0, totalMs: 0 },
        }),
      );
    },
    release: async () => {},
  };
}
