/** Caption text for files: CSV fields. (Alt text: src/text/alt-text.ts.) */

/** One CSV field (RFC 4180): quoted when it holds a comma, quote, line break or edge space; quotes doubled. */
export function csvField(value: string | number): string {
  const s = String(value);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(values: Array<string | number>): string {
  return values.map(csvField).join(',');
}
