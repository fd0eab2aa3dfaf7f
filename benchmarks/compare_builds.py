#!/usr/bin/env python3
"""Default build against native build, ratios from one run.

For each --bench NAME[:FILTER], runs the two Google Benchmark binaries built
from the same source -- NAME_default (compiled at the default x86-64 flags, as
the README's build gives it; its kernels reach AVX2 through run-time dispatch)
and NAME (compiled -march=native) -- back to back, rotating the order,
`--rounds` times, and prints one Markdown table: for every benchmark the median
rate of each and the ratio default / native (issue 12's target: >= 0.8). With
--baseline it also runs the default binary with DDPM_FORCE_ISA=baseline (the
default build as it would be without dispatch).

Two rates are printed: items/s over wall time (what Google Benchmark reports
with UseRealTime) and items/s over the process's CPU time, which is the
steadier one on a loaded machine for one-thread benchmarks (for two threads
the CPU time counts the caller only). --stat best takes each binary's best
round instead of the median (the round least disturbed by other processes;
on a busy machine the steadier of the two).

  python3 benchmarks/compare_builds.py --dir build/benchmarks \\
      --bench 'bench_kernels:/simd:1/' --bench bench_sampler --rounds 5 --min-time 0.2 --baseline
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402


def run(binary, flt, min_time, env=None):
    res = {}
    for name, (_, _, b) in gbench.run(binary, flt, min_time, env).items():
        ips = b.get("items_per_second", 0.0)
        cpu_ips = ips * b["real_time"] / b["cpu_time"] if b.get("cpu_time") else 0.0
        res[name] = (ips, cpu_ips, b.get("dispatch_isa"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.path.join("build", "benchmarks"))
    ap.add_argument("--bench", action="append", required=True, help="NAME or NAME:FILTER (repeatable)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--baseline", action="store_true", help="also run the default binary with DDPM_FORCE_ISA=baseline")
    ap.add_argument("--stat", choices=["median", "best"], default="median",
                    help="each binary's median round (default) or its best (fastest) round")
    a = ap.parse_args()
    kinds = ["default", "native"] + (["baseline"] if a.baseline else [])
    wall = {k: {} for k in kinds}
    cpu = {k: {} for k in kinds}
    isa = {}
    load_before = gbench.load()
    for r in range(a.rounds):
        for spec in a.bench:
            name, _, flt = spec.partition(":")
            binaries = {"default": (name + "_default", None), "native": (name, None),
                        "baseline": (name + "_default", {"DDPM_FORCE_ISA": "baseline"})}
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]  # rotate: drift hits every binary alike
            for kind in order:
                binary, env = binaries[kind]
                for bench, (ips, cips, d) in run(os.path.join(a.dir, binary), flt, a.min_time, env).items():
                    wall[kind].setdefault(bench, []).append(ips)
                    cpu[kind].setdefault(bench, []).append(cips)
                    if kind == "default":
                        isa[bench] = d
    print(f"load average (1/5/15 min) before: {load_before}, after: {gbench.load()}; "
          f"{'medians' if a.stat == 'median' else 'best'} of {a.rounds} rounds; rates in 10⁹ items/s; isa = the default binary's dispatch "
          "(0 compile-time code, 1 AVX2+FMA, 2 AVX-512)\n")
    head = "| benchmark | isa | default wall | native wall | default/native wall | default cpu | native cpu | default/native cpu |"
    sep = "|---|---|---|---|---|---|---|---|"
    if a.baseline:
        head += " no-dispatch/native cpu |"
        sep += "---|"
    print(head)
    print(sep)
    med = statistics.median if a.stat == "median" else max  # rates: the best round is the highest
    for name in wall["default"]:
        if name not in wall["native"]:
            continue
        dw, nw = med(wall["default"][name]), med(wall["native"][name])
        dc, nc = med(cpu["default"][name]), med(cpu["native"][name])
        one_thread = gbench.params(name)[1].get("threads", 1) == 1  # CPU time counts the calling thread only
        cpu_cells = (f"{dc / 1e9:.3f} | {nc / 1e9:.3f} | {dc / nc:.2f}" if one_thread else "– | – | –")
        row = (f"| {name.removesuffix('/real_time')} | {'–' if isa.get(name) is None else int(isa[name])} | "
               f"{dw / 1e9:.3f} | {nw / 1e9:.3f} | {dw / nw:.2f} | {cpu_cells} |")
        if a.baseline:
            row += f" {med(cpu['baseline'][name]) / nc:.2f} |" if one_thread else " – |"
        print(row)


if __name__ == "__main__":
    main()
