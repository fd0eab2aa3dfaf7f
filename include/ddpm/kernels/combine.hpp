// ddpm/kernels/combine.hpp — fused element-wise updates for few-step
// solvers, one pass over the batch per call, with per-sample coefficients.
// The Euler family (samplers/euler.hpp, heun.hpp) runs on sigma_step;
// DPM-Solver and UniPC run their own chunk loop (samplers/multistep.hpp's
// for_each_noise_chunk) and use only convert_element from here, so combine
// and convert_output are building blocks (tested, tests/kernels/) that no
// sampler calls yet:
//
//   * combine:        x_next = Σ_k c_k[b]·in_k + σ[b]·z   (K inputs, summed
//                     left to right, so `a·x − b·D` is reproduced exactly as
//                     a·x + (−b)·D);
//   * sigma_step:     the σ-form ODE step of the Euler family
//                     x̂_0 = f(out, x); d = (x − x̂_0)/s; [d = (d_prev + d)/2];
//                     x_next = base + d·dt + σ_up·z;
//   * convert_output: the network output as x̂_0 or ε̂ from (out, x)
//                     (DPM-Solver's and UniPC's convert_model_output).
//
// Each element function is written once, generic over a scalar T and an
// xsimd::batch<T>, so the SIMD body and the scalar tail (and the backend::scalar
// reference) perform the same operations in the same order. Work is cut into
// tasks exactly as in kernels/fused.hpp: results do not depend on the thread
// count, and counter noise for element i of row b at step s is that of
// kernels::noise_stream (stream v2 by default). These entry points validate
// sizes once per call; per-element work never checks anything. The SIMD
// bodies are dispatched at run time as in fused.hpp (ddpm/dispatch/isa.hpp).
#pragma once

#include "ddpm/kernels/fused.hpp"

#include <array>
#include <cstddef>
#include <span>
#include <string_view>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace ddpm::kernels {

/// Per-sample coefficients of combine: x_next = Σ_k c[k]·in_k + sigma·z.
template <class T, std::size_t K>
struct combine_coefficients {
    std::array<T, K> c{};
    T sigma = 0; ///< noise scale; 0 = no noise for this sample
};

/// How sigma_step forms x̂_0 from the network output o and the state x.
enum class sigma_x0_form {
    epsilon, ///< x̂_0 = x − a·o                 (ε-prediction, a = σ̂)
    v,       ///< x̂_0 = o·a + x/b                (v-prediction, a = −σ/√(σ²+1), b = σ² + 1)
    sample,  ///< x̂_0 = o
};

/// Per-sample coefficients of sigma_step.
template <class T>
struct sigma_step_coefficients {
    sigma_x0_form form = sigma_x0_form::epsilon;
    T a = 0, b = 1;    ///< see sigma_x0_form
    T s = 1;           ///< the derivative's divisor: d = (x − x̂_0)/s
    T dt = 0;          ///< x_next = base + d·dt
    bool average = false; ///< Heun's corrector: d = (d_prev + d)/2
    T sigma_up = 0;    ///< noise scale (Euler ancestral); 0 = none
    bool clip = false; ///< clamp x̂_0 to [−clip_range, clip_range] (Heun's clip_sample)
    T clip_range = 1;
};

/// How convert_output forms its result y from the network output o and x.
enum class output_form {
    identity,     ///< y = o
    x_minus_bo_c, ///< y = (x − b·o)/c
    ax_minus_bo,  ///< y = a·x − b·o
    ao_plus_bx,   ///< y = a·o + b·x
};

/// Per-sample coefficients of convert_output.
template <class T>
struct output_coefficients {
    output_form form = output_form::identity;
    T a = 0, b = 0, c = 1;
};

namespace detail {

template <class V, class T>
DDPM_FORCEINLINE V splat(T v) noexcept {
    return V(v);
}

template <sigma_x0_form F, class V>
DDPM_FORCEINLINE V sigma_x0(V o, V x, V a, V b) noexcept {
    if constexpr (F == sigma_x0_form::epsilon) return x - a * o;
    else if constexpr (F == sigma_x0_form::v) return o * a + x / b;
    else return o;
}

template <output_form F, class V>
DDPM_FORCEINLINE V convert_element(V o, V x, V a, V b, V c) noexcept {
    if constexpr (F == output_form::identity) return o;
    else if constexpr (F == output_form::x_minus_bo_c) return (x - b * o) / c;
    else if constexpr (F == output_form::ax_minus_bo) return a * x - b * o;
    else return a * o + b * x;
}

template <class V>
DDPM_FORCEINLINE V clamp_v(V v, V lo, V hi) noexcept {
#if DDPM_HAS_XSIMD
    if constexpr (!std::is_arithmetic_v<V>) return xsimd::min(xsimd::max(v, lo), hi);
    else
#endif
        return scalar::clamp(v, lo, hi);
}

/// Loads n_simd-wide values (or one scalar) at p.
template <class V, class T>
DDPM_FORCEINLINE V load_v(const T* p) noexcept {
    if constexpr (std::is_same_v<V, T>) return *p;
#if DDPM_HAS_XSIMD
    else return V::load_unaligned(p);
#endif
}
template <class V, class T>
DDPM_FORCEINLINE void store_v(T* p, V v) noexcept {
    if constexpr (std::is_same_v<V, T>) *p = v;
#if DDPM_HAS_XSIMD
    else v.store_unaligned(p);
#endif
}

/// Runs body.template operator()<V>(i) over [0, n): with backend::simd and
/// xsimd, a scalar head until `out` (the output the body writes) reaches the
/// alignment of a SIMD register (fused.hpp's peel_to; when Peel, see compile_time_peels), batches of the SIMD
/// width, then a scalar tail.
template <backend Bk, class T, class Arch, bool Peel, class Body>
DDPM_FORCEINLINE void elementwise(std::size_t n, const T* out, Body&& body) noexcept {
    std::size_t i = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd) {
        using batch = xsimd::batch<T, Arch>;
        for (const std::size_t head = Peel ? peel_to<sizeof(batch)>(out, n) : 0; i < head; ++i) body.template operator()<T>(i);
        for (; i + batch::size <= n; i += batch::size) body.template operator()<batch>(i);
    }
#else
    (void)out;
#endif
    for (; i < n; ++i) body.template operator()<T>(i);
}

template <backend Bk, class T, std::size_t K, class Arch = default_simd_arch, bool Peel = true>
void combine_range(const std::array<const T*, K>& in, const T* z, T* out, std::size_t n,
                   const combine_coefficients<T, K>& c) noexcept {
    const bool noisy = z != nullptr && c.sigma != T(0);
    elementwise<Bk, T, Arch, Peel>(n, out, [&]<class V>(std::size_t i) {
        V acc = splat<V>(c.c[0]) * load_v<V>(in[0] + i);
        for (std::size_t k = 1; k < K; ++k) acc = acc + splat<V>(c.c[k]) * load_v<V>(in[k] + i);
        if (noisy) acc = acc + splat<V>(c.sigma) * load_v<V>(z + i);
        store_v(out + i, acc);
    });
}

template <backend Bk, sigma_x0_form F, class T, class Arch = default_simd_arch, bool Peel = true>
void sigma_step_range(const T* o, const T* x, const T* base, const T* d_prev, const T* z, T* next, T* x0_out,
                      T* d_out, std::size_t n, const sigma_step_coefficients<T>& c) noexcept {
    const bool noisy = z != nullptr && c.sigma_up != T(0);
    elementwise<Bk, T, Arch, Peel>(n, next, [&]<class V>(std::size_t i) {
        const V xv = load_v<V>(x + i);
        V x0 = sigma_x0<F>(load_v<V>(o + i), xv, splat<V>(c.a), splat<V>(c.b));
        if (c.clip) x0 = clamp_v(x0, splat<V>(-c.clip_range), splat<V>(c.clip_range));
        if (x0_out) store_v(x0_out + i, x0);
        V d = (xv - x0) / splat<V>(c.s);
        if (c.average) d = (load_v<V>(d_prev + i) + d) / splat<V>(T(2));
        if (d_out) store_v(d_out + i, d);
        V r = load_v<V>(base + i) + d * splat<V>(c.dt);
        if (noisy) r = r + load_v<V>(z + i) * splat<V>(c.sigma_up);
        store_v(next + i, r);
    });
}

template <backend Bk, output_form F, class T, class Arch = default_simd_arch, bool Peel = true>
void convert_range(const T* o, const T* x, T* y, std::size_t n, const output_coefficients<T>& c) noexcept {
    elementwise<Bk, T, Arch, Peel>(n, y, [&]<class V>(std::size_t i) {
        store_v(y + i, convert_element<F>(load_v<V>(o + i), load_v<V>(x + i), splat<V>(c.a), splat<V>(c.b), splat<V>(c.c)));
    });
}

/// The SIMD solver kernels of one xsimd arch, as registered for run-time
/// dispatch (ddpm/dispatch/isa.hpp); combine for K = 1..4 inputs.
template <class T>
struct solver_table {
    template <std::size_t K>
    using combine_fn = void (*)(const std::array<const T*, K>&, const T*, T*, std::size_t,
                                const combine_coefficients<T, K>&) noexcept;
    using sigma_fn = void (*)(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, std::size_t,
                              const sigma_step_coefficients<T>&) noexcept;
    using convert_fn = void (*)(const T*, const T*, T*, std::size_t, const output_coefficients<T>&) noexcept;
    combine_fn<1> combine1 = nullptr;
    combine_fn<2> combine2 = nullptr;
    combine_fn<3> combine3 = nullptr;
    combine_fn<4> combine4 = nullptr;
    sigma_fn sigma[3] = {};     ///< [sigma_x0_form]
    convert_fn convert[4] = {}; ///< [output_form]

    template <std::size_t K>
    [[nodiscard]] combine_fn<K> combine() const noexcept {
        if constexpr (K == 1) return combine1;
        else if constexpr (K == 2) return combine2;
        else if constexpr (K == 3) return combine3;
        else if constexpr (K == 4) return combine4;
        else return nullptr;
    }
};

/// The solver_table of `Arch` (instantiated by the arch files only).
template <class T, class Arch>
constexpr solver_table<T> make_solver_table() noexcept {
    solver_table<T> t;
    t.combine1 = &combine_range<backend::simd, T, 1, Arch>;
    t.combine2 = &combine_range<backend::simd, T, 2, Arch>;
    t.combine3 = &combine_range<backend::simd, T, 3, Arch>;
    t.combine4 = &combine_range<backend::simd, T, 4, Arch>;
    t.sigma[0] = &sigma_step_range<backend::simd, sigma_x0_form::epsilon, T, Arch>;
    t.sigma[1] = &sigma_step_range<backend::simd, sigma_x0_form::v, T, Arch>;
    t.sigma[2] = &sigma_step_range<backend::simd, sigma_x0_form::sample, T, Arch>;
    t.convert[0] = &convert_range<backend::simd, output_form::identity, T, Arch>;
    t.convert[1] = &convert_range<backend::simd, output_form::x_minus_bo_c, T, Arch>;
    t.convert[2] = &convert_range<backend::simd, output_form::ax_minus_bo, T, Arch>;
    t.convert[3] = &convert_range<backend::simd, output_form::ao_plus_bx, T, Arch>;
    return t;
}

/// The chunk's noise: drawn from the counter stream into `buf`, or a pointer
/// into the caller's buffer, or none.
template <class T>
DDPM_FORCEINLINE const T* chunk_noise(const step_noise<T>& noise, bool wanted, std::size_t row, std::size_t dim,
                                      std::size_t first, std::size_t n, T* buf, backend bk) noexcept {
    if (!wanted) return nullptr;
    if (noise.source == step_noise<T>::kind::stream) {
        draw<T>(noise.stream, row, dim, first, n, buf, bk);
        return buf;
    }
    if (noise.source == step_noise<T>::kind::buffer) return noise.buffer.data() + row * dim + first;
    return nullptr;
}

template <class T, std::size_t K>
[[nodiscard]] bool same_row(const combine_coefficients<T, K>& a, const combine_coefficients<T, K>& b) noexcept {
    static_assert(sizeof(combine_coefficients<T, K>) == sizeof(std::array<T, K + 1>),
                  "compare every field of combine_coefficients");
    for (std::size_t k = 0; k < K; ++k)
        if (!same_bits(a.c[k], b.c[k])) return false;
    return same_bits(a.sigma, b.sigma);
}

template <class T>
[[nodiscard]] bool same_row(const sigma_step_coefficients<T>& a, const sigma_step_coefficients<T>& b) noexcept {
    struct mirror { sigma_x0_form f; T a, b, s, dt; bool avg; T up; bool clip; T range; };
    static_assert(sizeof(sigma_step_coefficients<T>) == sizeof(mirror), "compare every field of sigma_step_coefficients");
    return a.form == b.form && same_bits(a.a, b.a) && same_bits(a.b, b.b) && same_bits(a.s, b.s) &&
           same_bits(a.dt, b.dt) && a.average == b.average && same_bits(a.sigma_up, b.sigma_up) && a.clip == b.clip &&
           same_bits(a.clip_range, b.clip_range);
}

} // namespace detail

/// x_next = Σ_k c_k[b]·in_k + σ[b]·z for B samples (B = coefficients.size(),
/// each input and x_next B·D elements). The sum runs left to right in T, as
/// written. `x_next` may alias any input; the noise (a counter stream or a
/// B·D buffer) is read only for samples with σ ≠ 0.
/// @throws ddpm::invalid_argument on a size mismatch (nothing is written).
template <class T, std::size_t K>
void combine(std::span<const combine_coefficients<T, K>> coefficients, const std::array<std::span<const T>, K>& inputs,
             const step_noise<T>& noise, std::span<T> x_next, const execution& exec = {}, backend bk = best_backend) {
    static_assert(K >= 1, "ddpm::kernels::combine: at least one input");
    constexpr std::string_view where = "ddpm::kernels::combine";
    const std::size_t rows = coefficients.size();
    const std::size_t dim = detail::check_rows(where, rows, x_next.size());
    for (std::size_t k = 0; k < K; ++k)
        detail::check_equal(where, "inputs[" + std::to_string(k) + "]", inputs[k].size(), x_next.size(),
                            "elements (B x D)");
    detail::check_noise(where, noise, x_next.size());
    const auto* table = detail::dispatched<detail::solver_table<T>>(where, bk);
    const auto dispatched = table ? table->template combine<K>() : nullptr;
    const auto wants_noise = [&](std::size_t r) { return coefficients[r].sigma != T(0); };
    detail::for_each_tile(rows, dim, exec, [&](std::size_t row, std::size_t tile_rows, std::size_t first, std::size_t n) {
        alignas(64) T z[detail::chunk_elements];
        detail::tile_noise(noise, wants_noise, row, tile_rows, dim, first, n, z, bk);
        // Consecutive rows with the same coefficients are one range call.
        detail::for_each_run(
            row, tile_rows,
            [&](std::size_t r, std::size_t q) {
                return detail::rows_may_share_calls<T>(bk, dispatched != nullptr, n) &&
                       detail::same_row(coefficients[r], coefficients[q]);
            },
            [&](std::size_t r, std::size_t k) {
                const auto& c = coefficients[r];
                const std::size_t off = r * dim + first, len = k * n;
                const T* zp = detail::row_noise(noise, wants_noise(r), row, r, dim, first, n, z);
                std::array<const T*, K> in{};
                for (std::size_t j = 0; j < K; ++j) in[j] = inputs[j].data() + off;
                if (dispatched) dispatched(in, zp, x_next.data() + off, len, c);
                else if (bk == backend::simd) detail::combine_range<backend::simd, T, K, detail::default_simd_arch, detail::compile_time_peels>(
                    in, zp, x_next.data() + off, len, c);
                else detail::combine_range<backend::scalar, T, K>(in, zp, x_next.data() + off, len, c);
            });
    });
}

/// The buffers of sigma_step. Every span holds B·D values except
/// model_output (B·channels·D: only the first D of each sample are read).
template <class T>
struct sigma_step_buffers {
    std::span<const T> model_output; ///< o
    std::span<const T> x;            ///< the state the network saw
    std::span<const T> base;         ///< what d·dt is added to (x, or Heun's saved sample); empty = x
    std::span<const T> d_prev;       ///< Heun's first derivative (needed where coefficients average)
    std::span<T> x_next;             ///< may alias x or base
    std::span<T> x0;                 ///< x̂_0 out, or empty
    std::span<T> derivative;         ///< d out (Heun's first stage), or empty
};

/// The Euler-family step for B samples (B = coefficients.size()), per element
/// in T exactly as diffusers' Euler / EulerAncestral / Heun step() orders it:
///   x̂_0 = f(o, x) [clamped];  d = (x − x̂_0)/s;  [d = (d_prev + d)/2];
///   x_next = base + d·dt [+ z·σ_up].
/// @throws ddpm::invalid_argument on a size mismatch (nothing is written).
template <class T>
void sigma_step(std::span<const sigma_step_coefficients<T>> coefficients, const sigma_step_buffers<T>& buf,
                const step_noise<T>& noise, const execution& exec = {}, backend bk = best_backend,
                std::size_t channels = 1) {
    constexpr std::string_view where = "ddpm::kernels::sigma_step";
    const std::size_t rows = coefficients.size();
    const std::size_t dim = detail::check_rows(where, rows, buf.x.size());
    const std::size_t total = buf.x.size();
    if (channels != 1 && channels != 2) ddpm::detail::throw_invalid(where, "channels", channels, "1 or 2");
    detail::check_equal(where, "model_output", buf.model_output.size(), channels * total,
                        channels == 1 ? "elements (B x D)" : "elements (B x 2D)");
    if (!buf.base.empty()) detail::check_equal(where, "base", buf.base.size(), total, "elements (B x D, or none)");
    bool averages = false;
    for (const auto& c : coefficients) averages = averages || c.average;
    if (averages) detail::check_equal(where, "d_prev", buf.d_prev.size(), total, "elements (B x D)");
    detail::check_equal(where, "x_next", buf.x_next.size(), total, "elements (B x D)");
    if (!buf.x0.empty()) detail::check_equal(where, "x0", buf.x0.size(), total, "elements (B x D, or none)");
    if (!buf.derivative.empty())
        detail::check_equal(where, "derivative", buf.derivative.size(), total, "elements (B x D, or none)");
    detail::check_noise(where, noise, total);
    const auto* table = detail::dispatched<detail::solver_table<T>>(where, bk);
    const auto wants_noise = [&](std::size_t r) { return coefficients[r].sigma_up != T(0); };
    detail::for_each_tile(rows, dim, exec, [&](std::size_t row, std::size_t tile_rows, std::size_t first, std::size_t n) {
        alignas(64) T z[detail::chunk_elements];
        detail::tile_noise(noise, wants_noise, row, tile_rows, dim, first, n, z, bk);
        // Rows with the same coefficients are one range call (the output's
        // channels interleave per row when channels = 2: then row by row).
        detail::for_each_run(
            row, tile_rows,
            [&](std::size_t r, std::size_t q) {
                return detail::rows_may_share_calls<T>(bk, table != nullptr, n) && channels == 1 &&
                       detail::same_row(coefficients[r], coefficients[q]);
            },
            [&](std::size_t r, std::size_t k) {
                const auto& c = coefficients[r];
                const std::size_t off = r * dim + first, len = k * n;
                const T* zp = detail::row_noise(noise, wants_noise(r), row, r, dim, first, n, z);
                const T* o = buf.model_output.data() + r * channels * dim + first;
                const T* x = buf.x.data() + off;
                const T* base = buf.base.empty() ? x : buf.base.data() + off;
                const T* dp = buf.d_prev.empty() ? nullptr : buf.d_prev.data() + off;
                T* next = buf.x_next.data() + off;
                T* x0 = buf.x0.empty() ? nullptr : buf.x0.data() + off;
                T* d = buf.derivative.empty() ? nullptr : buf.derivative.data() + off;
                auto run = [&]<sigma_x0_form F>() {
                    if (table) table->sigma[static_cast<int>(F)](o, x, base, dp, zp, next, x0, d, len, c);
                    else if (bk == backend::simd)
                        detail::sigma_step_range<backend::simd, F, T, detail::default_simd_arch, detail::compile_time_peels>(
                            o, x, base, dp, zp, next, x0, d, len, c);
                    else detail::sigma_step_range<backend::scalar, F>(o, x, base, dp, zp, next, x0, d, len, c);
                };
                switch (c.form) {
                case sigma_x0_form::epsilon: run.template operator()<sigma_x0_form::epsilon>(); break;
                case sigma_x0_form::v: run.template operator()<sigma_x0_form::v>(); break;
                case sigma_x0_form::sample: run.template operator()<sigma_x0_form::sample>(); break;
                }
            });
    });
}

/// y = f(o, x) per output_form for B samples (B = coefficients.size()):
/// the network output converted to x̂_0 or ε̂. model_output has channels·D
/// values per sample (only the first D are read); `y` may alias `x`.
/// @throws ddpm::invalid_argument on a size mismatch (nothing is written).
template <class T>
void convert_output(std::span<const output_coefficients<T>> coefficients, std::span<const T> model_output,
                    std::span<const T> x, std::span<T> y, const execution& exec = {}, backend bk = best_backend,
                    std::size_t channels = 1) {
    constexpr std::string_view where = "ddpm::kernels::convert_output";
    const std::size_t rows = coefficients.size();
    const std::size_t dim = detail::check_rows(where, rows, x.size());
    if (channels != 1 && channels != 2) ddpm::detail::throw_invalid(where, "channels", channels, "1 or 2");
    detail::check_equal(where, "model_output", model_output.size(), channels * x.size(),
                        channels == 1 ? "elements (B x D)" : "elements (B x 2D)");
    detail::check_equal(where, "y", y.size(), x.size(), "elements (B x D)");
    const auto* table = detail::dispatched<detail::solver_table<T>>(where, bk);
    detail::for_each_chunk(rows, dim, exec, [&](std::size_t row, std::size_t first, std::size_t n) {
        const auto& c = coefficients[row];
        const std::size_t off = row * dim + first;
        const T* o = model_output.data() + row * channels * dim + first;
        auto run = [&]<output_form F>() {
            if (table) table->convert[static_cast<int>(F)](o, x.data() + off, y.data() + off, n, c);
            else if (bk == backend::simd) detail::convert_range<backend::simd, F, T, detail::default_simd_arch, detail::compile_time_peels>(
                o, x.data() + off, y.data() + off, n, c);
            else detail::convert_range<backend::scalar, F>(o, x.data() + off, y.data() + off, n, c);
        };
        switch (c.form) {
        case output_form::identity: run.template operator()<output_form::identity>(); break;
        case output_form::x_minus_bo_c: run.template operator()<output_form::x_minus_bo_c>(); break;
        case output_form::ax_minus_bo: run.template operator()<output_form::ax_minus_bo>(); break;
        case output_form::ao_plus_bx: run.template operator()<output_form::ao_plus_bx>(); break;
        }
    });
}

} // namespace ddpm::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
