// ddpm/cuda/error.cuh — CUDA errors and argument checks for ddpm's kernels.
//
// Two layers, as CUTLASS (Status + can_implement) and CUB (cudaError_t):
//   * every kernel has a noexcept launcher `launch_*(args, stream)` that
//     returns a ddpm::cuda::status after checking its arguments once
//     (can_launch); it never throws;
//   * the public functions (ddpm::cuda::q_sample, ddim_step, the samplers, …)
//     are thin wrappers that turn a bad argument into ddpm::invalid_argument
//     (naming the parameter, its value and what was expected) and a CUDA
//     failure into ddpm::cuda_error (carrying cudaGetErrorString and the
//     call site), through DDPM_THROW.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/config.hpp"
#include "ddpm/error.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace ddpm::cuda {

/// The outcome of a launcher: success, a bad argument (error ==
/// cudaErrorInvalidValue, with the parameter, its value and the expectation as
/// static strings), the CUDA error the launch returned, or an error that was
/// already pending before it (pending_before: left by earlier work, e.g. the
/// caller's network kernel; ddpm then launched nothing).
struct status {
    cudaError_t error = cudaSuccess;
    const char* parameter = nullptr; ///< bad argument: its name (nullptr for a CUDA failure)
    long long value = 0;             ///< bad argument: its value
    const char* expected = nullptr;  ///< bad argument: what was expected
    bool pending_before = false;     ///< the error was pending before ddpm's launch (not ddpm's)

    [[nodiscard]] constexpr bool ok() const noexcept { return error == cudaSuccess; }
    explicit constexpr operator bool() const noexcept { return ok(); }
    [[nodiscard]] constexpr bool bad_argument() const noexcept { return parameter != nullptr; }

    [[nodiscard]] static constexpr status success() noexcept { return {}; }
    [[nodiscard]] static constexpr status invalid(const char* parameter, long long value,
                                                  const char* expected) noexcept {
        return {cudaErrorInvalidValue, parameter, value, expected, false};
    }
    [[nodiscard]] static constexpr status from(cudaError_t e) noexcept { return {e, nullptr, 0, nullptr, false}; }
    [[nodiscard]] static constexpr status pending(cudaError_t e) noexcept { return {e, nullptr, 0, nullptr, true}; }
};

namespace detail {

/// "<where>: CUDA error <name> (<code>): <cudaGetErrorString> [in `<call>`] at <file>:<line>"
[[nodiscard]] inline std::string cuda_message(cudaError_t e, std::string_view where, const char* call,
                                              const char* file, int line) {
    std::string m(where);
    m += ": CUDA error ";
    m += cudaGetErrorName(e);
    m += " (" + std::to_string(static_cast<int>(e)) + "): ";
    m += cudaGetErrorString(e);
    if (call != nullptr) {
        m += " in `";
        m += call;
        m += "`";
    }
    if (file != nullptr) {
        m += " at ";
        m += file;
        m += ":" + std::to_string(line);
    }
    return m;
}

/// Throws ddpm::cuda_error unless e is cudaSuccess.
inline void check_cuda(cudaError_t e, const char* call, const char* file, int line, std::string_view where = "ddpm") {
    if (e != cudaSuccess) DDPM_THROW(ddpm::cuda_error(cuda_message(e, where, call, file, line)));
}

/// Takes (and clears) the error pending in the runtime before ddpm launches
/// anything, so that a failure of earlier work — typically the caller's own
/// network kernel launched just before a step — is reported as such rather
/// than as ddpm's launch failing. Only errors the runtime has already
/// recorded are seen: a kernel that faults later still surfaces at the next
/// synchronising call, wherever that is.
[[nodiscard]] inline status take_pending_error() noexcept {
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? status::success() : status::pending(e);
}

/// Throws for a failed status: ddpm::invalid_argument for a bad argument,
/// ddpm::cuda_error for a CUDA failure (the launch site in the message, or,
/// for an error pending before the launch, that it came from earlier work).
inline void throw_if_failed(const status& s, std::string_view where, const char* file = nullptr, int line = 0) {
    if (s.ok()) return;
    if (s.bad_argument()) ddpm::detail::throw_invalid(where, s.parameter, s.value, s.expected);
    if (s.pending_before)
        DDPM_THROW(ddpm::cuda_error(cuda_message(
            s.error, where,
            "earlier work (pending before ddpm's launch, e.g. the network's kernel; ddpm launched nothing)", file,
            line)));
    DDPM_THROW(ddpm::cuda_error(cuda_message(s.error, where, "kernel launch", file, line)));
}

} // namespace detail
} // namespace ddpm::cuda

/// Evaluates a CUDA runtime call; throws ddpm::cuda_error with
/// cudaGetErrorString, the call's text and the file and line when it fails.
#ifndef DDPM_CUDA_CHECK
#define DDPM_CUDA_CHECK(call) ::ddpm::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
#endif
