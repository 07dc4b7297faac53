/** The API's request limits, in one place for the server's schemas and the web page (no Node imports). */
export const LIMITS = {
  beam: { min: 1, max: 10 },
  nbest: { min: 1, max: 10 },
  maxLength: { min: 1, max: 50 },
  references: 50,
  sentenceChars: 2000,
  queryChars: 200,
  libraryLimit: 100,
} as const;
