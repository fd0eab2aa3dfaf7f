#!/usr/bin/env bash
# benchmarks/cuda/run_gpu_checks.sh — everything the CUDA part needs a GPU for,
# in one command, for a session that has one (docs/cuda.md, "Verification"):
#
#   1. builds the CUDA tests, the example and the benchmark for the GPU
#      (through CMake when the test dependencies are installed, else straight
#      with nvcc: the .cu tests need only the ddpm headers);
#   2. runs the CUDA tests (label `cuda`), the host test when it was built, and
#      compute-sanitizer (memcheck, racecheck) on the selection kernel and a chain;
#   3. runs examples/cuda_sampling.cu;
#   4. runs benchmarks/cuda/bench_cuda.cu (2^26 elements) and the PyTorch
#      equivalents (torch.randn_like + scale-and-add) when torch sees the GPU.
#
# Results go under $OUT (at most 8 files): summary.txt (environment and
# pass/fail table, printed last), build.log, tests.log, sanitizer.log,
# example.log, bench.log, bench.csv, pytorch.txt. Exit status 0 only when
# every test passed.
#
#   OUT=/tmp/results bash benchmarks/cuda/run_gpu_checks.sh            # build + run
#   bash benchmarks/cuda/run_gpu_checks.sh --build-only .gpu-build      # build here, no GPU needed
#   OUT=... bash benchmarks/cuda/run_gpu_checks.sh --prebuilt .gpu-build  # run binaries built earlier
#
# --build-only compiles with nvcc for DDPM_CUDA_ARCH (default 90) and runs
# nothing, so the binaries can be built where nvcc is and carried to the GPU
# machine (the device tool's `carry`), saving its time. Other options:
# --no-sanitizer. Environment: DDPM_CUDA_ARCH (default: the GPU's compute
# capability, else 90), DDPM_GPU_BUILD_DIR (default /tmp/ddpm-gpu-build),
# NVCC, JOBS.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_only=""
prebuilt=""
sanitizer=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --build-only) build_only=$2; shift 2 ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    --no-sanitizer) sanitizer=0; shift ;;
    *) echo "usage: $0 [--build-only DIR | --prebuilt DIR] [--no-sanitizer]" >&2; exit 2 ;;
    esac
done
BUILD=${DDPM_GPU_BUILD_DIR:-/tmp/ddpm-gpu-build}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
JOBS=${JOBS:-$(nproc)}
if [[ -n $build_only ]]; then OUT=${OUT:-$build_only}; else OUT=${OUT:-/tmp/ddpm-gpu-results}; fi
mkdir -p "$OUT" "$BUILD"
: >"$OUT/build.log"
: >"$OUT/tests.log"

summary="$OUT/summary.txt"
{
    echo "ddpm CUDA checks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown) (working tree may differ: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed paths)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 | sed 's/^/  /'
    "$NVCC" --version 2>&1 | tail -2 | sed 's/^/  /'
    echo "  $(g++ --version 2>&1 | head -1)"
    echo "  $(cmake --version 2>&1 | head -1)"
} >"$summary"

if [[ -z "${DDPM_CUDA_ARCH:-}" ]]; then
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    DDPM_CUDA_ARCH=${cc:-90}
fi
echo "  architecture: sm_$DDPM_CUDA_ARCH" >>"$summary"

# ---------------------------------------------------------------------------
# 1. Build.
tests=(test_cuda_noise test_cuda_forward test_cuda_steps test_cuda_steps_exact test_cuda_sampler)

# nvcc_build DIR: every CUDA binary straight from its source, in parallel.
nvcc_build() {
    local dir=$1
    mkdir -p "$dir"
    local flags=(-std=c++20 -O3 -arch="sm_$DDPM_CUDA_ARCH" -I"$ROOT/include" -I"$ROOT/tests" -I"$ROOT/tests/cuda")
    build_one() { # name source [extra flags]
        local name=$1 src=$2
        shift 2
        if "$NVCC" "${flags[@]}" "$@" "$src" -o "$dir/$name" >"$dir/$name.log" 2>&1; then
            echo "built $name" >>"$OUT/build.log"
        else
            echo "FAILED to build $name" >>"$OUT/build.log"
        fi
        cat "$dir/$name.log" >>"$OUT/build.log"
        rm -f "$dir/$name.log"
    }
    build_one test_cuda_noise "$ROOT/tests/cuda/test_cuda_noise.cu" &
    build_one test_cuda_forward "$ROOT/tests/cuda/test_cuda_forward.cu" &
    build_one test_cuda_steps "$ROOT/tests/cuda/test_cuda_steps.cu" &
    build_one test_cuda_steps_exact "$ROOT/tests/cuda/test_cuda_steps.cu" -fmad=false -DDDPM_TEST_EXACT=1 &
    build_one test_cuda_sampler "$ROOT/tests/cuda/test_cuda_sampler.cu" &
    build_one cuda_sampling "$ROOT/examples/cuda_sampling.cu" &
    build_one bench_cuda "$ROOT/benchmarks/cuda/bench_cuda.cu" -lineinfo &
    wait
}

if [[ -n $build_only ]]; then
    nvcc_build "$build_only"
    cat "$OUT/build.log"
    grep -q FAILED "$OUT/build.log" && exit 1
    exit 0
fi

built_with=""
if [[ -n $prebuilt ]]; then
    built_with="prebuilt"
    BIN=$(cd "$prebuilt" && pwd)
elif cmake -S "$ROOT" -B "$BUILD/cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDDPM_ENABLE_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$DDPM_CUDA_ARCH" -DDDPM_BUILD_BENCHMARKS=OFF -DDDPM_BUILD_EXAMPLES=OFF \
    -DDDPM_INSTALL=OFF >>"$OUT/build.log" 2>&1 &&
    cmake --build "$BUILD/cmake" -j "$JOBS" --target test_cuda_host "${tests[@]}" cuda_sampling bench_cuda \
        >>"$OUT/build.log" 2>&1; then
    built_with=cmake
    BIN="$BUILD/cmake/tests/cuda"
else
    echo "--- CMake build unavailable or failed (see above); building with nvcc directly" >>"$OUT/build.log"
    built_with=nvcc
    BIN="$BUILD/nvcc"
    nvcc_build "$BIN"
fi
echo "  built with: $built_with ($BIN)" >>"$summary"

# ---------------------------------------------------------------------------
# 2. Tests.
declare -A status
run_test() { # name [args...]
    local name=$1
    shift
    if [[ ! -x "$BIN/$name" ]]; then
        status[$name]="NOT BUILT"
        return
    fi
    echo "===== $name $*" >>"$OUT/tests.log"
    local t0=$SECONDS
    timeout 300 "$BIN/$name" "$@" >>"$OUT/tests.log" 2>&1
    local rc=$?
    case $rc in
    0) status[$name]="PASS" ;;
    77) status[$name]="SKIPPED (no device?)" ;;
    124) status[$name]="TIMEOUT" ;;
    *) status[$name]="FAIL (rc $rc)" ;;
    esac
    echo "===== $name: ${status[$name]} in $((SECONDS - t0)) s" >>"$OUT/tests.log"
}
if [[ $built_with == cmake ]]; then run_test test_cuda_host; fi
for t in "${tests[@]}"; do run_test "$t"; done

# compute-sanitizer on the block-cooperative selection kernel (shared memory)
# and the fused steps: memory errors and shared-memory races.
: >"$OUT/sanitizer.log"
if [[ $sanitizer == 1 ]] && command -v compute-sanitizer >/dev/null 2>&1 && [[ -x "$BIN/test_cuda_steps" ]]; then
    for tool in memcheck racecheck; do
        echo "===== compute-sanitizer --tool $tool test_cuda_steps thresholds_float" >>"$OUT/sanitizer.log"
        timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/test_cuda_steps" thresholds_float \
            >>"$OUT/sanitizer.log" 2>&1
        rc=$?
        status["sanitizer $tool"]=$([[ $rc == 0 ]] && echo PASS || echo "FAIL (rc $rc)")
    done
    echo "===== compute-sanitizer --tool memcheck test_cuda_sampler" >>"$OUT/sanitizer.log"
    timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/test_cuda_sampler" \
        ddim_sampler_matches_the_cpu_chain >>"$OUT/sanitizer.log" 2>&1
    rc=$?
    status["sanitizer memcheck sampler"]=$([[ $rc == 0 ]] && echo PASS || echo "FAIL (rc $rc)")
else
    echo "compute-sanitizer not run (--no-sanitizer, not installed, or test_cuda_steps not built)" >>"$OUT/sanitizer.log"
fi

# ---------------------------------------------------------------------------
# 3. The example.
if [[ -x "$BIN/cuda_sampling" ]]; then
    timeout 300 "$BIN/cuda_sampling" --no-device-exit-code=77 >"$OUT/example.log" 2>&1
    rc=$?
    case $rc in 0) status[cuda_sampling]=PASS ;; 77) status[cuda_sampling]="SKIPPED (no device?)" ;; *) status[cuda_sampling]="FAIL (rc $rc)" ;; esac
else
    status[cuda_sampling]="NOT BUILT"
fi

# ---------------------------------------------------------------------------
# 4. Benchmarks.
if [[ -x "$BIN/bench_cuda" ]]; then
    timeout 400 "$BIN/bench_cuda" --csv "$OUT/bench.csv" >"$OUT/bench.log" 2>&1
    rc=$?
    case $rc in 0) status[bench_cuda]=RAN ;; 77) status[bench_cuda]="SKIPPED (no device?)" ;; *) status[bench_cuda]="FAIL (rc $rc)" ;; esac
else
    status[bench_cuda]="NOT BUILT"
fi

PYTHONUNBUFFERED=1 timeout 300 python3 - >"$OUT/pytorch.txt" 2>&1 <<'EOF'
# PyTorch's equivalents of the fused kernels, timed like bench_cuda (CUDA
# events, 3 warm-ups, median of 50). Same minimum byte counts.
import torch
if not torch.cuda.is_available():
    print("torch sees no CUDA device"); raise SystemExit(0)
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
if grep -q "GB/s" "$OUT/pytorch.txt" 2>/dev/null && ! grep -q Traceback "$OUT/pytorch.txt"; then
    status[pytorch]="RAN (see pytorch.txt)"
else
    status[pytorch]="NOT RUN (see pytorch.txt)"
fi

# ---------------------------------------------------------------------------
{
    echo
    echo "results:"
    for k in test_cuda_host "${tests[@]}" "sanitizer memcheck" "sanitizer racecheck" "sanitizer memcheck sampler" \
        cuda_sampling bench_cuda pytorch; do
        [[ -n "${status[$k]:-}" ]] && printf '  %-28s %s\n' "$k" "${status[$k]}"
    done
    echo
    echo "example:"
    sed 's/^/  /' "$OUT/example.log" 2>/dev/null | head -30
    echo
    echo "benchmark:"
    sed 's/^/  /' "$OUT/bench.log" 2>/dev/null | tail -40
    echo
    echo "pytorch:"
    sed 's/^/  /' "$OUT/pytorch.txt" 2>/dev/null | tail -20
} >>"$summary"
cat "$summary"
failed=0
for k in "${!status[@]}"; do [[ ${status[$k]} == FAIL* || ${status[$k]} == TIMEOUT || ${status[$k]} == SKIP* ]] && failed=1; done
exit $failed
