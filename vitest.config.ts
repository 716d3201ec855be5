import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: end-to-end tests spawn the CLI and are I/O heavy.
    maxWorkers: 2,
  },
});
