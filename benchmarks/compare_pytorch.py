#!/usr/bin/env python3
"""Time ddpm's fused kernels against PyTorch on the CPU, in the same run.

The PyTorch side is written the way diffusers writes it:
  forward_noise  randn_like(x0), then sqrt(acp)*x0 + sqrt(1-acp)*noise (add_noise)
  ddpm_step      DDPMScheduler.step with clip_sample: x0 from eps, clamp,
                 posterior mean, + std * randn (epsilon, fixed_small)
  ddim_step      DDIMScheduler.step with clip_sample, eta = 1 (x0, eps, direction,
                 + std * randn)
  randn          torch.randn (the generator alone; ddpm's normal_generator)

ddpm's numbers come from the Google Benchmark binary (benchmarks/bench_kernels),
run by this script right before the PyTorch timings.

Usage:
  python3 benchmarks/compare_pytorch.py --bench build/benchmarks/bench_kernels [--json] [--threads 1 2]
Requires Debian's python3-torch (scripts/install-deps.sh --bench).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

SIZES = [196_608, 3_145_728]
REPETITIONS = 5  # medians on both sides: this machine is shared and noisy
OPS = ["forward_noise", "ddpm_step", "ddim_step", "randn"]
BENCH_NAME = {"forward_noise": "forward_noise", "ddpm_step": "ddpm_step", "ddim_step": "ddim_step",
              "randn": "normal_generator"}


def ddpm_rates(bench, threads, min_time):
    """Runs the SIMD variants of bench_kernels; returns {(op, n, threads): items/s}."""
    cmd = [bench, "--benchmark_format=json", f"--benchmark_min_time={min_time}",
           "--benchmark_filter=/simd:1/", f"--benchmark_repetitions={REPETITIONS}",
           "--benchmark_report_aggregates_only=true"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        # names look like "forward_noise/n:196608/simd:1/threads:2/real_time"
        name = b["run_name"]
        parts = dict(p.split(":") for p in name.split("/")[1:] if ":" in p)
        op = name.split("/")[0]
        rates[(op, int(parts["n"]), int(parts["threads"]))] = b["items_per_second"]
    return {(op, n, t): rates.get((BENCH_NAME[op], n, t)) for op in OPS for n in SIZES for t in threads}


def torch_rate(fn, n, min_time):
    """Median over REPETITIONS runs of the mean time per call within min_time."""
    for _ in range(3):
        fn()  # warm up
    runs = []
    for _ in range(REPETITIONS):
        calls = 0
        start = time.perf_counter()
        while time.perf_counter() - start < min_time or calls < 3:
            fn()
            calls += 1
        runs.append((time.perf_counter() - start) / calls)
    return n / statistics.median(runs)


def torch_ops(torch, n):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, generator=g)
    xt = torch.randn(n, generator=g)
    out = torch.randn(n, generator=g)
    # linear schedule, T = 1000, float32 as diffusers builds it
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
    acp = torch.cumprod(1.0 - betas, dim=0)
    t, prev_t = 500, 499
    a, a_prev = acp[t], acp[prev_t]

    def forward_noise():
        noise = torch.randn_like(x0)
        sqrt_a = a ** 0.5
        sqrt_1ma = (1 - a) ** 0.5
        return sqrt_a * x0 + sqrt_1ma * noise, noise

    def ddpm_step():
        beta_prod = 1 - a
        beta_prod_prev = 1 - a_prev
        cur_alpha = a / a_prev
        cur_beta = 1 - cur_alpha
        x0_hat = (xt - beta_prod ** 0.5 * out) / a ** 0.5
        x0_hat = x0_hat.clamp(-1.0, 1.0)
        c0 = (a_prev ** 0.5 * cur_beta) / beta_prod
        c1 = cur_alpha ** 0.5 * beta_prod_prev / beta_prod
        prev = c0 * x0_hat + c1 * xt
        variance = torch.clamp((1 - a_prev) / (1 - a) * cur_beta, min=1e-20)
        noise = torch.randn_like(xt)
        return prev + variance ** 0.5 * noise

    def ddim_step():
        a_t, a_p = acp[999], acp[979]
        beta_prod = 1 - a_t
        x0_hat = (xt - beta_prod ** 0.5 * out) / a_t ** 0.5
        x0_hat = x0_hat.clamp(-1.0, 1.0)
        variance = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
        std = 1.0 * variance ** 0.5
        direction = (1 - a_p - std ** 2) ** 0.5 * out
        prev = a_p ** 0.5 * x0_hat + direction
        return prev + std * torch.randn_like(xt)

    def randn():
        return torch.randn(n)

    return {"forward_noise": forward_noise, "ddpm_step": ddpm_step, "ddim_step": ddim_step, "randn": randn}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join("build", "benchmarks", "bench_kernels"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    ap.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is missing: apt-get install python3-torch (or scripts/install-deps.sh --bench)")
    if not os.path.exists(args.bench):
        sys.exit(f"{args.bench} not found: build it with cmake --build build --target bench_kernels")

    ours = ddpm_rates(args.bench, args.threads, args.min_time)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for n in SIZES:
            fns = torch_ops(torch, n)
            for op in OPS:
                rows.append({"op": op, "elements": n, "threads": threads,
                             "ddpm_per_s": ours[(op, n, threads)],
                             "torch_per_s": torch_rate(fns[op], n, args.min_time)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'op':<14}{'elements':>10}{'threads':>8}{'ddpm /s':>12}{'torch /s':>12}{'ratio':>8}")
    for r in rows:
        d, t = r["ddpm_per_s"], r["torch_per_s"]
        ratio = d / t if d and t else math.nan
        print(f"{r['op']:<14}{r['elements']:>10}{r['threads']:>8}{d or math.nan:>12.3g}{t:>12.3g}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
