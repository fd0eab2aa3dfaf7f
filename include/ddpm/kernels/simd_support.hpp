// ddpm/kernels/simd_support.hpp — the one place that touches xsimd names that
// differ between xsimd 8.1 (Debian 12) and current releases.
#pragma once

#include "ddpm/config.hpp"

#if !DDPM_HAS_XSIMD
namespace ddpm::kernels::detail {
/// Stands for xsimd::default_arch in template parameter lists without xsimd.
struct default_simd_arch {};
} // namespace ddpm::kernels::detail
#else
#include <xsimd/xsimd.hpp>

namespace ddpm::kernels::detail {

/// The arch of the compile-time SIMD code. The kernels take the arch as a
/// template parameter, so the run-time dispatched instantiations
/// (ddpm/dispatch/) have names of their own and never collide with these.
using default_simd_arch = xsimd::default_arch;

/// Horizontal sum: xsimd::hadd before 9.0, xsimd::reduce_add since.
template <class T, class A>
DDPM_FORCEINLINE T horizontal_sum(const xsimd::batch<T, A>& b) noexcept {
#if XSIMD_VERSION_MAJOR < 9
    return xsimd::hadd(b);
#else
    return xsimd::reduce_add(b);
#endif
}

} // namespace ddpm::kernels::detail
#endif
