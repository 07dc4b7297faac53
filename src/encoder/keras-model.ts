/**
 * Reads a TensorFlow.js "layers-model" (model.json + binary weight shards) without TensorFlow:
 * the layer graph as Keras wrote it and every weight as a Float32Array.
 */
import { readFile, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { PixelInfoError, ErrorCodes } from '../errors.js';

export interface KerasLayer {
  name: string;
  className: string;
  config: Record<string, any>;
  /** Names of the layers feeding this one, in order. */
  inputs: string[];
}

export interface KerasWeight {
  shape: number[];
  data: Float32Array;
}

export interface KerasModel {
  layers: KerasLayer[];
  inputLayers: string[];
  outputLayers: string[];
  weights: Map<string, KerasWeight>;
  /** sha256 over model.json and every shard, in manifest order. */
  sha256: string;
}

export async function readKerasModel(modelJsonPath: string): Promise<KerasModel> {
  let json: any;
  try {
    json = JSON.parse(await readFile(modelJsonPath, 'utf8'));
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.MODEL_NOT_FOUND, `cannot read TF.js model ${modelJsonPath}: ${(err as Error).message}`, {
      subject: modelJsonPath,
      cause: err,
    });
  }
  if (json.format !== 'layers-model') {
    throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelJsonPath}: expected a TF.js layers-model, got ${json.format}`);
  }
  const config = json.modelTopology.model_config?.config ?? json.modelTopology.config;
  const layers: KerasLayer[] = config.layers.map((l: any) => ({
    name: l.name,
    className: l.class_name,
    config: l.config,
    inputs: (l.inbound_nodes[0] ?? []).map((inbound: any[]) => inbound[0] as string),
  }));

  const hash = createHash('sha256');
  hash.update(await readFile(modelJsonPath));
  const weights = new Map<string, KerasWeight>();
  const dir = dirname(modelJsonPath);
  for (const group of json.weightsManifest) {
    const shards: Buffer[] = [];
    for (const p of group.paths) {
      const shard = await readFile(join(dir, p));
      hash.update(shard);
      shards.push(shard);
    }
    const all = Buffer.concat(shards);
    // Copy into an aligned buffer: a Float32Array view needs a 4-byte aligned offset.
    const aligned = new Float32Array(all.byteLength / 4);
    new Uint8Array(aligned.buffer).set(all);
    let offset = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32') throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `weight ${w.name}: unsupported dtype ${w.dtype}`);
      const size = w.shape.reduce((a: number, b: number) => a * b, 1);
      if (offset + size > aligned.length) {
        throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelJsonPath}: weight shards end before ${w.name}`);
      }
      weights.set(w.name, { shape: w.shape, data: aligned.subarray(offset, offset + size) });
      offset += size;
    }
    if (offset !== aligned.length) {
      throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${modelJsonPath}: ${aligned.length - offset} unexpected values after the last weight`);
    }
  }
  return {
    layers,
    inputLayers: config.input_layers.map((x: any[]) => x[0]),
    outputLayers: config.output_layers.map((x: any[]) => x[0]),
    weights,
    sha256: hash.digest('hex'),
  };
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}
