#!/usr/bin/env bash
# scripts/run-benchmarks.sh — build the benchmarks as the README builds ddpm
# (Release, default flags; each bench_<area> also gets a -march=native twin)
# and print every table of docs/benchmarks.md as Markdown, with the machine,
# load average and date. Takes 10–20 minutes on a 2-core machine.
#
#   bash scripts/run-benchmarks.sh            # the full run (docs/benchmarks.md)
#   bash scripts/run-benchmarks.sh --quick    # 1 round, short timings: a smoke test
#
# The tables (drivers in benchmarks/, Python 3 standard library + python3-torch):
#   1. compare_pytorch.py  fused kernels (default build) vs a same-run roofline and vs
#                          PyTorch as diffusers writes it and tuned; 2 threads / 1
#   2. compare_builds.py   default build / native build, every benchmark binary
#   3. per_element.py      cost per element against D at a fixed B·D
#   4. compare_threads.py  2 threads / 1, without and with a competing process
# Environment: DDPM_BUILD_DIR (default build-bench), ROUNDS (interleaved rounds
# per table, default 3; figures are medians), MIN_TIME (seconds per measurement,
# default 0.1), BASELINE=1 (table 2 also runs the default binaries with
# DDPM_FORCE_ISA=baseline, i.e. without run-time dispatch), PYTHON (an
# interpreter that imports torch; default: the first of python3,
# /usr/bin/python3 that does). The output is also written to
# $DDPM_BUILD_DIR/benchmark_tables.markdown.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DDPM_BUILD_DIR:-build-bench}
[[ $build = /* ]] || build="$root/$build"
rounds=${ROUNDS:-3} min_time=${MIN_TIME:-0.1} baseline=()
[[ ${BASELINE:-0} == 1 ]] && baseline=(--baseline)
if [[ ${1:-} == --quick ]]; then rounds=1 min_time=0.02; fi

if [[ -z ${PYTHON:-} ]]; then
    for p in python3 /usr/bin/python3; do
        if "$p" -c 'import torch' 2>/dev/null; then PYTHON=$p; break; fi
    done
fi
[[ -n ${PYTHON:-} ]] || { echo "no python3 with torch: bash scripts/install-deps.sh --bench" >&2; exit 1; }

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDDPM_BUILD_BENCHMARKS=ON \
    -DDDPM_BUILD_TESTS=OFF -DDDPM_BUILD_EXAMPLES=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" --target ddpm_benchmarks >/dev/null
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")

b="$build/benchmarks"
py=("$PYTHON" "$root/benchmarks")
# Every bench_<area> but the roofline (plain loops, no ddpm code) is compared default vs native.
areas=()
for f in "$b"/bench_*_default; do
    a=$(basename "$f" _default)
    case $a in
    bench_roofline) ;;
    bench_kernels) areas+=(--bench "$a:/simd:1/") ;;
    bench_sampler) areas+=(--bench "$a:^ddpm_loop/") ;; # the D sweep is table 3
    bench_small_d) areas+=(--bench "$a:^per_element/") ;;
    *) areas+=(--bench "$a") ;;
    esac
done
extra_per_d=()
[[ -x $b/bench_small_d_default ]] && extra_per_d=(--bench "$b/bench_small_d_default:^per_element/")

{
    echo "# ddpm benchmarks"
    echo
    echo "Command: \`bash scripts/run-benchmarks.sh\` (rounds $rounds, min-time $min_time s, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo
    "$PYTHON" "$root/benchmarks/gbench.py" --compiler "$compiler"
    echo
    echo "## 1. Fused kernels: roofline and PyTorch"
    echo
    "$PYTHON" "$root/benchmarks/compare_pytorch.py" --bench "$b/bench_kernels_default" \
        --roofline "$b/bench_roofline" --rounds "$rounds" --min-time "$min_time"
    echo
    echo "## 2. Default build / native build"
    echo
    "$PYTHON" "$root/benchmarks/compare_builds.py" --dir "$b" "${areas[@]}" \
        --rounds "$rounds" --min-time "$min_time" "${baseline[@]}"
    echo
    echo "## 3. Cost per element against D (default build)"
    echo
    "$PYTHON" "$root/benchmarks/per_element.py" --rounds "$rounds" --min-time "$min_time" \
        --bench "$b/bench_sampler_default:^ddpm_loop_fixed_BD/" "${extra_per_d[@]}"
    echo
    echo "## 4. Threads: 2 against 1 (default build)"
    echo
    "$PYTHON" "$root/benchmarks/compare_threads.py" --rounds "$rounds" --min-time "$min_time" \
        --bench "$b/bench_sampler_default:^ddpm_loop/B:64/D:3072/" \
        --bench "$b/bench_kernels_default:/n:(196608|3145728)/simd:1/"
    echo
    echo "Finished $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$build/benchmark_tables.markdown"
