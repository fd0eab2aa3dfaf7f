#!/usr/bin/env bash
# scripts/build-and-test.sh — install the dependencies, build ddpm (Release,
# tests on) in ./build and run the whole test suite with ctest.
#
#   bash scripts/build-and-test.sh              # everything
#   bash scripts/build-and-test.sh -L random    # extra arguments go to ctest
#
# Environment: DDPM_BUILD_DIR (default: build, relative to the repository
# root), DDPM_CMAKE_ARGS (extra configure arguments, split on spaces),
# DDPM_SKIP_DEPS=1 (do not run scripts/install-deps.sh).
# Works from any directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "${DDPM_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh
fi

build_dir="${DDPM_BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"

# Ninja for a new build directory; an existing one keeps its generator.
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi
# shellcheck disable=SC2206  # DDPM_CMAKE_ARGS is split on purpose
extra=(${DDPM_CMAKE_ARGS:-})

start=$(date +%s)
cmake -S . -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DDDPM_BUILD_TESTS=ON "${extra[@]}"
cmake --build "$build_dir" -j "$jobs"
built=$(date +%s)
rc=0
ctest --test-dir "$build_dir" --output-on-failure -j2 "$@" || rc=$?
done_=$(date +%s)
echo "build-and-test.sh: configure + build $((built - start)) s, tests $((done_ - built)) s"
exit "$rc"
