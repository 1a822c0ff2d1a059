// Progress: a cli-progress bar on a TTY, plain log lines (count, percent, items/s, ETA) when not a TTY.
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { lineProgress, progressFactory } from "../lib/eval/progress.js";

function fakeStream(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(c, _e, cb) {
      chunks.push(String(c));
      cb();
    },
  }) as unknown as NodeJS.WriteStream & { text: () => string };
  Object.assign(w, { isTTY, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true, text: () => chunks.join("") });
  return w;
}

describe("progress", () => {
  it("log lines: count, percent, rate and ETA, and a final line", () => {
    const lines: string[] = [];
    const p = lineProgress((l) => lines.push(l), 0)("baseline arc_easy", 10);
    p.tick(3);
    p.tick(2);
    p.done();
    expect(lines[0]).toMatch(/^baseline arc_easy: 3\/10 \(30%\) [\d.]+ items\/s ETA \S+$/);
    expect(lines[1]).toMatch(/^baseline arc_easy: 5\/10 \(50%\)/);
    expect(lines[lines.length - 1]).toMatch(/5\/10 \(50%\) .* done in \S+$/);
  });

  it("auto: lines when the stream is not a TTY, a bar when it is", () => {
    const pipe = fakeStream(false);
    const p = progressFactory("auto", pipe)("task", 4);
    p.tick(4);
    p.done();
    expect(pipe.text()).toMatch(/task: 4\/4 \(100%\) .* done in/);
    const tty = fakeStream(true);
    const b = progressFactory("auto", tty)("task", 4);
    b.tick(2);
    b.done();
    expect(tty.text()).toMatch(/task \[.*\] 2\/4 \| [\d.]+ items\/s \| ETA/);
    const silent = fakeStream(false);
    progressFactory("silent", silent)("task", 4).done();
    expect(silent.text()).toBe("");
  });
});
