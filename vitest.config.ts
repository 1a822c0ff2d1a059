import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Native kernels use every core through their own thread pool: run test files one at a time.
    fileParallelism: false,
    pool: "forks",
  },
});
