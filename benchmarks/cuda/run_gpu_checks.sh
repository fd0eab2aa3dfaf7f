#!/usr/bin/env bash
# benchmarks/cuda/run_gpu_checks.sh — everything the CUDA part needs a GPU for,
# sized for one short device window (docs/cuda.md, "Verification").
#
# Two phases, so that no device time is spent compiling:
#
#   bash benchmarks/cuda/run_gpu_checks.sh --build-only .gpu-build
#       here, with nvcc and no GPU: builds the 7 binaries (5 tests, the
#       example, the benchmark) into .gpu-build. Carry that folder to the GPU
#       machine (echo /.gpu-build/ >> .git/info/exclude; the device tool's
#       `carry`).
#
#   OUT=$OUT bash benchmarks/cuda/run_gpu_checks.sh --prebuilt .gpu-build
#       on the GPU machine: one run of at most --budget seconds (default 480,
#       i.e. 8 minutes), in this order, each step under a hard timeout:
#         probe    the CUDA runtime sees a device (else: "no device", exit 77)
#         tests    test_cuda_noise, _forward, _steps, _steps_exact, _sampler:
#                  the device against the CPU reference
#         example  cuda_sampling --small (mixture weights recovered)
#         bench    bench_cuda: 2^26 elements, each kernel's bandwidth as a
#                  fraction of a device-to-device copy in the same run, and
#                  the 1000-step chain on a stream and replayed from a graph
#         pytorch  torch's randn_like + scale-and-add on the same GPU (only if
#                  torch is installed and sees the GPU; else "unavailable")
#         sanitizer compute-sanitizer memcheck and racecheck on the selection
#                  kernel ("unavailable" when missing or refused, never FAIL)
#       $OUT/summary.txt gets one line per step as soon as the step ends (a
#       hang or a killed session still leaves every finished result), then a
#       RESULT line. Logs: tests.log, example.log, bench.log, bench.csv,
#       pytorch.txt, sanitizer.log.
#
#   bash benchmarks/cuda/run_gpu_checks.sh --prebuilt DIR --dry-run
#       checks the binaries, probes the device and writes the plan (steps,
#       caps, budget) without running anything else — seconds, GPU or not.
#
# Exit status: 0 every step passed (unavailable optional steps allowed);
# 1 a failure, a timeout, a step the budget left out, or a missing binary;
# 77 no CUDA device (nothing ran on a GPU); 2 usage.
#
# Options: --budget SECONDS (default 480), --no-sanitizer.
# Environment: OUT (default /tmp/ddpm-gpu-results), PYTHON (tried first for
# torch, then python3, /usr/bin/python3), NVCC, DDPM_CUDA_ARCH
# (--build-only: the sm_XY to build, default 90 — H100/H200 — plus compute_XY
# PTX), JOBS.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mode=""
dir=""
budget=480
sanitizer=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --build-only) mode=build; dir=${2:-}; shift 2 || shift ;;
    --prebuilt) [[ $mode == dry ]] || mode=run; dir=${2:-}; shift 2 || shift ;;
    --dry-run) mode=dry; shift ;;
    --budget) budget=${2:-}; shift 2 || shift ;;
    --no-sanitizer) sanitizer=0; shift ;;
    *) mode=usage; break ;;
    esac
done
if [[ -z $mode || $mode == usage || -z $dir || ! $budget =~ ^[0-9]+$ ]]; then
    echo "usage: $0 --build-only DIR | --prebuilt DIR [--dry-run] [--budget SECONDS] [--no-sanitizer]" >&2
    exit 2
fi
# --dry-run given before --prebuilt DIR still needs DIR.
[[ $mode == dry && -z $dir ]] && { echo "$0: --dry-run needs --prebuilt DIR" >&2; exit 2; }

NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
binaries=(test_cuda_noise test_cuda_forward test_cuda_steps test_cuda_steps_exact test_cuda_sampler cuda_sampling
    bench_cuda)

# ---------------------------------------------------------------------------
# --build-only: nvcc, here, no GPU needed.
if [[ $mode == build ]]; then
    arch=${DDPM_CUDA_ARCH:-90}
    mkdir -p "$dir"
    log="$dir/build.log"
    : >"$log"
    flags=(-std=c++20 -O3 "-gencode=arch=compute_$arch,code=[sm_$arch,compute_$arch]" -I"$ROOT/include"
        -I"$ROOT/tests" -I"$ROOT/tests/cuda" -DDDPM_TEST_DATA_DIR="\"$ROOT/tests/data\"")
    build_one() { # name source [extra flags]
        local name=$1 src=$2
        shift 2
        if nice "$NVCC" "${flags[@]}" "$@" "$src" -o "$dir/$name" >"$dir/$name.log" 2>&1; then
            echo "built $name" >>"$log"
        else
            echo "FAILED to build $name" >>"$log"
        fi
        cat "$dir/$name.log" >>"$log"
        rm -f "$dir/$name.log"
    }
    jobs_max=${JOBS:-2}
    srcs=("tests/cuda/test_cuda_noise.cu" "tests/cuda/test_cuda_forward.cu" "tests/cuda/test_cuda_steps.cu"
        "tests/cuda/test_cuda_steps.cu" "tests/cuda/test_cuda_sampler.cu" "examples/cuda_sampling.cu"
        "benchmarks/cuda/bench_cuda.cu")
    for i in "${!binaries[@]}"; do
        extra=()
        [[ ${binaries[$i]} == test_cuda_steps_exact ]] && extra=(-fmad=false -DDDPM_TEST_EXACT=1)
        [[ ${binaries[$i]} == bench_cuda ]] && extra=(-lineinfo)
        build_one "${binaries[$i]}" "$ROOT/${srcs[$i]}" "${extra[@]}" &
        while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n; done
    done
    wait
    cat "$log"
    missing=0
    for b in "${binaries[@]}"; do [[ -x "$dir/$b" ]] || { echo "missing: $b"; missing=1; }; done
    exit $missing
fi

# ---------------------------------------------------------------------------
# Run (or dry run) on prebuilt binaries.
OUT=${OUT:-/tmp/ddpm-gpu-results}
mkdir -p "$OUT"
BIN=$(cd "$dir" 2>/dev/null && pwd || echo "$dir")
summary="$OUT/summary.txt"
t_start=$SECONDS
deadline=$((t_start + budget))
failed=0

say() { echo "$*" | tee -a "$summary"; } # the summary grows line by line
{
    echo "ddpm CUDA checks, $(date -u +%Y-%m-%dT%H:%M:%SZ)$([[ $mode == dry ]] && echo ' — DRY RUN')"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed paths)"
    echo "binaries: $BIN"
    echo "budget: $budget s"
} >"$summary"
cat "$summary"

# Step caps (seconds), in running order; their sum fits the default budget.
declare -A cap=([probe]=20 [test_cuda_noise]=30 [test_cuda_forward]=30 [test_cuda_steps]=60
    [test_cuda_steps_exact]=60 [test_cuda_sampler]=45 [cuda_sampling]=30 [bench_cuda]=90 [pytorch]=45
    [memcheck]=30 [racecheck]=30)
order=(probe test_cuda_noise test_cuda_forward test_cuda_steps test_cuda_steps_exact test_cuda_sampler cuda_sampling
    bench_cuda pytorch memcheck racecheck)
total=0
for s in "${order[@]}"; do total=$((total + cap[$s])); done
say "plan: ${order[*]} (caps sum to $total s)"

missing=0
for b in "${binaries[@]}"; do
    if [[ ! -x "$BIN/$b" ]]; then
        say "  MISSING  $b (not in $BIN: build it with --build-only)"
        missing=1
    fi
done

# record NAME STATUS [DETAIL]: one summary line, at once.
record() {
    local name=$1 st=$2
    shift 2
    printf '[%4d s] %-22s %s %s\n' $((SECONDS - t_start)) "$name" "$st" "$*" | tee -a "$summary"
    case $st in PASS | RAN | UNAVAILABLE* | PLANNED) ;; *) failed=1 ;; esac
}

# limit NAME: the step's timeout — its cap, cut to what the budget has left (0: no time).
limit() {
    local left=$((deadline - SECONDS))
    local c=${cap[$1]}
    ((left < c)) && c=$left
    ((c < 1)) && c=0
    echo $c
}

# Probe: the CUDA runtime's own view (test_cuda_noise --device), else nvidia-smi.
probe_log="$OUT/probe.log"
device=0
if [[ -x "$BIN/test_cuda_noise" ]]; then
    timeout -k 5 "$(limit probe)" "$BIN/test_cuda_noise" --device >"$probe_log" 2>&1
    rc=$?
    [[ $rc == 0 ]] && device=1
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >"$probe_log" 2>&1 && grep -q '^GPU ' "$probe_log"; then
    device=1
else
    echo "no test_cuda_noise to ask the CUDA runtime; nvidia-smi: $(command -v nvidia-smi || echo 'not installed')" \
        >>"$probe_log"
fi
if ((device)); then
    record probe PASS "$(head -1 "$probe_log")"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader \
        2>/dev/null | sed 's/^/  gpu: /' | tee -a "$summary"
else
    say "[$(printf '%4d' $((SECONDS - t_start))) s] probe                  NO DEVICE: $(tail -1 "$probe_log")"
fi

if [[ $mode == dry ]]; then
    for s in "${order[@]:1}"; do record "$s" PLANNED "(cap ${cap[$s]} s)"; done
    if ((missing)); then
        say "RESULT: DRY RUN — binaries missing; $( ((device)) && echo 'a device is present' || echo 'no CUDA device')"
        exit 1
    fi
    if ((!device)); then
        say "RESULT: DRY RUN — no CUDA device: nothing would run on a GPU here"
        exit 77
    fi
    say "RESULT: DRY RUN — device present, binaries present"
    exit 0
fi

if ((!device)); then
    if ((missing)); then
        say "RESULT: NO DEVICE and binaries missing — nothing ran on a GPU"
        exit 1
    fi
    say "RESULT: NO DEVICE — nothing ran on a GPU"
    exit 77
fi

# run_step NAME LOG CMD...: runs under its limit, records PASS / FAIL / TIMEOUT / NOT RUN.
run_step() {
    local name=$1 log=$2
    shift 2
    local c
    c=$(limit "$name")
    if ((c == 0)); then
        record "$name" "NOT RUN" "(budget spent)"
        return 1
    fi
    echo "===== $name: $* (limit $c s)" >>"$log"
    local t0=$SECONDS
    timeout -k 5 "$c" "$@" >>"$log" 2>&1
    local rc=$?
    local took=$((SECONDS - t0))
    case $rc in
    0) record "$name" PASS "(${took} s)" ;;
    124 | 137) record "$name" TIMEOUT "(limit $c s)" ;;
    77) record "$name" "FAIL (no device mid-run)" ;;
    *) record "$name" "FAIL (rc $rc)" "(${took} s; see $(basename "$log"))" ;;
    esac
    return $rc
}

# Tests: the device against the CPU reference.
: >"$OUT/tests.log"
for t in test_cuda_noise test_cuda_forward test_cuda_steps test_cuda_steps_exact test_cuda_sampler; do
    if [[ -x "$BIN/$t" ]]; then run_step "$t" "$OUT/tests.log" "$BIN/$t"; else record "$t" MISSING; fi
done

# The example.
: >"$OUT/example.log"
if [[ -x "$BIN/cuda_sampling" ]]; then
    run_step cuda_sampling "$OUT/example.log" "$BIN/cuda_sampling" --small --no-device-exit-code=77
else
    record cuda_sampling MISSING
fi

# The benchmark (2^26 elements; copy ceiling, kernels, 1000-step chains).
: >"$OUT/bench.log"
if [[ -x "$BIN/bench_cuda" ]]; then
    run_step bench_cuda "$OUT/bench.log" "$BIN/bench_cuda" --csv "$OUT/bench.csv" &&
        grep -E '^(kernel|copy|fill|forward|q_sample|ddpm|ddim|chain)' "$OUT/bench.log" | sed 's/^/    /' | tee -a "$summary"
else
    record bench_cuda MISSING
fi

# PyTorch on the same GPU (optional).
c=$(limit pytorch)
py=""
if ((c > 0)); then # the first Python that imports torch: $PYTHON, python3, /usr/bin/python3
    for cand in ${PYTHON:-} python3 /usr/bin/python3; do
        if timeout -k 5 "$(limit pytorch)" "$cand" -c 'import torch' >/dev/null 2>&1; then py=$cand; break; fi
    done
fi
if ((c == 0)); then
    record pytorch "NOT RUN" "(budget spent)"
elif [[ -z $py ]]; then
    record pytorch "UNAVAILABLE (no Python with torch: \$PYTHON, python3, /usr/bin/python3)"
else
    c=$(limit pytorch)
    PYTHONUNBUFFERED=1 timeout -k 5 "$c" "$py" - >"$OUT/pytorch.txt" 2>&1 <<'EOF'
# PyTorch's equivalents of the fused kernels, timed like bench_cuda (CUDA
# events, 3 warm-ups, median of 50). Same minimum byte counts.
import sys
import torch
if not torch.cuda.is_available():
    print("torch sees no CUDA device"); sys.exit(3)
dev = torch.device("cuda")
print("torch", torch.__version__, torch.cuda.get_device_name(0))
B, D = 64, 1 << 20
def timeit(f, reps=50):
    for _ in range(3): f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2], ts[0]
print(f"{'op':44s} {'dtype':9s} {'median ms':>10s} {'min ms':>9s} {'GB/s':>8s}")
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    e = torch.tensor([], dtype=dtype).element_size()
    x0 = torch.randn(B, D, device=dev, dtype=dtype)
    ab = torch.rand(1000, device=dev, dtype=torch.float64)
    t = torch.randint(0, 1000, (B,), device=dev)
    a = ab[t].sqrt().to(dtype).view(B, 1)
    s = (1 - ab[t]).sqrt().to(dtype).view(B, 1)
    y = torch.empty_like(x0)
    def copy(): y.copy_(x0)
    def randn(): return torch.randn_like(x0)
    def noising():  # ε drawn, x_t = a·x0 + s·ε: returns both
        eps = torch.randn_like(x0)
        return a * x0 + s * eps, eps
    def caller_noise(): return a * x0 + s * y
    for name, f, nbytes in (("copy (device to device)", copy, 2 * e * B * D),
                            ("randn_like", randn, e * B * D),
                            ("randn_like + scale-and-add (x_t, eps)", noising, 3 * e * B * D),
                            ("scale-and-add with given noise", caller_noise, 3 * e * B * D)):
        med, mn = timeit(f)
        print(f"{name:44s} {str(dtype).replace('torch.', ''):9s} {med:10.4f} {mn:9.4f} {nbytes / med / 1e6:8.1f}")
EOF
    rc=$?
    case $rc in
    0) record pytorch RAN "(pytorch.txt)"; grep -E 'GB/s|^(copy|randn|scale)' "$OUT/pytorch.txt" | sed 's/^/    /' | tee -a "$summary" ;;
    3) record pytorch "UNAVAILABLE (torch sees no CUDA device)" ;;
    124 | 137) record pytorch TIMEOUT "(limit $c s)" ;;
    *) record pytorch "FAIL (rc $rc)" "(pytorch.txt)" ;;
    esac
fi

# compute-sanitizer on the block-cooperative selection kernel: memory errors,
# shared-memory races. Missing or refused by the machine: UNAVAILABLE.
: >"$OUT/sanitizer.log"
for tool in memcheck racecheck; do
    c=$(limit "$tool")
    if ((!sanitizer)); then
        record "$tool" "UNAVAILABLE (--no-sanitizer)"
    elif ! command -v compute-sanitizer >/dev/null 2>&1; then
        record "$tool" "UNAVAILABLE (compute-sanitizer not installed)"
    elif [[ ! -x "$BIN/test_cuda_steps" ]]; then
        record "$tool" MISSING "(test_cuda_steps)"
    elif ((c == 0)); then
        record "$tool" "NOT RUN" "(budget spent)"
    else
        echo "===== compute-sanitizer --tool $tool test_cuda_steps thresholds_float" >>"$OUT/sanitizer.log"
        timeout -k 5 "$c" compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/test_cuda_steps" thresholds_float \
            >"$OUT/sanitizer.$tool.log" 2>&1
        rc=$?
        cat "$OUT/sanitizer.$tool.log" >>"$OUT/sanitizer.log"
        if [[ $rc == 0 ]]; then
            record "$tool" PASS
        elif [[ $rc == 9 ]] || grep -qE 'ERROR SUMMARY: [1-9]' "$OUT/sanitizer.$tool.log"; then
            record "$tool" "FAIL (errors found)" "(sanitizer.log)"
        elif [[ $rc == 124 || $rc == 137 ]]; then
            record "$tool" TIMEOUT "(limit $c s)"
        elif grep -q '\[  OK  \] thresholds_float' "$OUT/sanitizer.$tool.log"; then
            record "$tool" "FAIL (rc $rc)" "(sanitizer.log)"
        else
            # The tool did not get to run the test: not permitted, unsupported, …
            record "$tool" "UNAVAILABLE (rc $rc: $(grep -m1 -E '==ERROR==|rror' "$OUT/sanitizer.$tool.log" | cut -c1-100))"
        fi
        rm -f "$OUT/sanitizer.$tool.log"
    fi
done

if ((missing)); then failed=1; fi
say "RESULT: $( ((failed)) && echo FAIL || echo PASS) in $((SECONDS - t_start)) s (budget $budget s)"
exit $failed
