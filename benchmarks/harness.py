"""What the end-to-end benchmark scripts share: a simmine command timed in a fresh process, and the report
written beside its raw figures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def timed_cli(command: str, out: str, *flags) -> dict:
    """`simmine COMMAND --out OUT FLAGS` in a fresh process under /usr/bin/time -v: wall seconds, the child's
    peak RSS (GB) and the output's manifest."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "simmine.cli", command, "--out", out, "--quiet",
                        *flags], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    rss_kb = next(int(line.split(":")[1]) for line in r.stderr.splitlines() if "Maximum resident set size" in line)
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    return {"wall_s": round(wall, 3), "peak_rss_gb": round(rss_kb / 1e6, 3), "manifest": manifest}


def warm(path: str) -> None:
    """Reads a file once, so that neither simmine nor a peer is timed on a cold page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def machine() -> dict:
    """The machine a run measured: cores, CPU model and platform (results from different CPUs are not
    compared)."""
    import platform

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version()}


def write_report(out_dir: str, name: str, results: dict, lines: list) -> None:
    """Prints the report and writes NAME.json (raw figures, with the machine) and NAME.md (the report) under
    out_dir."""
    results = {**results, "machine": {**machine(), **results.get("machine", {})}}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:  # the raw figures first, whatever the report does
        json.dump(results, f, indent=1, default=str)
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cpus']} cores"] + lines
    print("\n".join(lines))
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write("```\n" + "\n".join(lines) + "\n```\n")
