#!/usr/bin/env bash
# tests/cuda/check_gpu_script_dry_run.sh — the ctest cuda_gpu_script_dry_run
# (label cuda_host; every build, ctest TIMEOUT 60 s): benchmarks/cuda/
# run_gpu_checks.sh must reach a clear summary quickly without a GPU and
# report missing binaries as a failure (issue 14, item 8).
#
#   check_gpu_script_dry_run.sh <repository root> <scratch dir> [<folder with built CUDA binaries>]
set -uo pipefail
root=$1 work=$2 built=${3:-}
script="$root/benchmarks/cuda/run_gpu_checks.sh"
rm -rf "$work"
mkdir -p "$work/empty"
fail=0
check() { # description condition...
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; fail=1; fi
}

# 1. No binaries, dry run and real run: both end with a RESULT line and exit 1.
for extra in --dry-run ""; do
    out="$work/out${extra:+-dry}"
    t0=$SECONDS
    OUT=$out bash "$script" --prebuilt "$work/empty" $extra >"$work/log" 2>&1
    rc=$?
    cat "$work/log"
    check "no binaries ${extra:-(run)}: exit 1 (got $rc)" test "$rc" = 1
    check "no binaries ${extra:-(run)}: summary names the missing test_cuda_noise" \
        grep -q "MISSING  test_cuda_noise" "$out/summary.txt"
    check "no binaries ${extra:-(run)}: a RESULT line" grep -q "^RESULT: " "$out/summary.txt"
    check "no binaries ${extra:-(run)}: done in $((SECONDS - t0)) s (< 60)" test $((SECONDS - t0)) -lt 60
done

# 2. The build tree's binaries, when built: a dry run probes the device and
#    says either "no CUDA device" (exit 77) or "device present" (exit 0).
if [[ -n $built ]]; then
    have=1
    for b in test_cuda_noise test_cuda_forward test_cuda_steps test_cuda_steps_exact test_cuda_sampler cuda_sampling \
        bench_cuda; do
        [[ -x "$built/$b" ]] || have=0
    done
    if ((have)); then
        OUT="$work/out-built" bash "$script" --prebuilt "$built" --dry-run >"$work/log" 2>&1
        rc=$?
        cat "$work/log"
        if [[ $rc == 77 ]]; then
            check "built, no device: says so" grep -q "RESULT: DRY RUN — no CUDA device" "$work/out-built/summary.txt"
        else
            check "built: exit 0 or 77 (got $rc)" test "$rc" = 0
            check "built, device: says so" grep -q "RESULT: DRY RUN — device present" "$work/out-built/summary.txt"
        fi
    else
        echo "note: the CUDA binaries in $built are not all built; only the no-binaries case ran"
    fi
fi
# 3. A pretend device (stub binaries: the probe says "device 0", the tests pass
#    at once, test_cuda_steps hangs) and a 6-second budget: the hang is cut by
#    the budget (TIMEOUT), later steps are NOT RUN, earlier results are already
#    in the summary, and the run fails (exit 1) within the budget.
stubs="$work/stubs"
mkdir -p "$stubs"
for b in test_cuda_noise test_cuda_forward test_cuda_steps_exact test_cuda_sampler cuda_sampling bench_cuda; do
    printf '#!/bin/sh\n[ "$1" = --device ] && echo "device 0: pretend GPU (sm_90)"\nexit 0\n' >"$stubs/$b"
done
printf '#!/bin/sh\nexec sleep 100\n' >"$stubs/test_cuda_steps"
chmod +x "$stubs"/*
t0=$SECONDS
OUT="$work/out-stub" bash "$script" --prebuilt "$stubs" --budget 6 --no-sanitizer >"$work/log" 2>&1
rc=$?
took=$((SECONDS - t0))
cat "$work/log"
sum="$work/out-stub/summary.txt"
check "pretend device: exit 1 (got $rc)" test "$rc" = 1
check "pretend device: probe passed" grep -q "probe .*PASS .*pretend GPU" "$sum"
check "pretend device: test_cuda_noise PASS recorded" grep -q "test_cuda_noise .*PASS" "$sum"
check "pretend device: the hang is a TIMEOUT" grep -q "test_cuda_steps .*TIMEOUT" "$sum"
check "pretend device: later steps NOT RUN" grep -q "bench_cuda .*NOT RUN" "$sum"
check "pretend device: RESULT: FAIL" grep -q "^RESULT: FAIL" "$sum"
check "pretend device: done in $took s (budget 6 s + kill grace)" test "$took" -lt 20

rm -rf "$work"
exit $fail
