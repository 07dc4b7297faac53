/**
 * The geometry of the encoder's outputs: ResNet50's last block is a 7x7 grid of regions with 2048 channels each
 * (the attention decoder reads it region-major), the pooled vector is their average, and the classifier scores
 * the 1000 ImageNet classes.
 *
 * This module is the one place those numbers are written. The converter builds the graph's output shapes from
 * it and records it in the encoder's manifest (ImageEncoder.geometry), and the feature store records the
 * encoder's geometry in its index; code that holds an encoder or a store reads the geometry from there, and
 * only code that has neither imports ENCODER_GEOMETRY.
 */

/** The layout of one image's features: `regions` rows of `channels` floats, plus a pooled row of `channels`. */
export interface FeatureGeometry {
  /** The attention grid, [rows, cols]; region k is at y = floor(k / cols), x = k % cols (row-major). */
  readonly grid: readonly [number, number];
  /** rows × cols. */
  readonly regions: number;
  /** Channels of each region, and the length of the pooled vector. */
  readonly channels: number;
}

export interface EncoderGeometry extends FeatureGeometry {
  /** Length of the logits: the ImageNet classes. */
  readonly classes: number;
}

const GRID = Object.freeze([7, 7] as const);

export const ENCODER_GEOMETRY: EncoderGeometry = Object.freeze({
  grid: GRID,
  regions: GRID[0] * GRID[1],
  channels: 2048,
  classes: 1000,
});

/** Floats in one image's feature map: regions × channels. */
export function featureMapFloats(geometry: FeatureGeometry): number {
  return geometry.regions * geometry.channels;
}

/** Whether two geometries lay features out the same way (the classes are not part of the layout). */
export function sameFeatureLayout(a: FeatureGeometry, b: FeatureGeometry): boolean {
  return a.grid[0] === b.grid[0] && a.grid[1] === b.grid[1] && a.regions === b.regions && a.channels === b.channels;
}
