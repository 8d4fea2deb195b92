import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Two cores: integration tests that boot guests or build images must not starve each other.
    maxWorkers: 2,
  },
});
