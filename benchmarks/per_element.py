#!/usr/bin/env python3
"""Cost per element against the sample size D, at a fixed number of elements B·D.

Runs the given Google Benchmark binaries `--rounds` times and, for every group
of rows that differ only in B and D, prints the median nanoseconds per element
(1 / items_per_second) and the ratio to the group's largest D (issue 12's
target: D = 2 within 3x of D = 3072).

  python3 benchmarks/per_element.py --rounds 3 \\
      --bench 'build/benchmarks/bench_sampler_default:^ddpm_loop_fixed_BD/'
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402


def main():
    a = gbench.cli(__doc__).parse_args()
    groups = {}  # group name -> {D: [ns per element]}
    for _ in range(a.rounds):
        for binary, base, p, rec in gbench.each(a.bench, a.min_time):
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
