#!/usr/bin/env python3
"""Two threads against one, on an idle machine and with a competing process.

Runs the given Google Benchmark binaries (rows that differ only in their
`threads` parameter) `--rounds` times, alternating "idle" and "loaded" (a busy
loop started by this script for the run and killed after; gbench.busy), and
prints one Markdown table: median 10^9 items/s with 1 and 2 threads, and the
ratio 2 threads / 1, in each condition. Issue 12's targets: the DDPM-1000 loop
faster with 2 threads than with 1; fused kernels >= 1.8x at 196,608 and
3,145,728 elements when idle, and never slower than 1 thread under load.

  python3 benchmarks/compare_threads.py --rounds 3 \\
      --bench 'build/benchmarks/bench_sampler_default:^ddpm_loop/B:64/D:3072/' \\
      --bench 'build/benchmarks/bench_kernels_default:/n:(196608|3145728)/simd:1/'
"""
import contextlib
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402


def main():
    a = gbench.cli(__doc__).parse_args()
    rates = {}  # (condition, row name without threads, threads) -> [items/s]
    rows = []
    load_before = gbench.load()
    for r in range(a.rounds):
        for cond in (("idle", "loaded") if r % 2 == 0 else ("loaded", "idle")):
            with gbench.busy() if cond == "loaded" else contextlib.nullcontext():
                for _, base, p, rec in gbench.each(a.bench, a.min_time):
                    row = "/".join([base] + [f"{k}:{v}" for k, v in p.items() if k != "threads"])
                    if row not in rows:
                        rows.append(row)
                    rates.setdefault((cond, row, p.get("threads")), []).append(rec["items_per_second"])
    print(f"load average (1/5/15 min) before: {load_before}, after: {gbench.load()}; medians of {a.rounds} "
          "rounds; 10⁹ items/s; \"+ busy loop\": with one competing process (a busy loop this script starts)\n")
    print("| benchmark | 1 thread | 2 threads | 2/1 | + busy loop, 1 thread | + busy loop, 2 threads | + busy loop, 2/1 |")
    print("|---|---|---|---|---|---|---|")
    med = statistics.median
    for row in rows:
        cells = []
        for cond in ("idle", "loaded"):
            one, two = rates.get((cond, row, 1)), rates.get((cond, row, 2))
            if not (one and two):
                cells += ["–"] * 3
                continue
            cells += [f"{med(one) / 1e9:.3f}", f"{med(two) / 1e9:.3f}", f"{med(two) / med(one):.2f}"]
        if any(c != "–" for c in cells):
            print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
