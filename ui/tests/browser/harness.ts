// The real app over a mocked Tauri IPC (@tauri-apps/api/mocks), for the Chromium flow
// tests: the backend below keeps folders, assets and connections in memory and answers
// with the core's error codes and fields.
import { mockIPC } from "@tauri-apps/api/mocks";
import { createBackend } from "./mock-backend";

const backend = createBackend();
(window as unknown as { patchbayMock: typeof backend }).patchbayMock = backend;
mockIPC((command, args) => backend.handle(command, (args ?? {}) as Record<string, unknown>));
await import("../../src/main");
