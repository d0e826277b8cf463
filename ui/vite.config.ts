import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// `--mode browser-test` also builds tests/browser/harness.html: the real app over a
// mocked Tauri IPC, for the Chromium flow tests.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  clearScreen: false,
  // The tests read the Rust side's IPC commands (tests/ipc-contract.ts).
  server: { port: 5173, strictPort: true, fs: { allow: [".", "../src-tauri/src", "../src-tauri/permissions", "../src-tauri/core/connectors"] } },
  build: {
    outDir: mode === "browser-test" ? "dist-test" : "dist",
    target: "es2022",
    rollupOptions:
      mode === "browser-test"
        ? { input: { harness: "tests/browser/harness.html" } }
        : undefined,
  },
  test: {
    environment: "jsdom",
    globals: true,
    include: ["tests/unit/**/*.test.ts"],
  },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
}));
