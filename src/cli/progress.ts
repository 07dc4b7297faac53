/** One progress bar style for every long command: count, rate, ETA, on stderr so stdout stays parseable. */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, extra?: Record<string, string | number>): void;
  stop(): void;
}

export function createProgress(total: number, label: string, opts: { enabled?: boolean; start?: number } = {}): Progress {
  const enabled = opts.enabled ?? true;
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} {bar} {value}/{total} | {rate} img/s | ETA {eta_formatted} | failed {failed}`,
      hideCursor: process.stderr.isTTY,
      noTTYOutput: !process.stderr.isTTY,
      notTTYSchedule: 10_000,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  const startValue = opts.start ?? 0;
  bar.start(total, startValue, { rate: '0.0', failed: 0 });
  return {
    update(done, extra = {}) {
      const rate = (done - startValue) / Math.max(1e-3, (Date.now() - started) / 1000);
      bar.update(done, { rate: rate.toFixed(1), ...extra });
    },
    stop() {
      bar.stop();
    },
  };
}
