// ddpm/kernels/simd_support.hpp — the one place that touches xsimd names that
// differ between xsimd 8.1 (Debian 12) and current releases.
#pragma once

#include "ddpm/config.hpp"

#if DDPM_HAS_XSIMD
#include <xsimd/xsimd.hpp>

namespace ddpm::kernels::detail {

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
