// Prints the window's speed figures: launch to the first painted Connections tab, and
// the idle resident memory of the app with its WebKit processes, on an empty store and
// on a seeded one (10,000 folders, 100,000 connections). A measurement, not a test.
//
//   cargo build --release -p patchbay-desktop --features custom-protocol
//   cargo build --release -p patchbay-core --example seed
//   xvfb-run -a -s "-screen 0 1280x800x24 -noreset" node tests/desktop/speed.mjs
//
// The launch time is observed through WebDriver (session request to the first table
// row, or the empty state, present in the page), so it includes the driver's own
// overhead of a few tens of milliseconds.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Window, waitFor } from "./webdriver.mjs";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const release = join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "release");
const RUNS = Number(process.env.RUNS ?? 3);

/** Resident memory (MiB) of the app and every process below it. */
function residentMiB(rootName) {
  const stat = (pid) => readFileSync(`/proc/${pid}/stat`, "utf8");
  const pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  const parent = new Map();
  const names = new Map();
  for (const pid of pids) {
    try {
      const text = stat(pid);
      names.set(pid, text.slice(text.indexOf("(") + 1, text.lastIndexOf(")")));
      parent.set(pid, text.slice(text.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {}
  }
  const roots = pids.filter((pid) => names.get(pid)?.startsWith(rootName.slice(0, 15)));
  const family = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) if (family.has(ppid) && !family.has(pid)) family.add(pid), (grew = true);
  }
  let kib = 0;
  for (const pid of family) {
    try {
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {}
  }
  return kib / 1024;
}

async function measure(label, dataDir) {
  const launches = [];
  const memory = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const window = await Window.open(join(release, "patchbay-desktop"), { ...process.env, PATCHBAY_DATA_DIR: dataDir });
    await waitFor("the Connections tab", async () => (await window.find(".table-body .row, .empty-state")) && true, 60000);
    launches.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    memory.push(residentMiB("patchbay-desktop"));
    await window.close();
  }
  const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(
    `${label.padEnd(40)} launch→Connections tab: median ${median(launches).toFixed(0)} ms (min ${Math.min(...launches).toFixed(0)})` +
      `   idle RSS: median ${median(memory).toFixed(0)} MiB`,
  );
}

const empty = mkdtempSync(join(tmpdir(), "patchbay-speed-empty-"));
const seeded = mkdtempSync(join(tmpdir(), "patchbay-speed-seeded-"));
execFileSync(join(release, "examples", "seed"), [seeded, "10000", "100000"], { stdio: "inherit" });
await measure("empty store", empty);
await measure("10,000 folders, 100,000 connections", seeded);
