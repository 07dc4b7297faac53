/**
 * The image canvas of the Caption tab: the picture, and over it the attention heat-map of one word (its 7x7
 * grid upsampled bilinearly and coloured with turbo, by src/render/colormap.ts, the renderer the CLI's PNG
 * heat-maps use too), with an alpha that grows with the weight so unattended regions stay clear.
 */
import { TURBO_LUT, toFlatGrid, turboOffset, upsampleBilinear, type AttentionGrid } from '../../src/render/colormap.js';

/** The longer side of the drawn image, px (small images are scaled up, big ones down; CSS fits it to the card). */
const VIEW_SIDE = 720;
/** The heat-map is computed at up to this size and scaled up by the canvas (smooth already: it is bilinear). */
const HEATMAP_SIDE = 360;

export interface HeatmapStyle {
  /** Alpha where the weight is 0, 0..1. */
  minAlpha?: number;
  /** Alpha of the most attended region, 0..1. */
  maxAlpha?: number;
}

/** RGBA pixels (width×height×4) of the overlay of one word's attention grid: turbo colours, alpha from the weight. */
export function heatmapRgba(grid: AttentionGrid, width: number, height: number, { minAlpha = 0.12, maxAlpha = 0.72 }: HeatmapStyle = {}): Uint8ClampedArray<ArrayBuffer> {
  const { flat, rows, cols } = toFlatGrid(grid);
  const heat = upsampleBilinear(flat, rows, cols, width, height);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0, i = 0; p < heat.length; p++, i += 4) {
    const c = turboOffset(heat[p]);
    rgba[i] = TURBO_LUT[c];
    rgba[i + 1] = TURBO_LUT[c + 1];
    rgba[i + 2] = TURBO_LUT[c + 2];
    rgba[i + 3] = Math.round(255 * (minAlpha + (maxAlpha - minAlpha) * heat[p]));
  }
  return rgba;
}

/** Draws a decoded image on a canvas, optionally with a heat-map over it. */
export class ImageCanvas {
  private readonly ctx: CanvasRenderingContext2D;
  private readonly overlay = document.createElement('canvas');
  private bitmap: ImageBitmap | null = null;
  /** Counts loads and clears, so that a slow decode does not replace a newer image or a cleared one. */
  private loads = 0;

  constructor(private readonly canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('this browser has no 2D canvas');
    this.ctx = ctx;
  }

  /**
   * Decodes `file` and draws it. Resolves false when the browser cannot decode it (the server may still caption
   * it) or when a later load replaced it.
   */
  async load(file: Blob): Promise<boolean> {
    this.clear();
    const load = this.loads;
    const bitmap = await createImageBitmap(file).catch(() => null);
    if (load !== this.loads) {
      bitmap?.close();
      return false;
    }
    if (!bitmap) return false;
    this.bitmap = bitmap;
    const scale = VIEW_SIDE / Math.max(bitmap.width, bitmap.height);
    this.canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    this.canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    this.draw();
    return true;
  }

  /** Forgets the image and any load in progress (the canvas keeps its last pixels; the drop zone hides it). */
  clear(): void {
    this.loads++;
    this.bitmap?.close();
    this.bitmap = null;
  }

  /** Draws the image, and the heat-map of `grid` over it when given. */
  draw(grid?: AttentionGrid): void {
    if (!this.bitmap) return;
    const { ctx, canvas, overlay } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(this.bitmap, 0, 0, canvas.width, canvas.height);
    if (!grid) return;
    const scale = Math.min(1, HEATMAP_SIDE / Math.max(canvas.width, canvas.height));
    overlay.width = Math.max(1, Math.round(canvas.width * scale));
    overlay.height = Math.max(1, Math.round(canvas.height * scale));
    overlay.getContext('2d')?.putImageData(new ImageData(heatmapRgba(grid, overlay.width, overlay.height), overlay.width, overlay.height), 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(overlay, 0, 0, canvas.width, canvas.height);
  }
}
