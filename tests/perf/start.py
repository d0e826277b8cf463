#!/usr/bin/env python3
"""Start-up of Patchbay's window against an empty Tauri 2 window, launched alternately.

argv: PATCHBAY EMPTY_TAURI RUNS DATA_DIR...  Run under Xvfb (-noreset) with a Secret Service
(tests/perf/compare-start.sh does both). For each data folder (an empty path means a new,
empty one) prints medians of:
  window       ms from exec to a visible X window of the process (xdotool);
  first paint  ms until that window shows more than 2 colours (ImageMagick import): drawn,
               not just a background;
  idle RSS     MiB of the process and its children (WebKit's processes) after 3 s idle;
then the ratios. A measurement, not a test: it always exits 0 when both windows painted.
"""
import json, os, subprocess, sys, tempfile, time

PATCHBAY, EMPTY, RUNS, DATA_DIRS = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
DEADLINE_S = 60


def family(root):
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        children.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(pid))
    pids = [root]
    for pid in pids:
        pids += children.get(pid, [])
    return pids


def resident_mib(pids):
    kib = 0
    for pid in pids:
        try:
            kib += next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return kib / 1024


def launch(binary, env):
    started = time.monotonic()
    elapsed = lambda: (time.monotonic() - started) * 1000
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mapped = painted = window = None
    while window is None and elapsed() < DEADLINE_S * 1000:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--pid", str(process.pid)],
                               capture_output=True, text=True).stdout.split()
        if found:
            mapped, window = elapsed(), found[0]
        else:
            time.sleep(0.01)
    while window and painted is None and elapsed() < DEADLINE_S * 1000:
        colours = subprocess.run(["import", "-silent", "-window", window, "-format", "%k", "info:"],
                                 capture_output=True, text=True).stdout.strip()
        if colours.isdigit() and int(colours) > 2:
            painted = elapsed()
        else:
            time.sleep(0.02)
    time.sleep(3)
    memory = resident_mib(family(process.pid))
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(1)
    return mapped, painted, memory


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def compare(data_dir):
    env = dict(os.environ, PATCHBAY_DATA_DIR=data_dir or tempfile.mkdtemp(prefix="patchbay-start-"))
    launch(EMPTY, env), launch(PATCHBAY, env)  # warm the page cache for both
    runs = {"empty": [], "patchbay": []}
    for _ in range(RUNS):
        for name, binary in (("empty", EMPTY), ("patchbay", PATCHBAY)):
            runs[name].append(launch(binary, env))
    figures = {name: {"window_ms": median(r[0] for r in rs), "paint_ms": median(r[1] for r in rs),
                      "rss_mib": median(r[2] for r in rs)} for name, rs in runs.items()}
    label = "empty data folder" if not data_dir else f"data folder {data_dir}"
    print(f"{label}: {json.dumps(figures)}")
    if not figures["patchbay"]["paint_ms"] or not figures["empty"]["paint_ms"]:
        sys.exit("a window never painted")
    ratio = lambda key: figures["patchbay"][key] / figures["empty"][key]
    print(f"  window {ratio('window_ms'):.2f}x, first paint {ratio('paint_ms'):.2f}x (goal <= 1.2), "
          f"idle RSS {ratio('rss_mib'):.2f}x (goal <= 1.3) the empty Tauri window")


for data_dir in DATA_DIRS or [""]:
    compare(data_dir)
