/** The API's request limits, in one place for the server's schemas and the web page (no Node imports). */
export const LIMITS = {
  beam: { min: 1, max: 10 },
  nbest: { min: 1, max: 10 },
  maxLength: { min: 1, max: 50 },
  references: 50,
  sentenceChars: 2000,
  queryChars: 200,
  libraryLimit: 100,
  /** Sentences per POST /v1/match. */
  matchTexts: 32,
} as const;

/**
 * Below this confidence (the matcher's calibrated probability that the caption describes the image) a caption is
 * shown as low confidence on the web page (and flagged so in the API's documentation).
 */
export const LOW_CONFIDENCE = 0.5;
