// The IPC contract as the Rust side declares it, read from the source the app is built
// from: every #[tauri::command] in src-tauri/src/commands.rs that main.rs registers,
// with its arguments named as JavaScript sends them (camelCase). The browser flows'
// mock backend and the UI's ipc.ts are both checked against it, so a renamed command or
// argument fails a test instead of only the real window.

export type Contract = Map<string, Map<string, { optional: boolean }>>;

/** Splits `a: A<'_, B>, c: C` at the commas that are not inside angle brackets. */
function topLevel(params: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of params) {
    if (char === "<" || char === "(") depth++;
    if (char === ">" || char === ")") depth--;
    if (char === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts.map((part) => part.trim()).filter(Boolean);
}

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());

export function parseContract(commandsRs: string, mainRs: string): Contract {
  const registered = new Set([...mainRs.matchAll(/commands::(\w+)/g)].map((match) => match[1]));
  const contract: Contract = new Map();
  for (const match of commandsRs.matchAll(/#\[tauri::command\]\s*pub (?:async )?fn (\w+)\s*\(([^{]*?)\)\s*->/gs)) {
    const [, name, params] = match;
    if (!registered.has(name)) continue;
    const args = new Map<string, { optional: boolean }>();
    for (const param of topLevel(params)) {
      const [binding, type] = param.split(/:(.*)/s).map((part) => part.trim());
      const argName = binding.replace(/^mut\s+/, "");
      // Injected by Tauri, not sent by the UI.
      if (/^(Core|State|tauri::|AppHandle|Window)/.test(type)) continue;
      args.set(camel(argName), { optional: type.startsWith("Option<") });
    }
    contract.set(name, args);
  }
  return contract;
}

/** What is wrong with calling `command` with these argument names, or null. */
export function contractProblem(contract: Contract, command: string, argNames: string[]): string | null {
  const expected = contract.get(command);
  if (!expected) return `'${command}' is not a command the app registers`;
  const unknown = argNames.filter((name) => !expected.has(name));
  const missing = [...expected].filter(([name, { optional }]) => !optional && !argNames.includes(name)).map(([n]) => n);
  if (unknown.length || missing.length) {
    return `'${command}': unknown arguments [${unknown.join(", ")}], missing [${missing.join(", ")}]`;
  }
  return null;
}
