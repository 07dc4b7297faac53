/**
 * The per-row graph format of show-attend-tell (models exported before the per-image one; see
 * ./show-attend-tell.ts): its step graph wants `features` and `proj_features` copied once per row. This keeps
 * such copies, rebuilt only for the rows whose image changed.
 */
import { ort, type Tensor } from '../../backend/onnx.js';

/** Image-level tensors shared by all rows of one search, and the per-row copies the step graph needs. */
export class ImageBatch {
  /** Row → image map the expanded buffers currently hold, or null before the first step. */
  private expandedFor: BigInt64Array | null = null;
  private features?: Float32Array;
  private proj?: Float32Array;
  private featuresTensor?: Tensor;
  private projTensor?: Tensor;

  constructor(
    readonly imageFeatures: Float32Array,
    readonly imageProj: Float32Array,
    readonly regions: number,
    readonly featureDim: number,
    readonly attentionDim: number,
  ) {}

  /**
   * [rows, regions, D] tensors of features and projected features for this row → image map. They are rebuilt
   * only when the map changes (after step 1 the beams keep their rows until an image finishes), and then only
   * the rows whose image changed are copied, into buffers reused while they are big enough.
   */
  expand(image: BigInt64Array): { features: Tensor; proj: Tensor } {
    const rows = image.length;
    const previous = this.expandedFor;
    if (previous && this.featuresTensor && this.projTensor && sameMap(previous, image)) {
      return { features: this.featuresTensor, proj: this.projTensor };
    }
    const fRow = this.regions * this.featureDim;
    const pRow = this.regions * this.attentionDim;
    let reuse = previous !== null;
    if (!this.features || this.features.length < rows * fRow) {
      this.features = new Float32Array(rows * fRow);
      this.proj = new Float32Array(rows * pRow);
      reuse = false;
    }
    for (let r = 0; r < rows; r++) {
      const img = Number(image[r]);
      if (reuse && r < previous!.length && previous![r] === image[r]) continue;
      this.features.set(this.imageFeatures.subarray(img * fRow, (img + 1) * fRow), r * fRow);
      this.proj!.set(this.imageProj.subarray(img * pRow, (img + 1) * pRow), r * pRow);
    }
    // Views from offset 0 of the reused buffers: no copy, and no reliance on byteOffset handling.
    this.featuresTensor = new ort.Tensor('float32', this.features.subarray(0, rows * fRow), [rows, this.regions, this.featureDim]);
    this.projTensor = new ort.Tensor('float32', this.proj!.subarray(0, rows * pRow), [rows, this.regions, this.attentionDim]);
    this.expandedFor = image.slice();
    return { features: this.featuresTensor, proj: this.projTensor };
  }
}

function sameMap(a: BigInt64Array, b: BigInt64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
