// ddpm/config.hpp — compiler, platform and policy macros.
//
// Every macro here is wrapped in #ifndef so that a user may define it before
// including any ddpm header.
#pragma once

#include <cassert>
#include <cstdio>
#include <cstdlib>

// ---------------------------------------------------------------------------
// CUDA annotations. Only nvcc sees __host__ / __device__; everywhere else the
// macros are plain `inline` so the same scalar maths compiles with g++/clang.
#if defined(__CUDACC__)
#define DDPM_CUDA_COMPILATION() 1
#else
#define DDPM_CUDA_COMPILATION() 0
#endif

#ifndef DDPM_HOST_DEVICE
#if DDPM_CUDA_COMPILATION()
#define DDPM_HOST_DEVICE __host__ __device__
#else
#define DDPM_HOST_DEVICE
#endif
#endif

#ifndef DDPM_FORCEINLINE
#if DDPM_CUDA_COMPILATION()
#define DDPM_FORCEINLINE __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define DDPM_FORCEINLINE inline __attribute__((always_inline))
#else
#define DDPM_FORCEINLINE inline
#endif
#endif

// ---------------------------------------------------------------------------
// SIMD. xsimd is optional: DDPM_HAS_XSIMD is 1 when <xsimd/xsimd.hpp> is
// reachable and the user did not turn it off with DDPM_HAS_XSIMD=0.
#ifndef DDPM_HAS_XSIMD
#if defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>) && !DDPM_CUDA_COMPILATION()
#define DDPM_HAS_XSIMD 1
#else
#define DDPM_HAS_XSIMD 0
#endif
#else
#define DDPM_HAS_XSIMD 0
#endif
#endif

// ---------------------------------------------------------------------------
// Exceptions. Every throw goes through DDPM_THROW; without exceptions it prints
// the message and aborts.
#ifndef DDPM_NO_EXCEPTIONS
#if !defined(__cpp_exceptions)
#define DDPM_NO_EXCEPTIONS 1
#else
#define DDPM_NO_EXCEPTIONS 0
#endif
#endif

#ifndef DDPM_THROW
#if DDPM_NO_EXCEPTIONS
#define DDPM_THROW(exception)                                                   \
    do {                                                                        \
        std::fprintf(stderr, "ddpm: fatal error: %s\n", (exception).what());   \
        std::abort();                                                           \
    } while (false)
#else
#define DDPM_THROW(exception) throw exception
#endif
#endif

// Internal invariants and hot-loop preconditions. Defaults to assert(); define
// DDPM_ASSERT before including ddpm to route it elsewhere.
#ifndef DDPM_ASSERT
#define DDPM_ASSERT(cond, msg) assert((cond) && (msg))
#endif
