/** Shared by the benchmarks: call `fn` repeatedly for about `seconds` (at least twice) after one warm-up call. */
export async function timeLoop(fn: () => Promise<unknown> | unknown, seconds: number): Promise<{ calls: number; seconds: number }> {
  await fn(); // warm-up
  let calls = 0;
  const t0 = performance.now();
  while ((performance.now() - t0) / 1000 < seconds || calls < 2) {
    await fn();
    calls++;
  }
  return { calls, seconds: (performance.now() - t0) / 1000 };
}
