// ipc.ts, the one module that calls the Rust side, calls only commands the app registers,
// with exactly the arguments their Rust signatures take.
import commandsRs from "../../../src-tauri/src/commands.rs?raw";
import mainRs from "../../../src-tauri/src/main.rs?raw";
import ipcTs from "../../src/lib/ipc.ts?raw";
import permissionsToml from "../../../src-tauri/permissions/app.toml?raw";
import { contractProblem, parseContract } from "../ipc-contract";

const contract = parseContract(commandsRs, mainRs);

describe("the IPC contract", () => {
  it("is read from the Rust side", () => {
    expect(contract.get("delete_folder")).toEqual(
      new Map([
        ["path", { optional: false }],
        ["recursive", { optional: false }],
      ]),
    );
    expect(contract.get("list_connections")?.get("search")).toEqual({ optional: true });
    expect(contractProblem(contract, "delete_folder", ["path"])).toMatch(/missing \[recursive\]/);
    expect(contractProblem(contract, "delete_folder", ["path", "recursive", "force"])).toMatch(/unknown arguments \[force\]/);
    expect(contractProblem(contract, "drop_tables", [])).toMatch(/not a command/);
  });

  it("is what ipc.ts calls", () => {
    const calls = [...ipcTs.matchAll(/call<.*?>\("(\w+)"(?:,\s*\{([^}]*)\})?\)/g)];
    expect(calls.length).toBeGreaterThan(15);
    for (const [, command, args] of calls) {
      const names = (args ?? "").split(",").map((arg: string) => arg.split(":")[0].trim()).filter(Boolean);
      expect(contractProblem(contract, command, names), command).toBeNull();
    }
    const called = new Set(calls.map(([, command]) => command));
    expect([...contract.keys()].filter((command) => !called.has(command))).toEqual([]);
  });

  it("is what the window's permission allows, command for command", () => {
    // A registered command the permission leaves out answers "not allowed" in the real window only.
    const allowed = [...(permissionsToml.match(/commands\.allow = \[([^\]]*)\]/)?.[1] ?? "").matchAll(/"(\w+)"/g)].map(([, name]) => name);
    expect(allowed.sort()).toEqual([...contract.keys()].sort());
  });
});
