// Types of web/heatmap.js for the TypeScript tests that import it (the browser loads the .js directly).
export declare const TURBO_LUT: Uint8ClampedArray;
export declare function toFlatGrid(grid: number[][] | ArrayLike<number>): { flat: Float32Array; rows: number; cols: number };
export declare function upsampleBilinear(flat: ArrayLike<number>, rows: number, cols: number, width: number, height: number): Float32Array;
export declare function heatmapRgba(
  grid: number[][] | ArrayLike<number>,
  width: number,
  height: number,
  options?: { minAlpha?: number; maxAlpha?: number },
): Uint8ClampedArray;
