#!/usr/bin/env bash
# scripts/install-deps.sh — install every Debian package that ddpm needs to
# build, test and run its examples, by their Debian 12 ("bookworm") names.
#
#   bash scripts/install-deps.sh            # build + test + demo dependencies
#   bash scripts/install-deps.sh --bench    # also python3-torch, for
#                                           # benchmarks/compare_pytorch.py
#   bash scripts/install-deps.sh --print    # print the package list and exit
#
# Idempotent: when every package is already installed it touches nothing (no
# apt-get update, no root needed). Otherwise it runs apt-get as root, or
# through sudo when not root. Works on a minimal Debian (debootstrap
# --variant=minbase) that has no compiler.
set -euo pipefail

# Build tools. clang is only used by the header test that compiles
# <ddpm/ddpm.hpp> with both g++ and clang++ (the test is skipped without it).
packages=(
    g++
    clang
    cmake
    ninja-build
    make
    git
)
# Libraries (all header-only or static, from the distribution).
packages+=(
    libxsimd-dev         # SIMD kernels (ddpm::xsimd)
    xtl-dev              # xsimd's CMake target links xtl (Debian 12 quirk)
    libeigen3-dev        # adapters/eigen.hpp and its tests
    libxtensor-dev       # adapters/xtensor.hpp and its tests
    catch2               # unit tests (Catch2 v2 on Debian 12)
    libbenchmark-dev     # benchmarks/ (Google Benchmark)
    nlohmann-json3-dev   # golden-file tests
    librandom123-dev     # Philox known-answer tests
    libstb-dev           # demo pictures (stb_image_write)
    libopenmpi-dev       # distributed/mpi.hpp, its tests (ctest -L mpi) and examples/mpi_*
    openmpi-bin          # mpirun, for those tests and examples
)

# The LibTorch route (ddpm/adapters/torch.hpp, tests/torch, examples/fashion_mnist).
packages+=(
    libtorch-dev          # LibTorch (CPU): the adapter, its tests, the Fashion-MNIST example
    python3-torch         # TorchScript fixtures of tests/torch; examples/fashion_mnist/export.py
    dataset-fashion-mnist # the Fashion-MNIST IDX files (/usr/share/datasets/fashion-mnist)
    zlib1g-dev            # reads the gzipped IDX files
)

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

print_only=0
for arg in "$@"; do
    case "$arg" in
        --bench) packages+=(python3 python3-numpy python3-torch) ;;
        --print) print_only=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$print_only" = 1 ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: this script needs a Debian/Ubuntu system (dpkg-query, apt-get)." >&2
    echo "Install these packages (or their equivalents) yourself:" >&2
    printf '  %s\n' "${packages[@]}" >&2
    exit 1
fi

# Which packages are missing? dpkg-query prints "ii " for an installed one.
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing+=("$p") ;;
    esac
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: all ${#packages[@]} packages are already installed."
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-deps.sh: missing packages: ${missing[*]}" >&2
    echo "Run this script as root, or install sudo." >&2
    exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
