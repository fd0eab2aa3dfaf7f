// ddpm/dispatch/arch_avx2.cpp — the AVX2+FMA kernels for run-time dispatch.
//
// Not a header: the CMake target ddpm::xsimd compiles this file once, with
// -mavx2 -mfma -ffp-contract=off, into an object library that it links into
// every consumer (see docs/building.md). Its static initialiser registers the
// tables below with ddpm/dispatch/isa.hpp; the kernels use them when the CPU
// has AVX2 and FMA and the caller's own code was compiled for less.
#if !defined(__AVX2__) || !defined(__FMA__)
#error "ddpm/dispatch/arch_avx2.cpp must be compiled with -mavx2 -mfma (ddpm::xsimd does this)"
#endif

#include "ddpm/dispatch/arch_register.hpp"

#if !DDPM_HAS_XSIMD
#error "ddpm/dispatch/arch_avx2.cpp needs xsimd (DDPM_HAS_XSIMD=1)"
#endif

DDPM_DISPATCH_REGISTER(avx2, xsimd::fma3<xsimd::avx2>)
