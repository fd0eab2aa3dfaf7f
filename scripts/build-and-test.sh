#!/usr/bin/env bash
# scripts/build-and-test.sh — install the dependencies, build ddpm (Release,
# tests on) in ./build and run the whole test suite with ctest.
#
#   bash scripts/build-and-test.sh              # everything
#   bash scripts/build-and-test.sh -L random    # extra arguments go to ctest
#   bash scripts/build-and-test.sh --sanitize   # ASan + UBSan build in build-sanitize
#   bash scripts/build-and-test.sh --tsan       # ThreadSanitizer build of the threaded tests in build-tsan
#
# --sanitize: -fsanitize=address,undefined -fno-sanitize-recover=undefined
#   (any UB report fails the test), RelWithDebInfo, CUDA and benchmarks off.
#   DDPM_SANITIZE_AREAS (a ;-list of tests/ subfolders, default: all) picks the
#   test areas.
# --tsan: -fsanitize=thread; configures the test areas DDPM_TSAN_AREAS (default
#   "core;kernels"), builds the targets DDPM_TSAN_TARGETS (default
#   "test_parallel test_kernels": the thread pool and the kernels on 1-3
#   threads) and runs the tests whose name matches the regex DDPM_TSAN_TESTS
#   (default "^(test_parallel|test_kernels):").
#
# Environment: DDPM_BUILD_DIR (default: build, build-sanitize or build-tsan,
# relative to the repository root), DDPM_CMAKE_ARGS (extra configure arguments,
# split on spaces), DDPM_SKIP_DEPS=1 (do not run scripts/install-deps.sh).
# Works from any directory.
set -euo pipefail

mode=plain
case "${1:-}" in
--sanitize) mode=sanitize; shift ;;
--tsan) mode=tsan; shift ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "${DDPM_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh
fi

jobs="$(nproc 2>/dev/null || echo 2)"
mode_args=()
ctest_args=()
build_targets=()
case "$mode" in
plain)
    build_dir="${DDPM_BUILD_DIR:-build}"
    mode_args=(-DCMAKE_BUILD_TYPE=Release)
    ;;
sanitize)
    build_dir="${DDPM_BUILD_DIR:-build-sanitize}"
    # GCC 12 reports false maybe-uninitialized errors inside libstdc++'s
    # <regex> (used by Catch2) under ASan: keep them as warnings.
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    flags="$flags -Wno-error=maybe-uninitialized"
    mode_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS=$flags"
               "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
               -DDDPM_ENABLE_CUDA=OFF -DDDPM_BUILD_BENCHMARKS=OFF
               "-DDDPM_TEST_AREAS=${DDPM_SANITIZE_AREAS:-}")
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
    ;;
tsan)
    build_dir="${DDPM_BUILD_DIR:-build-tsan}"
    mode_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS=-fsanitize=thread"
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
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi
# shellcheck disable=SC2206  # DDPM_CMAKE_ARGS is split on purpose
extra=(${DDPM_CMAKE_ARGS:-})

start=$(date +%s)
cmake -S . -B "$build_dir" "${generator[@]}" \
    "${mode_args[@]}" -DDDPM_BUILD_TESTS=ON "${extra[@]}"
cmake --build "$build_dir" -j "$jobs" "${build_targets[@]}"
built=$(date +%s)
rc=0
ctest --test-dir "$build_dir" --output-on-failure -j2 "${ctest_args[@]}" "$@" || rc=$?
done_=$(date +%s)
echo "build-and-test.sh ($mode): configure + build $((built - start)) s, tests $((done_ - built)) s"
exit "$rc"
