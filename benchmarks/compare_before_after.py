#!/usr/bin/env python3
"""Two builds of the same benchmarks (before and after a change), in one run.

For each --bench NAME[:FILTER], runs BEFORE/NAME and AFTER/NAME back to back,
rotating the order, `--rounds` times, and prints one Markdown table: for every
benchmark the median nanoseconds per element (1 / items_per_second) of each
build, over wall time and over the process's CPU time (the steadier one for
one-thread benchmarks on a loaded machine), and after / before. Rows that
carry a D parameter also get their ratio to the largest D of their group
(the other parameters equal) in each build: issue 12's small-D target is
D = 2 within 3x of D = 3072. A benchmark only one build has is printed with
"-" for the other.

  python3 benchmarks/compare_before_after.py --before /tmp/before --after build/benchmarks --rounds 3 \\
      --bench 'bench_sampler_default:^ddpm_loop_fixed_BD/' --bench 'bench_small_d_default:^per_element/'
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="directory of the binaries before the change")
    ap.add_argument("--after", required=True, help="directory of the binaries after the change")
    ap.add_argument("--bench", action="append", required=True, help="NAME or NAME:FILTER (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per measurement")
    a = ap.parse_args()

    builds = ("before", "after")
    # (binary name, run name) -> {build: ([wall ns/element], [cpu ns/element])}; params per row.
    rows, params = {}, {}
    for r in range(a.rounds):
        for spec in a.bench:
            name, _, flt = spec.partition(":")
            order = builds if r % 2 == 0 else builds[::-1]
            for build in order:
                binary = os.path.join(getattr(a, build), name)
                if not os.path.exists(binary):
                    continue
                for run_name, (base, p, b) in gbench.run(binary, flt, a.min_time).items():
                    ips = b.get("items_per_second")
                    if not ips:
                        continue
                    wall = 1e9 / ips
                    cpu = wall * b["cpu_time"] / b["real_time"] if b.get("real_time") else float("nan")
                    key = (name, run_name)
                    params[key] = (base, p)
                    w, c = rows.setdefault(key, {}).setdefault(build, ([], []))
                    w.append(wall)
                    c.append(cpu)

    med = {k: {bd: (statistics.median(w), statistics.median(c)) for bd, (w, c) in v.items()} for k, v in rows.items()}
    # Ratio to the largest D of the group (same binary, base name and other parameters), wall time.
    largest = {}
    for key, (base, p) in params.items():
        if "D" in p:
            group = (key[0], base, tuple(sorted((k, v) for k, v in p.items() if k not in ("B", "D"))))
            if group not in largest or p["D"] > params[largest[group]][1]["D"]:
                largest[group] = key

    def ratio_to_largest(key, build):
        base, p = params[key]
        if "D" not in p:
            return "–"
        group = (key[0], base, tuple(sorted((k, v) for k, v in p.items() if k not in ("B", "D"))))
        ref = med[largest[group]].get(build)
        got = med[key].get(build)
        return f"{got[0] / ref[0]:.2f}" if ref and got else "–"

    def fmt(key, build, i):
        m = med[key].get(build)
        return f"{m[i]:.2f}" if m else "–"

    print(f"medians of {a.rounds} rounds (order rotated); load average after: {gbench.load()}\n")
    print("| benchmark | ns/element before | after | after/before | CPU ns/element before | after "
          "| / largest D before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for key in rows:
        b, f = med[key].get("before"), med[key].get("after")
        speed = f"{f[0] / b[0]:.2f}" if b and f else "–"
        print(f"| {key[0]}/{key[1].replace('/real_time', '')} | {fmt(key, 'before', 0)} | {fmt(key, 'after', 0)} "
              f"| {speed} | {fmt(key, 'before', 1)} | {fmt(key, 'after', 1)} "
              f"| {ratio_to_largest(key, 'before')} | {ratio_to_largest(key, 'after')} |")


if __name__ == "__main__":
    main()
