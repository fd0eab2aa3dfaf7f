#!/usr/bin/env bash
# compile_umbrella.sh <compiler> <include-dir> <xsimd|scalar>
#
# Checks that <ddpm/ddpm.hpp> compiles alone with <compiler> at
# -std=c++20 -Wall -Wextra -Werror -pedantic and nothing but -I <include-dir>:
#   xsimd   xsimd visible (if installed) and picked up by __has_include
#   scalar  -DDDPM_HAS_XSIMD=0
# Exits 77 (ctest SKIP_RETURN_CODE) when <compiler> is not installed.
set -u
compiler=$1 include=$2 mode=$3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v "$compiler" >/dev/null 2>&1; then
    echo "SKIPPED: $compiler is not installed (apt-get install ${4:-$compiler})."
    exit 77
fi
"$compiler" --version | head -n 1

flags=(-std=c++20 -Wall -Wextra -Werror -pedantic)
defines=()
if [ "$mode" = scalar ]; then
    defines=(-DDDPM_HAS_XSIMD=0)
fi
cmd=("$compiler" "${flags[@]}" "${defines[@]}" -fsyntax-only -I "$include" "$here/umbrella.cpp")
echo "${cmd[*]}"
"${cmd[@]}" || exit 1

# Which SIMD path did the header choose?
has=$("$compiler" "${flags[@]}" "${defines[@]}" -E -dM -I "$include" "$here/umbrella.cpp" |
      sed -n 's/^#define DDPM_HAS_XSIMD //p')
echo "DDPM_HAS_XSIMD=$has"
if [ "$mode" = xsimd ]; then
    if echo '#include <xsimd/xsimd.hpp>' | "$compiler" -std=c++20 -x c++ -E - >/dev/null 2>&1; then
        [ "$has" = 1 ] || { echo "FAIL: xsimd is installed but DDPM_HAS_XSIMD=$has"; exit 1; }
    else
        echo "(xsimd is not installed: the xsimd variant compiled the scalar path)"
    fi
else
    [ "$has" = 0 ] || { echo "FAIL: -DDDPM_HAS_XSIMD=0 gave DDPM_HAS_XSIMD=$has"; exit 1; }
fi
echo "OK"
