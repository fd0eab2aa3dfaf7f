#!/usr/bin/env bash
# scripts/build-and-test.sh — install the dependencies, build ddpm's tests and
# run them with ctest. The README's test command and .ci/run.
#
#   bash scripts/build-and-test.sh              # plain suite, then ASan+UBSan job, then TSan job
#   bash scripts/build-and-test.sh -L random    # extra arguments go to every part's ctest
#   bash scripts/build-and-test.sh --plain      # the plain suite only (Release, ./build)
#   bash scripts/build-and-test.sh --sanitize   # the ASan + UBSan job only (./build-sanitize)
#   bash scripts/build-and-test.sh --tsan       # the ThreadSanitizer job only (./build-tsan)
#
# The default runs the three parts in that order, each even when an earlier
# one failed, prints one summary line per part (configure + build time, test
# time, result) and fails if any part failed. docs/building.md, "What CI
# runs", says what each part covers and how long it takes.
#
# plain: Release, every test area (DDPM_TEST_AREAS, a ;-list of tests/
#   subfolders, restricts it), the examples' smoke tests. The fuzz target's
#   short run belongs to the sanitized part (it is a sanitized build), so the
#   default leaves tests/fuzz out of the plain part; --plain keeps it.
# sanitize: -fsanitize=address,undefined -fno-sanitize-recover=undefined
#   (any UB report fails the test), -O1 -g1, leak detection on with the
#   third-party suppressions of tests/sanitize/lsan.supp. The test areas
#   DDPM_SANITIZE_AREAS (default "core;inspect;kernels;schedule;fuzz": the
#   config loader, schedules, timesteps, schedulers' checks, fused kernels,
#   thread pool, the issue 11 regressions and the libFuzzer target) and of the
#   examples only ddpm_inspect (the inspect tests run it). No CUDA, LibTorch,
#   MPI or benchmarks. DDPM_SANITIZE_AREAS=all: every area and example except
#   CUDA, LibTorch and benchmarks (MPI included).
# tsan: -fsanitize=thread -O1 -g1; configures the areas DDPM_TSAN_AREAS
#   (default "core;kernels"), builds the targets DDPM_TSAN_TARGETS (default
#   "test_parallel test_kernels": the thread pool and the kernels on 1-3
#   threads) and runs the tests whose name matches DDPM_TSAN_TESTS (default
#   "^(test_parallel|test_kernels):").
#
# Environment: DDPM_BUILD_DIR (the build directory of a single-part run,
# relative to the repository root; default build, build-sanitize or
# build-tsan), DDPM_CMAKE_ARGS (extra configure arguments for every part,
# split on spaces), DDPM_SKIP_DEPS=1 (do not run scripts/install-deps.sh).
# Works from any directory.
set -euo pipefail

mode=all
case "${1:-}" in
--plain) mode=plain; shift ;;
--sanitize) mode=sanitize; shift ;;
--tsan) mode=tsan; shift ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "${DDPM_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh
fi

jobs="$(nproc 2>/dev/null || echo 2)"
# shellcheck disable=SC2206  # DDPM_CMAKE_ARGS is split on purpose
extra=(${DDPM_CMAKE_ARGS:-})
summary=()

# run_part <part> <build dir> [ctest args...]: configure, build and test one
# part; sets part_rc. The part's settings come from set_part below.
run_part() {
    local part="$1" build_dir="$2"
    shift 2
    local mode_args=() ctest_args=() build_targets=()
    local saved_asan="${ASAN_OPTIONS-}" saved_lsan="${LSAN_OPTIONS-}"
    local saved_ubsan="${UBSAN_OPTIONS-}" saved_tsan="${TSAN_OPTIONS-}"
    local o1="-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
    case "$part" in
    plain | plain-nofuzz)
        mode_args=(-DCMAKE_BUILD_TYPE=Release "-DDDPM_TEST_AREAS=${DDPM_TEST_AREAS:-}" -DDDPM_EXAMPLES=)
        if [ "$part" = plain-nofuzz ]; then
            mode_args+=(-DDDPM_BUILD_FUZZ=OFF)
        else
            mode_args+=(-DDDPM_BUILD_FUZZ=ON)
        fi
        ;;
    sanitize)
        # GCC 12 reports false maybe-uninitialized errors inside libstdc++'s
        # <regex> (used by Catch2) under ASan: keep them as warnings.
        local flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
        flags="$flags -Wno-error=maybe-uninitialized"
        local areas="${DDPM_SANITIZE_AREAS:-core;inspect;kernels;schedule;fuzz}" examples=ddpm_inspect
        local asan="detect_leaks=1:abort_on_error=1"
        if [ "$areas" = all ]; then
            # MPI code too: its leaks are suppressed by library name
            # (tests/sanitize/lsan.supp), which needs full allocation stacks.
            areas="" examples="" asan="$asan:fast_unwind_on_malloc=0"
        fi
        mode_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "$o1" "-DCMAKE_CXX_FLAGS=$flags"
                   "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
                   -DDDPM_ENABLE_CUDA=OFF -DDDPM_BUILD_BENCHMARKS=OFF -DDDPM_BUILD_FUZZ=ON
                   -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON
                   "-DDDPM_TEST_AREAS=$areas" "-DDDPM_EXAMPLES=$examples")
        export ASAN_OPTIONS="${ASAN_OPTIONS:-$asan}"
        export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/sanitize/lsan.supp:print_suppressions=0}"
        export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
        ;;
    tsan)
        mode_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "$o1" "-DCMAKE_CXX_FLAGS=-fsanitize=thread"
                   "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread"
                   -DDDPM_ENABLE_CUDA=OFF -DDDPM_BUILD_BENCHMARKS=OFF -DDDPM_BUILD_EXAMPLES=OFF
                   "-DDDPM_TEST_AREAS=${DDPM_TSAN_AREAS:-core;kernels}")
        # shellcheck disable=SC2206  # a space-separated list on purpose
        build_targets=(--target ${DDPM_TSAN_TARGETS:-test_parallel test_kernels})
        # Anchored: the areas' other executables are not built, and ctest lists
        # each as a "<name>_NOT_BUILT" placeholder that must not match.
        ctest_args=(-R "${DDPM_TSAN_TESTS:-^(test_parallel|test_kernels):}")
        export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
        ;;
    esac

    # Ninja for a new build directory; an existing one keeps its generator.
    local generator=()
    if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
        generator=(-G Ninja)
    fi
    echo "=== build-and-test.sh: $part in $build_dir ==="
    local start built done_ status=passed
    start=$(date +%s)
    part_rc=0
    if cmake -S . -B "$build_dir" "${generator[@]}" "${mode_args[@]}" -DDDPM_BUILD_TESTS=ON "${extra[@]}" &&
        cmake --build "$build_dir" -j "$jobs" "${build_targets[@]}"; then
        built=$(date +%s)
        ctest --test-dir "$build_dir" --output-on-failure -j2 "${ctest_args[@]}" "$@" || part_rc=$?
        [ "$part_rc" = 0 ] || status="FAILED (ctest exit $part_rc)"
    else
        part_rc=$?
        built=$(date +%s)
        status="FAILED (configure or build, exit $part_rc)"
    fi
    done_=$(date +%s)
    summary+=("$(printf '%-9s %-16s configure + build %5d s, tests %5d s: %s' \
        "${part%-nofuzz}" "$build_dir" $((built - start)) $((done_ - built)) "$status")")
    # Leave the caller's sanitizer settings as they were for the next part.
    local v
    for v in ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
        unset "$v"
    done
    [ -z "$saved_asan" ] || export ASAN_OPTIONS="$saved_asan"
    [ -z "$saved_lsan" ] || export LSAN_OPTIONS="$saved_lsan"
    [ -z "$saved_ubsan" ] || export UBSAN_OPTIONS="$saved_ubsan"
    [ -z "$saved_tsan" ] || export TSAN_OPTIONS="$saved_tsan"
}

rc=0
case "$mode" in
all)
    for part in plain-nofuzz sanitize tsan; do
        case "$part" in
        plain-nofuzz) dir=build ;;
        *) dir="build-$part" ;;
        esac
        run_part "$part" "$dir" "$@"
        [ "$part_rc" = 0 ] || rc=1
    done
    ;;
*)
    default_dir=build
    [ "$mode" = plain ] || default_dir="build-$mode"
    run_part "$mode" "${DDPM_BUILD_DIR:-$default_dir}" "$@"
    rc=$part_rc
    ;;
esac

echo "=== build-and-test.sh summary ($mode) ==="
printf '%s\n' "${summary[@]}"
exit "$rc"
