/**
 * The CPU this process runs on: model, core count, architecture and the SIMD / matrix features that matter to
 * onnxruntime's kernels (AVX2, AVX-512, VNNI, AMX). The benchmarks (bench/encoder.ts, caption.ts, load.ts) print it
 * and record it in their JSON, so a number can be read together with the machine that produced it; precision
 * choices per machine type (fp32 vs int8) key on `isaClass`. Node only (reads /proc/cpuinfo on Linux).
 */
import { readFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';

export interface CpuInfo {
  model: string;
  /** Logical CPUs the OS reports. */
  cores: number;
  /** process.arch / os.arch(): 'x64', 'arm64', … */
  arch: string;
  /** The flags of CPU_FEATURES the CPU has, in that order (empty where /proc/cpuinfo cannot be read). */
  features: string[];
}

/** The /proc/cpuinfo flags reported, in this order. */
export const CPU_FEATURES = [
  'sse4_2',
  'avx',
  'avx2',
  'fma',
  'f16c',
  'avx512f',
  'avx512bw',
  'avx512vl',
  'avx512_vnni',
  'avx_vnni',
  'avx512_bf16',
  'amx_tile',
  'amx_int8',
  'amx_bf16',
] as const;

export type IsaClass = 'amx' | 'avx512-vnni' | 'avx-vnni' | 'avx512' | 'avx2' | 'other';

export function cpuInfo(): CpuInfo {
  const list = cpus();
  const cores = list.length;
  const fallbackModel = list[0]?.model?.trim() || 'unknown';
  if (platform() === 'linux') {
    try {
      const text = readFileSync('/proc/cpuinfo', 'utf8');
      const field = (name: string) => text.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1].trim();
      const flags = new Set((field('flags') ?? '').split(/\s+/).filter(Boolean));
      return { model: field('model name') || fallbackModel, cores, arch: arch(), features: CPU_FEATURES.filter((f) => flags.has(f)) };
    } catch {
      // fall through: no /proc (a sandbox, a container without it)
    }
  }
  return { model: fallbackModel, cores, arch: arch(), features: [] };
}

/** The machine type, by the best matrix instructions it has (first match: AMX, AVX-512 VNNI, AVX-VNNI, AVX-512, AVX2). */
export function isaClass(info: CpuInfo = cpuInfo()): IsaClass {
  const has = (flag: string) => info.features.includes(flag);
  if (has('amx_int8')) return 'amx';
  if (has('avx512_vnni')) return 'avx512-vnni';
  if (has('avx_vnni')) return 'avx-vnni';
  if (has('avx512f')) return 'avx512';
  if (has('avx2')) return 'avx2';
  return 'other';
}

/** One line for a benchmark's header: `CPU: <model>, <cores> cores, features: avx2 fma …`. */
export function cpuLine(info: CpuInfo = cpuInfo()): string {
  return `CPU: ${info.model}, ${info.cores} cores, features: ${info.features.length ? info.features.join(' ') : '(none)'}`;
}

/** What the benchmarks put in their JSON: `{ model, cores, features, isa }`. */
export function cpuSummary(info: CpuInfo = cpuInfo()): { model: string; cores: number; features: string[]; isa: IsaClass } {
  return { model: info.model, cores: info.cores, features: info.features, isa: isaClass(info) };
}
