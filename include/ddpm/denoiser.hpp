// ddpm/denoiser.hpp — the plug-in point: what a network must look like for the
// samplers to call it (docs/design.md#the-plug-in-point).
//
// ## Named requirement: Denoiser<T>
//
// A type `D` satisfies `ddpm::denoiser<D, T>` (T = float or double) when, for
// an lvalue `d` of type `D&`:
//
// | expression                         | requirement                                                           |
// |------------------------------------|-----------------------------------------------------------------------|
// | `d(x_t, t, out)`                   | well-formed; the return value (if any) is ignored                     |
// | `x_t`: `std::span<const T>`        | B·D inputs, batch-first (sample b occupies `[b·D, (b+1)·D)`)          |
// | `t`: `std::span<const timestep_t>` | B timesteps, one per sample, 0-based, in `[0, T)` of the *training* schedule (a respaced chain still passes the original index) |
// | `out`: `std::span<T>`              | B·D outputs (B·2D for a learned variance: per sample the D predictions, then the D variance values) |
//
// Semantics: `d` writes every element of `out` and reads only `x_t` and `t`.
// (The concept checks the call only: a callable whose third parameter is a
// std::span<const T> also satisfies it, since std::span<T> converts; it just
// cannot do its job.)
// It may keep state (it is called through a non-const reference) but must not
// keep the spans beyond the call; the samplers reuse the buffers. It is called
// once per step, with the whole batch.
//
// What the network predicts (ε, x_0 or v) and whether it also outputs a
// variance is not part of the type: it is told to the scheduler through
// `ddpm::model_options` (core/p_mean_variance.hpp). A network type may declare
// its defaults for `denoiser_traits` (below) with static members
//
//     static constexpr ddpm::prediction_type prediction = ddpm::prediction_type::v_prediction;
//     static constexpr ddpm::variance_type variance = ddpm::variance_type::learned_range;
//
// and `ddpm::denoiser_options<D>()` turns them into a model_options. Any
// callable satisfies the concept: a lambda, a function object wrapping an ONNX
// Runtime / LibTorch / TensorRT session, or a plain function pointer. There is
// no virtual base.
//
// A type that does not satisfy the concept is rejected at the public entry
// points (ddpm::sample, ddpm::ddim_sample, ddpm::ddim_invert) by one
// static_assert whose message names `ddpm::denoiser` and the expected call.
//
// ## Named requirement: ContinuousDenoiser<T> (real-valued timesteps)
//
// The σ-based schedulers (Euler, Euler ancestral, Heun, and every Karras or
// exponential σ schedule) hand the network *fractional* timesteps, as
// diffusers passes its float `timesteps[i]`. A network that takes them
// satisfies `ddpm::continuous_denoiser<D, T>`:
//
// | expression                  | requirement                                                        |
// |-----------------------------|--------------------------------------------------------------------|
// | `d(x_t, t, out)`            | well-formed, as above                                              |
// | `t`: `std::span<const T>`   | B real timesteps in [0, T − 1] of the training schedule, in the sample precision T (the value diffusers passes, e.g. 998.0009765625f) |
//
// The choice is made at compile time, per scheduler:
//   * a scheduler with integer timesteps (DDPM, DDIM) calls the integer
//     signature when the network has it, else the real one with the exact
//     integer values (so a continuous network works with every scheduler);
//   * a scheduler with fractional timesteps calls the real signature; an
//     integer-only network is a compile-time error (a static_assert naming
//     `ddpm::denoiser` and `ddpm::continuous_denoiser`), never a silent
//     truncation. `ddpm::round_timesteps(net)` is the explicit opt-in: it
//     rounds each timestep to the nearest integer (halves to even) and calls
//     the integer signature.
// A generic callable (`auto t`) satisfies both and gets what the scheduler
// has: timestep_t from DDPM/DDIM, T from the σ-based schedulers.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/core/p_mean_variance.hpp"
#include "ddpm/core/types.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <span>
#include <type_traits>
#include <utility>

namespace ddpm {

/// A network the samplers can call: `d(std::span<const T> x_t,
/// std::span<const timestep_t> t, std::span<T> out)` (see the table above).
template <class D, class T>
concept denoiser = std::floating_point<T> &&
                   std::invocable<std::remove_reference_t<D>&, std::span<const T>, std::span<const timestep_t>,
                                  std::span<T>>;

/// `denoiser<D, T>` as a bool, for static_assert and SFINAE-style code.
template <class D, class T>
inline constexpr bool is_denoiser_v = denoiser<D, T>;

/// A network taking real-valued timesteps: `d(std::span<const T> x_t,
/// std::span<const T> t, std::span<T> out)` (see ContinuousDenoiser above).
template <class D, class T>
concept continuous_denoiser =
    std::floating_point<T> && std::invocable<std::remove_reference_t<D>&, std::span<const T>, std::span<const T>,
                                             std::span<T>>;

/// `continuous_denoiser<D, T>` as a bool.
template <class D, class T>
inline constexpr bool is_continuous_denoiser_v = continuous_denoiser<D, T>;

/// The explicit opt-in that lets an integer-timestep network run under a
/// scheduler with fractional timesteps: every timestep is rounded to the
/// nearest integer (halves to even) before the call. Made by
/// ddpm::round_timesteps(net); holds a reference to the network. The
/// samplers round into their own scratch, so nothing allocates per call.
template <class D>
struct rounding_denoiser {
    D& net;
};

/// Wraps an integer-timestep network for a fractional-timestep scheduler
/// (see rounding_denoiser). The network must outlive the wrapper.
template <class D>
[[nodiscard]] rounding_denoiser<std::remove_reference_t<D>> round_timesteps(D& net) noexcept {
    return {net};
}

namespace detail {
template <class D>
struct is_rounding_denoiser : std::false_type {};
template <class D>
struct is_rounding_denoiser<rounding_denoiser<D>> : std::true_type {};
} // namespace detail

/// Can a scheduler with real (`Continuous`) or integer timesteps call D?
template <class D, class T, bool Continuous>
inline constexpr bool callable_with_timesteps_v = [] {
    using R = std::remove_cvref_t<D>;
    if constexpr (detail::is_rounding_denoiser<R>::value) return denoiser<decltype(std::declval<R&>().net), T>;
    else if constexpr (Continuous) return continuous_denoiser<D, T>;
    else return denoiser<D, T> || continuous_denoiser<D, T>;
}();

namespace detail {
template <class D>
concept declares_prediction = requires {
    { std::remove_cvref_t<D>::prediction } -> std::convertible_to<prediction_type>;
    // a static data member (&D::x is a plain pointer), not a non-static one
    requires std::is_pointer_v<decltype(&std::remove_cvref_t<D>::prediction)>;
};
template <class D>
concept declares_variance = requires {
    { std::remove_cvref_t<D>::variance } -> std::convertible_to<variance_type>;
    requires std::is_pointer_v<decltype(&std::remove_cvref_t<D>::variance)>;
};
} // namespace detail

/// What a denoiser type declares about its output. Specialise it for a type
/// you cannot change, or give the type static `prediction` / `variance`
/// members. Defaults: ε-prediction, fixed_small variance (no extra channels).
template <class D>
struct denoiser_traits {
    static constexpr prediction_type prediction = [] {
        if constexpr (detail::declares_prediction<D>) return static_cast<prediction_type>(std::remove_cvref_t<D>::prediction);
        else return prediction_type::epsilon;
    }();
    static constexpr variance_type variance = [] {
        if constexpr (detail::declares_variance<D>) return static_cast<variance_type>(std::remove_cvref_t<D>::variance);
        else return variance_type::fixed_small;
    }();
    /// Output values per input value: 2 when the network also outputs a variance.
    static constexpr std::size_t output_channels = is_learned(variance) ? 2 : 1;
};

/// model_options from denoiser_traits<D> (clipping off; set it yourself).
template <class D>
[[nodiscard]] inline model_options denoiser_options() {
    model_options o;
    o.prediction = denoiser_traits<std::remove_cvref_t<D>>::prediction;
    o.variance = denoiser_traits<std::remove_cvref_t<D>>::variance;
    return o;
}

namespace detail {

/// Calls the network with the sampler's buffers.
template <class T, class D>
DDPM_FORCEINLINE void call_denoiser(D& d, std::span<const T> x, std::span<const timestep_t> t, std::span<T> out) {
    static_cast<void>(d(x, t, out));
}

/// Calls the network with the timestep value `t` of this call for every
/// sample, through the signature callable_with_timesteps_v picks. `ints` and
/// `reals` are B-element scratch (filled here).
template <class T, bool Continuous, class D, class Tv>
DDPM_FORCEINLINE void call_network(D& d, std::span<const T> x, Tv t, std::span<timestep_t> ints, std::span<T> reals,
                                   std::span<T> out) {
    using R = std::remove_cvref_t<D>;
    if constexpr (is_rounding_denoiser<R>::value) {
        std::fill(ints.begin(), ints.end(), static_cast<timestep_t>(std::nearbyint(static_cast<double>(t))));
        static_cast<void>(d.net(x, std::span<const timestep_t>(ints), out));
    } else if constexpr (!Continuous && denoiser<D, T>) {
        std::fill(ints.begin(), ints.end(), static_cast<timestep_t>(t));
        static_cast<void>(d(x, std::span<const timestep_t>(ints), out));
    } else {
        std::fill(reals.begin(), reals.end(), static_cast<T>(t));
        static_cast<void>(d(x, std::span<const T>(reals), out));
    }
}

} // namespace detail
} // namespace ddpm
