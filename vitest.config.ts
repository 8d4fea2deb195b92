import { defineConfig } from "vitest/config";

/** Tests that boot a full Debian guest or build one: on 2 cores they run one at a time, after the rest. */
const GUESTS = [
  "test/qemu-debian.test.ts",
  "test/vm-debian.test.ts",
  "test/build-debian.test.ts",
  "test/build-pxe-debian.test.ts",
];

const shared = {
  testTimeout: 30_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // Two cores: integration tests that boot guests or build images must not starve each other.
    maxWorkers: 2,
    projects: [
      {
        test: {
          ...shared,
          name: "main",
          include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
          exclude: ["**/node_modules/**", ...GUESTS],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: "guests",
          include: GUESTS,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
