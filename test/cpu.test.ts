import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CPU_FEATURES, cpuInfo, isaClass, type CpuInfo } from '../src/backend/cpu.js';

test('cpuInfo: fields have the right types; features are a subset of the known flags, in list order', () => {
  const info = cpuInfo();
  assert.equal(typeof info.model, 'string');
  assert.ok(info.model.length > 0);
  assert.ok(Number.isInteger(info.cores) && info.cores >= 0);
  assert.equal(typeof info.arch, 'string');
  assert.ok(Array.isArray(info.features));
  const known: readonly string[] = CPU_FEATURES;
  for (const f of info.features) assert.ok(known.includes(f), `unknown feature ${f}`);
  const positions = info.features.map((f) => known.indexOf(f));
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
  assert.equal(new Set(info.features).size, info.features.length);
  assert.ok(['amx', 'avx512-vnni', 'avx-vnni', 'avx512', 'avx2', 'other'].includes(isaClass(info)));
});

test('isaClass: the best matrix instructions present, first match wins', () => {
  const cpu = (features: string[]): CpuInfo => ({ model: 'test', cores: 4, arch: 'x64', features });
  const sapphireRapids = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile', 'amx_int8', 'amx_bf16'];
  assert.equal(isaClass(cpu(sapphireRapids)), 'amx');
  assert.equal(isaClass(cpu(['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni'])), 'avx512-vnni');
  assert.equal(isaClass(cpu(['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx_vnni'])), 'avx-vnni');
  assert.equal(isaClass(cpu(['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl'])), 'avx512');
  assert.equal(isaClass(cpu(['sse4_2', 'avx', 'avx2', 'fma', 'f16c'])), 'avx2');
  assert.equal(isaClass(cpu([])), 'other');
  assert.equal(isaClass(cpu(['sse4_2', 'avx'])), 'other');
});
