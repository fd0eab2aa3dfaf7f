#!/usr/bin/env python3
"""Default build against native build, ratios from one run.

Runs two Google Benchmark binaries built from the same source -- e.g.
bench_kernels_default (compiled at the default x86-64 flags; its kernels reach
AVX2 through run-time dispatch) and bench_kernels (compiled -march=native) --
back to back, alternating the order, `--rounds` times, and prints for every
benchmark the median rate of each and the ratio default / native (issue 12's
target: >= 0.8). With --baseline it also runs the default binary with
DDPM_FORCE_ISA=baseline (the default build as it was without dispatch).

Two rates are printed: items/s over wall time (what Google Benchmark reports
with UseRealTime) and items/s over the process's CPU time, which is the
steadier one on a loaded machine for one-thread benchmarks (for two threads
the CPU time counts the caller only).

  python3 benchmarks/compare_builds.py \\
      --default build/benchmarks/bench_kernels_default --native build/benchmarks/bench_kernels \\
      --filter 'simd:1' --rounds 5 --min-time 0.2 --baseline
"""
import argparse
import json
import os
import statistics
import subprocess


def run(binary, flt, min_time, env=None):
    cmd = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    if flt:
        cmd.append(f"--benchmark_filter={flt}")
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=full_env).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        ips = b.get("items_per_second", 0.0)
        cpu_ips = ips * b["real_time"] / b["cpu_time"] if b.get("cpu_time") else 0.0
        res[b["name"]] = (ips, cpu_ips, b.get("dispatch_isa"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--default", required=True)
    ap.add_argument("--native", required=True)
    ap.add_argument("--filter", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--baseline", action="store_true", help="also run the default binary with DDPM_FORCE_ISA=baseline")
    a = ap.parse_args()
    kinds = [("default", a.default, None), ("native", a.native, None)]
    if a.baseline:
        kinds.append(("baseline", a.default, {"DDPM_FORCE_ISA": "baseline"}))
    wall = {k[0]: {} for k in kinds}
    cpu = {k[0]: {} for k in kinds}
    isa = {}
    load_before = os.getloadavg()
    for r in range(a.rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate: drift hits every binary alike
        for kind, binary, env in order:
            for name, (ips, cips, d) in run(binary, a.filter, a.min_time, env).items():
                wall[kind].setdefault(name, []).append(ips)
                cpu[kind].setdefault(name, []).append(cips)
                if kind == "default":
                    isa[name] = d
    print(f"load average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()}")
    print(f"medians of {a.rounds} rounds; rates in 10^9 items/s")
    head = "| benchmark | isa | default wall | native wall | default/native wall | default cpu | native cpu | default/native cpu |"
    sep = "|---|---|---|---|---|---|---|---|"
    if a.baseline:
        head += " no-dispatch/native cpu |"
        sep += "---|"
    print(head)
    print(sep)
    med = statistics.median
    for name in wall["default"]:
        if name not in wall["native"]:
            continue
        dw, nw = med(wall["default"][name]), med(wall["native"][name])
        dc, nc = med(cpu["default"][name]), med(cpu["native"][name])
        row = (f"| {name} | {isa.get(name)} | {dw / 1e9:.3f} | {nw / 1e9:.3f} | {dw / nw:.2f} | "
               f"{dc / 1e9:.3f} | {nc / 1e9:.3f} | {dc / nc:.2f} |")
        if a.baseline:
            row += f" {med(cpu['baseline'][name]) / nc:.2f} |"
        print(row)


if __name__ == "__main__":
    main()
