#!/usr/bin/env python3
"""ddpm's fused kernels against PyTorch on the CPU and against a same-run roofline.

Every round runs, in alternating order (ddpm first, then PyTorch first):
  - bench_kernels (SIMD rows; std::vector buffers as users pass them),
  - bench_roofline (plain loops moving the same streams: see bench_roofline.cpp),
  - the same operations in PyTorch, twice:
      written  as diffusers writes them (fresh tensors: randn_like, a*x + b*y, clamp);
      tuned    preallocated tensors and in-place ops (torch.randn(out=), mul(out=),
               add_(alpha=), clamp_).
Each figure is the median over the rounds. Printed as one Markdown table:

  ddpm          10^9 elements/s of ddpm's kernel (bench_kernels)
  written/tuned 10^9 elements/s of the PyTorch versions
  x written, x tuned   ddpm / PyTorch (issue 12's targets: >= 10x written, >= 4x tuned,
                       DDIM eta = 0 >= 2x tuned)
  roofline      GB/s of the loop with the kernel's streams, same round (bytes counted as
                STREAM counts them; bench_roofline, built -march=native: the best plain loop)
  of roofline   the kernel's bytes/s over that (target >= 0.8 at 3,145,728 and 16,777,216)
  of ceiling    elements/s over min(roofline elements/s, generator alone in cache on one thread
                times the threads): kernels that draw noise cannot beat the generator; `binds`
                says which of the two is lower

and a second table of ddpm's 2-thread / 1-thread ratios from the same rounds.

  python3 benchmarks/compare_pytorch.py --bench build/benchmarks/bench_kernels_default \\
      --roofline build/benchmarks/bench_roofline [--rounds 5] [--threads 1 2] [--min-time 0.1]

Python 3 standard library and python3-torch (scripts/install-deps.sh --bench).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gbench  # noqa: E402

SIZES = [196_608, 3_145_728, 16_777_216]
CACHE_N = 16_384  # bench_kernels' generator-in-cache size
# (row label, bench_kernels name, its extra parameters, PyTorch op, roofline pattern, draws noise)
# Roofline patterns (bench_roofline): 0 fill 4 B, 2 fork 12 B (1R 2W), 3 triad 12 B (2R 1W), 4 triad2 16 B (2R 2W).
OPS = [
    ("forward noising", "forward_noise", {}, "forward", 2, True),
    ("DDPM step, x̂_0 stored", "ddpm_step", {"x0": 1}, "ddpm", 4, True),
    ("DDPM step, no x̂_0", "ddpm_step", {"x0": 0}, "ddpm", 3, True),
    ("DDIM η=1, x̂_0 stored", "ddim_step", {"x0": 1, "eta": 1}, "ddim1", 4, True),
    ("DDIM η=1, no x̂_0", "ddim_step", {"x0": 0, "eta": 1}, "ddim1", 3, True),
    ("DDIM η=0, x̂_0 stored", "ddim_step", {"x0": 1, "eta": 0}, "ddim0", 4, False),
    ("DDIM η=0, no x̂_0", "ddim_step", {"x0": 0, "eta": 0}, "ddim0", 3, False),
    ("normal generator", "normal_generator", {}, "randn", 0, True),
]
PATTERN_BYTES = {0: 4, 1: 8, 2: 12, 3: 12, 4: 16}
PATTERN_NAME = {0: "fill", 1: "copy", 2: "fork", 3: "triad", 4: "triad2"}


def torch_ops(torch, n):
    """{op: (as diffusers writes it, tuned)} for a flat batch of n float32 elements."""
    g = torch.Generator().manual_seed(0)
    x0, xt, out = (torch.randn(n, generator=g) for _ in range(3))
    noise, x0h, res = torch.empty(n), torch.empty(n), torch.empty(n)
    acp = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32), dim=0)
    a, a_prev = acp[500], acp[499]  # DDPM t = 500 -> 499, as bench_kernels
    d_a, d_prev = acp[999], acp[979]  # DDIM t = 999 -> 979 (50 steps)
    f = float

    def forward():  # DDPMScheduler.add_noise
        noise = torch.randn_like(x0)
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise, noise

    def forward_t():
        torch.randn(n, out=noise)
        torch.mul(x0, f(a) ** 0.5, out=res)
        res.add_(noise, alpha=(1 - f(a)) ** 0.5)

    def ddpm():  # DDPMScheduler.step: epsilon, fixed_small, clip_sample
        beta_prod, beta_prod_prev = 1 - a, 1 - a_prev
        cur_alpha = a / a_prev
        cur_beta = 1 - cur_alpha
        x0_hat = ((xt - beta_prod ** 0.5 * out) / a ** 0.5).clamp(-1.0, 1.0)
        c0 = (a_prev ** 0.5 * cur_beta) / beta_prod
        c1 = cur_alpha ** 0.5 * beta_prod_prev / beta_prod
        prev = c0 * x0_hat + c1 * xt
        variance = torch.clamp((1 - a_prev) / (1 - a) * cur_beta, min=1e-20)
        return prev + variance ** 0.5 * torch.randn_like(xt), x0_hat

    fa, fp = f(a), f(a_prev)
    cb = 1 - fa / fp
    c0, c1 = fp ** 0.5 * cb / (1 - fa), (fa / fp) ** 0.5 * (1 - fp) / (1 - fa)
    std = ((1 - fp) / (1 - fa) * cb) ** 0.5

    def x0_hat_t(sa, sb):
        torch.mul(xt, 1 / sa, out=x0h)
        x0h.add_(out, alpha=-sb / sa)
        x0h.clamp_(-1.0, 1.0)

    def ddpm_t():
        x0_hat_t(fa ** 0.5, (1 - fa) ** 0.5)
        torch.mul(xt, c1, out=res)
        res.add_(x0h, alpha=c0)
        torch.randn(n, out=noise)
        res.add_(noise, alpha=std)

    def ddim(eta):  # DDIMScheduler.step: epsilon, clip_sample, use_clipped_model_output=False
        def step():
            x0_hat = ((xt - (1 - d_a) ** 0.5 * out) / d_a ** 0.5).clamp(-1.0, 1.0)
            variance = (1 - d_prev) / (1 - d_a) * (1 - d_a / d_prev)
            std_dev = eta * variance ** 0.5
            prev = d_prev ** 0.5 * x0_hat + (1 - d_prev - std_dev ** 2) ** 0.5 * out
            if eta > 0:
                prev = prev + std_dev * torch.randn_like(xt)
            return prev, x0_hat
        return step

    def ddim_t(eta):
        da, dp = f(d_a), f(d_prev)
        s = eta * ((1 - dp) / (1 - da) * (1 - da / dp)) ** 0.5

        def step():
            x0_hat_t(da ** 0.5, (1 - da) ** 0.5)
            torch.mul(x0h, dp ** 0.5, out=res)
            res.add_(out, alpha=(1 - dp - s * s) ** 0.5)
            if eta > 0:
                torch.randn(n, out=noise)
                res.add_(noise, alpha=s)
        return step

    return {"forward": (forward, forward_t), "ddpm": (ddpm, ddpm_t), "ddim1": (ddim(1.0), ddim_t(1.0)),
            "ddim0": (ddim(0.0), ddim_t(0.0)), "randn": (lambda: torch.randn(n), lambda: torch.randn(n, out=noise))}


def time_rate(fn, n, min_time):
    """Elements/s: mean time per call over at least min_time (and one call), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        fn()
        calls += 1
    return n * calls / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/benchmarks/bench_kernels_default")
    ap.add_argument("--roofline", default="build/benchmarks/bench_roofline")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per measurement")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is missing: apt-get install python3-torch (or scripts/install-deps.sh --bench)")
    for b in (a.bench, a.roofline):
        if not os.path.exists(b):
            sys.exit(f"{b} not found: cmake --build build --target bench_kernels_default bench_roofline")
    threads = "|".join(map(str, a.threads))
    kfilter = f"^(normal_generator|forward_noise|ddpm_step|ddim_step)/n:[0-9]+/simd:1/threads:({threads})/"
    rfilter = f"^roofline/.*/threads:({threads})/"
    ours, roof, theirs = {}, {}, {}  # key -> list of per-round rates

    def run_ddpm():
        for _, (base, p, rec) in gbench.run(a.bench, kfilter, a.min_time).items():
            key = (base, p["n"], p["threads"], p.get("x0"), p.get("eta"))
            ours.setdefault(key, []).append(rec["items_per_second"])
        for _, (_, p, rec) in gbench.run(a.roofline, rfilter, a.min_time).items():
            roof.setdefault((p["pattern"], p["n"], p["threads"]), []).append(rec["bytes_per_second"])

    def run_torch():
        for t in a.threads:
            torch.set_num_threads(t)
            for n in SIZES:
                for op, fns in torch_ops(torch, n).items():
                    for style, fn in zip(("written", "tuned"), fns):
                        theirs.setdefault((op, style, n, t), []).append(time_rate(fn, n, a.min_time))

    for r in range(a.rounds):
        for part in ((run_ddpm, run_torch) if r % 2 == 0 else (run_torch, run_ddpm)):
            part()

    med = statistics.median

    def ddpm_rate(bench, extra, n, t):
        v = ours.get((bench, n, t, extra.get("x0"), extra.get("eta")))
        return med(v) if v else None

    print(f"ddpm: `{os.path.basename(a.bench)}`; PyTorch {torch.__version__}; medians of {a.rounds} interleaved "
          f"rounds; rates in 10⁹ elements/s, roofline in GB/s\n")
    print("| op | elements | threads | ddpm | PyTorch written | PyTorch tuned | × written | × tuned "
          "| roofline (pattern) | of roofline | of ceiling (binds) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in a.threads:
        for n in SIZES:
            # the generator's ceiling: one thread in cache, times the threads (ideal scaling)
            gen = ddpm_rate("normal_generator", {}, CACHE_N, 1) * t if 1 in a.threads else None
            for label, bench, extra, op, pat, noisy in OPS:
                d = ddpm_rate(bench, extra, n, t)
                if d is None:
                    continue
                w, tu = med(theirs[(op, "written", n, t)]), med(theirs[(op, "tuned", n, t)])
                rb = med(roof[(pat, n, t)])
                frac = d * PATTERN_BYTES[pat] / rb
                ceiling, binds = rb / PATTERN_BYTES[pat], "memory"
                if noisy and gen and gen < ceiling:
                    ceiling, binds = gen, "generator"
                print(f"| {label} | {n:,} | {t} | {d / 1e9:.3f} | {w / 1e9:.3f} | {tu / 1e9:.3f} | {d / w:.1f}× | "
                      f"{d / tu:.1f}× | {rb / 1e9:.1f} ({PATTERN_NAME[pat]}) | {frac:.2f} | "
                      f"{d / ceiling:.2f} ({binds}) |")
    if 1 in a.threads and 2 in a.threads:
        print("\nddpm, 2 threads / 1 thread (same rounds; issue 12's target: >= 1.8 at 196,608 and 3,145,728)\n")
        print("| op | " + " | ".join(f"{n:,}" for n in SIZES) + " |")
        print("|---|" + "---|" * len(SIZES))
        for label, bench, extra, *_ in OPS:
            cells = []
            for n in SIZES:
                one, two = ddpm_rate(bench, extra, n, 1), ddpm_rate(bench, extra, n, 2)
                cells.append(f"{two / one:.2f}" if one and two else "–")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print(f"| (generator in cache, {CACHE_N:,}) | {ddpm_rate('normal_generator', {}, CACHE_N, 2) / ddpm_rate('normal_generator', {}, CACHE_N, 1):.2f} | | |")
    print(f"\nload average after: {gbench.load()}")


if __name__ == "__main__":
    main()
