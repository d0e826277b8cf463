// The real app over a mocked Tauri IPC (@tauri-apps/api/mocks), for the Chromium flow
// tests: the backend below keeps folders, assets and connections in memory and answers
// with the core's error codes and fields.
import { mockIPC } from "@tauri-apps/api/mocks";
import commandsRs from "../../../src-tauri/src/commands.rs?raw";
import mainRs from "../../../src-tauri/src/main.rs?raw";
import { contractProblem, parseContract } from "../ipc-contract";
import { createBackend } from "./mock-backend";

const backend = createBackend();
(window as unknown as { patchbayMock: typeof backend }).patchbayMock = backend;
// Every call the UI makes must be one the Rust side would accept; the flow tests fail
// on any recorded violation.
const contract = parseContract(commandsRs, mainRs);
mockIPC((command, args) => {
  const sent = (args ?? {}) as Record<string, unknown>;
  const problem = contractProblem(contract, command, Object.keys(sent).filter((key) => sent[key] !== undefined));
  if (problem) backend.state.contractViolations.push(problem);
  return backend.handle(command, sent);
});
await import("../../src/boot");
