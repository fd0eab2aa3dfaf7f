#!/usr/bin/env python3
"""Small helpers shared by the benchmark drivers (Python 3 standard library).

  run(binary, filter, min_time)  one run of a Google Benchmark binary:
                                 {name: (parameters, record)}
  busy()                         a competing process (a busy loop) while in the block
  machine()                      Markdown lines: CPU, ISA flags, compiler, date, load

Run on its own it prints the machine lines:  python3 benchmarks/gbench.py [--compiler g++]
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys


def params(run_name):
    """'per_element/ddpm_step/D:2/threads:1/real_time' -> ('per_element/ddpm_step', {'D': 2, 'threads': 1})."""
    parts = [p for p in run_name.split("/") if p != "real_time"]
    return ("/".join(p for p in parts if ":" not in p),
            {k: int(v) for k, v in (p.split(":") for p in parts if ":" in p)})


def run(binary, flt="", min_time=0.1, env=None):
    """Runs `binary` once; returns {run_name: (base name, parameters, record)} (no aggregates)."""
    cmd = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    if flt:
        cmd.append(f"--benchmark_filter={flt}")
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=full_env).stdout
    if not out.strip():
        sys.exit(f"{binary}: no benchmark matches the filter {flt!r}")
    res = {}
    for b in json.loads(out)["benchmarks"]:
        base, p = params(b["run_name"])
        res[b["run_name"]] = (base, p, b)
    return res


def cli(doc):
    """The drivers' common arguments: --bench BINARY[:FILTER] (repeatable), --rounds, --min-time."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="append", required=True, help="BINARY or BINARY:FILTER (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per measurement")
    return ap


def each(specs, min_time):
    """Runs every BINARY[:FILTER] of `specs` once; yields (binary, base name, parameters, record)."""
    for spec in specs:
        binary, _, flt = spec.partition(":")
        for base, p, rec in run(binary, flt, min_time).values():
            yield binary, base, p, rec


@contextlib.contextmanager
def busy():
    """A competing process for the length of the block: one core's busy loop, killed after."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def load():
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def machine(compiler="c++"):
    """Markdown bullet lines describing this machine and the toolchain."""
    model, flags = platform.processor() or "?", set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    isa = [f for f in ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
    try:
        cc = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = compiler
    try:
        import torch
        tv = torch.__version__
    except ImportError:
        tv = "not installed"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [f"- CPU: {model}, {os.cpu_count()} logical CPUs; ISA flags: {' '.join(isa)}"
            f" ({'AVX-512' if 'avx512f' in flags else 'no AVX-512'})",
            f"- compiler: {cc}; Python {platform.python_version()}, torch {tv}",
            f"- date: {now}; load average (1/5/15 min): {load()}"]


if __name__ == "__main__":
    cc = sys.argv[sys.argv.index("--compiler") + 1] if "--compiler" in sys.argv else "c++"
    print("\n".join(machine(cc)))
