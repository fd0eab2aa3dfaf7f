#!/usr/bin/env bash
# scripts/run-demo.sh — install the dependencies, build the flagship demo
# (Release, in ./build) and run it. Pictures and other output go to ./out.
#
#   bash scripts/run-demo.sh            # build and run the demo
#   bash scripts/run-demo.sh ARGS...    # arguments are passed to the demo
#
# Environment: DDPM_BUILD_DIR (default: build), DDPM_CMAKE_ARGS (extra
# configure arguments), DDPM_SKIP_DEPS=1 (do not run scripts/install-deps.sh).
# Works from any directory.
set -euo pipefail

# The example target that is the flagship demo.
DEMO=train_2d

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "${DDPM_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh
fi

build_dir="${DDPM_BUILD_DIR:-build}"
jobs="$(nproc 2>/dev/null || echo 2)"

generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi
# shellcheck disable=SC2206  # DDPM_CMAKE_ARGS is split on purpose
extra=(${DDPM_CMAKE_ARGS:-})

# Same configuration as build-and-test.sh so that both share ./build.
cmake -S . -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DDDPM_BUILD_TESTS=ON -DDDPM_BUILD_EXAMPLES=ON "${extra[@]}"
if ! cmake --build "$build_dir" -j "$jobs" --target "$DEMO"; then
    echo "run-demo.sh: could not build the demo target '$DEMO' (see above;" >&2
    echo "is it defined in examples/CMakeLists.txt?)" >&2
    exit 1
fi

exe=$(find "$root/$build_dir" -type f -name "$DEMO" -perm -u+x -print -quit)
if [ -z "$exe" ]; then
    echo "run-demo.sh: built '$DEMO' but found no executable of that name in $build_dir" >&2
    exit 1
fi

mkdir -p "$root/out"
cd "$root/out"
echo "run-demo.sh: running $exe (output in $root/out)"
"$exe" "$@"
