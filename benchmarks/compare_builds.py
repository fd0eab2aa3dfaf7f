#!/usr/bin/env python3
"""Default build against native build, ratios from one run.

Runs two Google Benchmark binaries built from the same source (e.g.
bench_kernels_default, compiled at the default x86-64 flags and reaching AVX2
through run-time dispatch, and bench_kernels, compiled -march=native) back to
back, alternating, `--rounds` times, and prints per benchmark the median
items/s of each and the ratio default / native (target >= 0.8).

  python3 benchmarks/compare_builds.py \\
      --default build/benchmarks/bench_kernels_default --native build/benchmarks/bench_kernels \\
      --filter 'simd:1' --rounds 5 --min-time 0.2
"""
import argparse
import json
import os
import statistics
import subprocess


def run(binary, flt, min_time):
    cmd = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    if flt:
        cmd.append(f"--benchmark_filter={flt}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        res[b["name"]] = (b.get("items_per_second", 0.0), b.get("dispatch_isa"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--default", required=True)
    ap.add_argument("--native", required=True)
    ap.add_argument("--filter", default="")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2)
    a = ap.parse_args()
    rates = {"default": {}, "native": {}}
    isa = {}
    for r in range(a.rounds):
        # alternate which binary goes first, so drift hits both alike
        order = [("default", a.default), ("native", a.native)]
        if r % 2:
            order.reverse()
        for kind, binary in order:
            for name, (ips, d) in run(binary, a.filter, a.min_time).items():
                rates[kind].setdefault(name, []).append(ips)
                if kind == "default":
                    isa[name] = d
    print(f"load average before/after: {os.getloadavg()}")
    print(f"| benchmark | default (10^9/s) | native (10^9/s) | default / native | dispatched isa (default) |")
    print("|---|---|---|---|---|")
    for name in rates["default"]:
        if name not in rates["native"]:
            continue
        d = statistics.median(rates["default"][name])
        n = statistics.median(rates["native"][name])
        print(f"| {name} | {d / 1e9:.3f} | {n / 1e9:.3f} | {d / n:.2f} | {isa.get(name)} |")


if __name__ == "__main__":
    main()
