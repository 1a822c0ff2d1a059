/**
 * Progress for long steps: a cli-progress bar (items/s, ETA) on a TTY, plain log lines otherwise (CI logs, pipes),
 * nothing when silenced (tests, library use).
 */
import cliProgress from "cli-progress";

export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export type ProgressMode = "auto" | "bar" | "lines" | "silent";

export type ProgressFactory = (label: string, total: number) => Progress;

/** The no-op progress. */
export const silentProgress: ProgressFactory = () => ({ tick() {}, done() {} });

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Log-line progress: at most one line per `intervalMs` plus a final line. */
export function lineProgress(write: (line: string) => void, intervalMs = 10_000): ProgressFactory {
  return (label, total) => {
    const t0 = Date.now();
    let last = t0;
    let value = 0;
    const line = (): string => {
      const el = (Date.now() - t0) / 1000;
      const rate = el > 0 ? value / el : 0;
      const eta = rate > 0 ? (total - value) / rate : NaN;
      const pct = total > 0 ? ((100 * value) / total).toFixed(0) : "100";
      return `${label}: ${value}/${total} (${pct}%) ${rate.toFixed(1)} items/s ETA ${fmtSeconds(eta)}`;
    };
    return {
      tick(n = 1) {
        value += n;
        const now = Date.now();
        if (now - last >= intervalMs && value < total) {
          last = now;
          write(line());
        }
      },
      done() {
        write(`${line()} done in ${fmtSeconds((Date.now() - t0) / 1000)}`);
      },
    };
  };
}

/** Bar progress on a stream (stderr by default so stdout stays parseable). */
export function barProgress(stream: NodeJS.WriteStream = process.stderr): ProgressFactory {
  return (label, total) => {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} | {rate} items/s | ETA {eta_formatted}`,
        stream,
        etaBuffer: 50,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    const t0 = Date.now();
    let value = 0;
    bar.start(total, 0, { rate: "0.0" });
    return {
      tick(n = 1) {
        value += n;
        const el = (Date.now() - t0) / 1000;
        bar.update(value, { rate: el > 0 ? (value / el).toFixed(1) : "0.0" });
      },
      done() {
        bar.stop();
      },
    };
  };
}

export function progressFactory(mode: ProgressMode = "auto", stream: NodeJS.WriteStream = process.stderr): ProgressFactory {
  if (mode === "silent") return silentProgress;
  if (mode === "bar" || (mode === "auto" && stream.isTTY)) return barProgress(stream);
  return lineProgress((l) => stream.write(`${l}\n`));
}
