// ddpm/dispatch/arch_register.hpp — what each arch file of ddpm/dispatch/
// compiles: the kernel and noise tables of one xsimd arch, registered with
// ddpm/dispatch/isa.hpp during static initialisation.
//
// Everything defined here is either a template specialisation carrying the
// arch in its name (forward_range<…, Arch>, fill_normal_simd<Arch>, …) or in
// an unnamed namespace, so the arch file's code never replaces the caller's
// compile-time instantiations at link time.
#pragma once

#include "ddpm/dispatch/isa.hpp"
#include "ddpm/kernels/combine.hpp"
#include "ddpm/kernels/fused.hpp"
#include "ddpm/random/counter_noise.hpp"

#if !DDPM_HAS_XSIMD
// Without xsimd there is nothing to register (the arch files need xsimd).
#define DDPM_DISPATCH_REGISTER(Isa, Arch)
#else
/// Defines and registers the tables of `Arch` under dispatch::isa::`Isa`.
#define DDPM_DISPATCH_REGISTER(Isa, Arch)                                                                        \
    namespace {                                                                                                  \
    constexpr ::ddpm::random::detail::fill_table ddpm_fill_table = ::ddpm::random::detail::make_fill_table<Arch>(); \
    constexpr ::ddpm::kernels::detail::kernel_table<float> ddpm_kernels_f =                                      \
        ::ddpm::kernels::detail::make_kernel_table<float, Arch>();                                               \
    constexpr ::ddpm::kernels::detail::kernel_table<double> ddpm_kernels_d =                                     \
        ::ddpm::kernels::detail::make_kernel_table<double, Arch>();                                              \
    constexpr ::ddpm::kernels::detail::solver_table<float> ddpm_solvers_f =                                      \
        ::ddpm::kernels::detail::make_solver_table<float, Arch>();                                               \
    constexpr ::ddpm::kernels::detail::solver_table<double> ddpm_solvers_d =                                     \
        ::ddpm::kernels::detail::make_solver_table<double, Arch>();                                              \
    const bool ddpm_registered = [] {                                                                            \
        ::ddpm::dispatch::register_table(::ddpm::dispatch::isa::Isa, &ddpm_fill_table);                          \
        ::ddpm::dispatch::register_table(::ddpm::dispatch::isa::Isa, &ddpm_kernels_f);                           \
        ::ddpm::dispatch::register_table(::ddpm::dispatch::isa::Isa, &ddpm_kernels_d);                           \
        ::ddpm::dispatch::register_table(::ddpm::dispatch::isa::Isa, &ddpm_solvers_f);                           \
        ::ddpm::dispatch::register_table(::ddpm::dispatch::isa::Isa, &ddpm_solvers_d);                           \
        return true;                                                                                             \
    }();                                                                                                         \
    }
#endif
