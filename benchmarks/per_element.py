#!/usr/bin/env python3
"""Cost per element against the sample size D, at a fixed number of elements B·D.

Runs the given Google Benchmark binaries `--rounds` times and, for every group
of rows that differ only in B and D, prints the median nanoseconds per element
(1 / items_per_second) and the ratio to the group's largest D (issue 12's
target: D = 2 within 3x of D = 3072).

  python3 benchmarks/per_element.py --rounds 3 \\
      --bench 'build/benchmarks/bench_sampler_default:^ddpm_loop_fixed_BD/'
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="append", required=True, help="BINARY or BINARY:FILTER (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.1)
    a = ap.parse_args()
    groups = {}  # group name -> {D: [ns per element]}
    for _ in range(a.rounds):
        for spec in a.bench:
            binary, _, flt = spec.partition(":")
            for name, (base, p, rec) in gbench.run(binary, flt, a.min_time).items():
                if "D" not in p:
                    continue
                group = "/".join([os.path.basename(binary), base] +
                                 [f"{k}:{v}" for k, v in p.items() if k not in ("B", "D")])
                groups.setdefault(group, {}).setdefault(p["D"], []).append(1e9 / rec["items_per_second"])
    print(f"medians of {a.rounds} rounds; load average after: {gbench.load()}\n")
    print("| benchmark | D | ns per element | / largest D |")
    print("|---|---|---|---|")
    for group, by_d in groups.items():
        ref = statistics.median(by_d[max(by_d)])
        for d in sorted(by_d):
            ns = statistics.median(by_d[d])
            print(f"| {group} | {d} | {ns:.2f} | {ns / ref:.2f} |")


if __name__ == "__main__":
    main()
