// ddpm/kernels/fused.hpp — the hot loops, fused: forward noising, the DDPM and
// DDIM reverse steps, and the reductions training and likelihood need.
//
// Each kernel is written once over xsimd::batch<T, Arch> (when xsimd is
// available) with the scalar functions of kernels/scalar.hpp as its tail and
// its reference; `backend::scalar` runs the reference alone. Work is cut into
// tasks of whole 64-element noise groups, so results do not depend on the
// number of threads, and the noise for element i of sample b (of D elements)
// at step s under seed k is random::normal_at_v2(k, first_sample + b, s, i, D)
// on every path (random::normal_at in stream v1, see noise_stream).
//
// Batches are B samples × D elements, row-major. Per-sample coefficients come
// from core/coefficients.hpp (DDPM) or the DDIM sampler. These entry points
// validate sizes once per call; per-element work never checks anything.
#pragma once

#include "ddpm/config.hpp"
#include "ddpm/dispatch/isa.hpp"
#include "ddpm/error.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/kernels/simd_support.hpp"
#include "ddpm/parallel.hpp"
#include "ddpm/random/counter_noise.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#if DDPM_HAS_XSIMD
#include <xsimd/xsimd.hpp>
#endif

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 false positive (PR 105593): the AVX-512 intrinsics' _mm512_undefined_*
// trip -Wmaybe-uninitialized / -Wuninitialized once inlined at -O2/-O3.
// Scoped to this header.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace ddpm::kernels {

using scalar::ddim_coefficients;
using scalar::eps_form;
using scalar::reverse_coefficients;
using scalar::x0_form;

/// The counter-based noise a kernel draws: element i of row b (D elements a
/// row) gets random::normal_at_v2(seed, first_sample + b, step, i, D) in the
/// default stream v2, or random::normal_at(seed, first_sample + b, step, i)
/// with version = random::noise_version::v1 (the stream before v2; the two
/// agree when D mod 64 is 0 or 1). `{seed, step, first_sample}` gives v2;
/// `{seed, step, first_sample, random::noise_version::v1}` gives v1.
struct noise_stream {
    std::uint64_t seed = 0;
    std::uint32_t step = 0;
    std::uint32_t first_sample = 0;
    random::noise_version version = random::noise_version::v2;
};

/// Which implementation runs: the portable scalar reference, or the xsimd one:
/// at the best instruction set the CPU has among those linked for run-time
/// dispatch (ddpm/dispatch/isa.hpp), else at xsimd::default_arch, chosen by
/// the compiler flags. Every SIMD path gives the same bits.
enum class backend { scalar, simd };
inline constexpr backend best_backend = DDPM_HAS_XSIMD ? backend::simd : backend::scalar;

/// Clipping of x̂_0 inside a step: x̂_0 ← clamp(x̂_0, −bound, bound) / divisor.
/// Static clipping to [−r, r] is {true, r, 1}; dynamic thresholding with
/// per-sample s is {true, s, s} (torch divides, so ddpm divides too).
template <class T>
struct x0_clip {
    bool enabled = false;
    T bound = 1;
    T divisor = 1;
};

/// How σ of the DDPM step is found for each element.
enum class step_variance {
    fixed,         ///< σ = coef.noise_scale
    learned_range, ///< log σ² = frac·max_log + (1 − frac)·min_log, frac = (v + 1)/2
    learned_log,   ///< the variance channel is log σ²
    learned_raw,   ///< the variance channel is σ² (diffusers' "learned")
};

/// Where the noise of a step comes from.
template <class T>
struct step_noise {
    enum class kind { none, stream, buffer };
    kind source = kind::none;
    noise_stream stream{};
    std::span<const T> buffer{}; ///< B·D caller noise when source == buffer

    [[nodiscard]] static step_noise none() { return {}; }
    [[nodiscard]] static step_noise from(noise_stream s) { return {kind::stream, s, {}}; }
    [[nodiscard]] static step_noise from(std::span<const T> z) { return {kind::buffer, {}, z}; }
};

namespace detail {

inline constexpr std::size_t chunk_elements = 512;   // noise drawn per inner chunk (multiple of 64)
inline constexpr std::size_t task_elements = 4096;   // work per thread task (multiple of chunk_elements)

/// Below this many elements per call (B·D) the batch loops run on the calling
/// thread whatever `execution` asks: a fork-join of the pool costs about as
/// much as the work (measured with benchmarks/bench_small_d's threads_sweep on
/// this 2-core machine, docs/benchmarks.md: at 12,288 elements two threads
/// broke even with one, below they were slower). Results never depend on it.
inline constexpr std::size_t min_parallel_elements = 16384;

/// The tasks of a B × D batch. Rows of fewer than task_elements are grouped
/// into tasks of about task_elements (whole tiles); longer rows are split into
/// task_elements pieces. Within a task, short rows (D ≤ chunk_elements / 2)
/// are visited in tiles of up to chunk_elements / D whole rows, longer ones in
/// chunks of at most chunk_elements of one row. Boundaries depend only on B
/// and D, never on the thread count.
struct task_grid {
    std::size_t batch = 0, dim = 0, rows_per_tile = 1, rows_per_task = 1, pieces_per_row = 1, row_groups = 0;

    task_grid(std::size_t b, std::size_t d) : batch(b), dim(d) {
        if (d >= task_elements) {
            pieces_per_row = (d + task_elements - 1) / task_elements;
        } else {
            const std::size_t dd = std::max<std::size_t>(d, 1);
            rows_per_tile = dd <= chunk_elements / 2 ? chunk_elements / dd : 1;
            rows_per_task = std::max<std::size_t>(1, task_elements / (rows_per_tile * dd)) * rows_per_tile;
        }
        row_groups = (b + rows_per_task - 1) / rows_per_task;
    }
    [[nodiscard]] std::size_t tasks() const noexcept { return row_groups * pieces_per_row; }

    /// Calls f(row, rows, first, count) for the tiles of task k: `rows` whole
    /// rows from `row` (then first = 0, count = dim), or a chunk of one row.
    template <class F>
    void for_task(std::size_t k, F&& f) const {
        const std::size_t group = k / pieces_per_row, piece = k % pieces_per_row;
        const std::size_t r0 = group * rows_per_task, r1 = std::min(batch, r0 + rows_per_task);
        if (rows_per_tile > 1) {
            for (std::size_t r = r0; r < r1; r += rows_per_tile) f(r, std::min(rows_per_tile, r1 - r), std::size_t{0}, dim);
            return;
        }
        const std::size_t first = piece * task_elements;
        const std::size_t count = pieces_per_row == 1 ? dim : std::min(task_elements, dim - first);
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t at = first; at < first + count; at += chunk_elements)
                f(r, std::size_t{1}, at, std::min(chunk_elements, first + count - at));
    }
};

/// The threads a batch loop over `elements` elements uses: exec, or the
/// calling thread alone below min_parallel_elements.
[[nodiscard]] inline execution batch_execution(const execution& exec, std::size_t elements) noexcept {
    return elements < min_parallel_elements ? execution{1} : exec;
}

/// Runs f(row, rows, first, count) over the tiles of a B × D batch (see
/// task_grid; rows·count ≤ chunk_elements), on the threads `exec` allows.
template <class F>
void for_each_tile(std::size_t batch, std::size_t dim, const execution& exec, F&& f) {
    if (batch == 0 || dim == 0) return;
    const task_grid grid(batch, dim);
    parallel_for(batch_execution(exec, batch * dim), grid.tasks(), [&](std::size_t k) { grid.for_task(k, f); });
}

/// Runs f(row, first, count) over a B × D batch in chunks of at most
/// chunk_elements of one row (the tiles of for_each_tile, row by row).
template <class F>
void for_each_chunk(std::size_t batch, std::size_t dim, const execution& exec, F&& f) {
    for_each_tile(batch, dim, exec, [&](std::size_t row, std::size_t rows, std::size_t first, std::size_t count) {
        for (std::size_t r = row; r < row + rows; ++r) f(r, first, count);
    });
}

/// Calls run(r, k) for the maximal runs [r, r + k) of rows in [row, row + rows)
/// that `same(r, r')` says may share one range-kernel call.
template <class Same, class Run>
DDPM_FORCEINLINE void for_each_run(std::size_t row, std::size_t rows, Same&& same, Run&& run) {
    const std::size_t end = row + rows;
    for (std::size_t r = row; r < end;) {
        std::size_t k = 1;
        while (r + k < end && same(r, r + k)) ++k;
        run(r, k);
        r += k;
    }
}

/// Whether the compile-time SIMD code may have multiply-adds fused by the
/// compiler (an FMA unit and GCC's default -ffp-contract=fast): then its SIMD
/// body and its scalar tail may round differently, and where an element lands
/// (body or tail) depends on the range a call covers.
inline constexpr bool compile_time_may_fuse =
#if defined(__FMA__) || defined(__FMA4__) || defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    true;
#else
    false;
#endif

/// Whether consecutive rows of n elements with equal parameters may share one
/// range call and give the bits of one call per row: always for the scalar
/// reference, the dispatched kernels (compiled with -ffp-contract=off) and
/// compile-time SIMD code the compiler cannot fuse. Compile-time code it may
/// fuse (-march=native builds) runs one call per row: which elements its SIMD
/// body and its scalar tail get depends on the range of the call, and the two
/// may round differently (checked: merging changed last bits there).
template <class T>
[[nodiscard]] constexpr bool rows_may_share_calls(backend bk, bool dispatched_table, std::size_t) noexcept {
    return bk == backend::scalar || dispatched_table || !compile_time_may_fuse;
}

/// Bitwise equality of two values of one trivially copyable type (so 0 and
/// −0 differ and a NaN equals itself: equal bits, equal computation).
template <class V>
[[nodiscard]] DDPM_FORCEINLINE bool same_bits(const V& a, const V& b) noexcept {
    static_assert(std::is_trivially_copyable_v<V>);
    return std::memcmp(&a, &b, sizeof(V)) == 0;
}

/// Whether elements [first, first + n) of a row of `dim` elements reach the
/// compact last partial group of stream v2 (else stream v1 gives their values:
/// below the last whole group, or dim mod 64 is 0 or 1, the two agree).
[[nodiscard]] DDPM_FORCEINLINE bool draws_v2_tail(const noise_stream& ns, std::size_t dim, std::size_t first,
                                                  std::size_t n) noexcept {
    return ns.version == random::noise_version::v2 && dim % random::noise_group_elements > 1 &&
           first + n > random::whole_group_elements(dim);
}

/// Draws the normals of row `row` (of `dim` elements), elements
/// [first, first + n), as T, in stream ns.version.
template <class T>
DDPM_FORCEINLINE void draw(const noise_stream& ns, std::size_t row, std::size_t dim, std::size_t first, std::size_t n,
                           T* out, backend bk) noexcept {
    alignas(64) float tmp[chunk_elements];
    float* dst = std::is_same_v<T, float> ? reinterpret_cast<float*>(out) : tmp;
    const std::span<float> span(dst, n);
    const auto sample = static_cast<std::uint32_t>(ns.first_sample + row);
    // A SIMD fill computes whole 64-element groups: below one group the scalar
    // path, which computes only the blocks it needs, is faster.
    if (draws_v2_tail(ns, dim, first, n)) {
        if (bk == backend::scalar) random::detail::fill_rows_v2_scalar(dst, 1, n, dim, ns.seed, sample, ns.step, first);
        else random::detail::fill_rows_v2(dst, 1, n, dim, ns.seed, sample, ns.step, first);
    } else if (bk == backend::scalar) {
        random::fill_normal_scalar(span, ns.seed, sample, ns.step, first);
    } else if (n < random::noise_group_elements) {
#if DDPM_HAS_XSIMD
        if (const auto* t = dispatch::table_nothrow<random::detail::fill_table>())
            t->normal_small(span, ns.seed, sample, ns.step, first);
        else
#endif
            random::fill_normal_scalar(span, ns.seed, sample, ns.step, first);
    } else {
        random::fill_normal(span, ns.seed, sample, ns.step, first);
    }
    if constexpr (!std::is_same_v<T, float>)
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(tmp[i]);
}

/// Draws the normals of a tile (rows × count elements from element `first`
/// of rows row .. row + rows − 1 of `dim` elements each; rows·count ≤
/// chunk_elements) into out, row-major, as T. Several rows at once are drawn
/// across samples (random::fill_normal_rows); the values are the per-row ones
/// bit for bit.
template <class T>
DDPM_FORCEINLINE void draw_tile(const noise_stream& ns, std::size_t row, std::size_t rows, std::size_t dim,
                                std::size_t first, std::size_t count, T* out, backend bk) noexcept {
    if (rows == 1) {
        draw<T>(ns, row, dim, first, count, out, bk);
        return;
    }
    alignas(64) float tmp[chunk_elements];
    float* dst = std::is_same_v<T, float> ? reinterpret_cast<float*>(out) : tmp;
    const auto sample = static_cast<std::uint32_t>(ns.first_sample + row);
    if (draws_v2_tail(ns, dim, first, count)) {
        if (bk == backend::scalar)
            random::detail::fill_rows_v2_scalar(dst, rows, count, dim, ns.seed, sample, ns.step, first);
        else random::detail::fill_rows_v2(dst, rows, count, dim, ns.seed, sample, ns.step, first);
    } else if (bk == backend::scalar) {
        random::detail::fill_rows_scalar(dst, rows, count, ns.seed, sample, ns.step, first);
    } else {
        random::detail::fill_rows(dst, rows, count, ns.seed, sample, ns.step, first);
    }
    if constexpr (!std::is_same_v<T, float>)
        for (std::size_t i = 0; i < rows * count; ++i) out[i] = static_cast<T>(tmp[i]);
}

/// The counter-stream noise of a tile into `buf` when any of its rows wants
/// it (wants(r)); buffer noise and none need nothing here.
template <class T, class Wants>
DDPM_FORCEINLINE void tile_noise(const step_noise<T>& noise, Wants&& wants, std::size_t row, std::size_t rows,
                                 std::size_t dim, std::size_t first, std::size_t n, T* buf, backend bk) noexcept {
    if (noise.source != step_noise<T>::kind::stream) return;
    for (std::size_t r = row; r < row + rows; ++r)
        if (wants(r)) {
            draw_tile<T>(noise.stream, row, rows, dim, first, n, buf, bk);
            return;
        }
}

/// The noise of row r inside a tile that starts at `row`: the tile buffer
/// (tile_noise), the caller's buffer, or none.
template <class T>
DDPM_FORCEINLINE const T* row_noise(const step_noise<T>& noise, bool wanted, std::size_t row, std::size_t r,
                                    std::size_t dim, std::size_t first, std::size_t n, const T* buf) noexcept {
    if (!wanted) return nullptr;
    if (noise.source == step_noise<T>::kind::stream) return buf + (r - row) * n;
    if (noise.source == step_noise<T>::kind::buffer) return noise.buffer.data() + r * dim + first;
    return nullptr;
}

template <class T>
DDPM_HOST_DEVICE DDPM_FORCEINLINE T clip_x0(T x0, const x0_clip<T>& c) noexcept {
    return scalar::clamp(x0, -c.bound, c.bound) / c.divisor;
}

// ---------------------------------------------------------------------------
// Range kernels: one row, n contiguous elements. `Bk` picks SIMD or scalar;
// the SIMD versions run the scalar element functions on a head (until the
// output they write reaches the alignment of a SIMD register, so that no
// store of the body splits a cache line) and on the tail. The scalar and
// SIMD paths compute the same formula in the same order, so the result does
// not depend on where the head ends; noise is addressed by element index.

/// Elements to run scalar before `out` reaches an `Align`-byte boundary (at
/// most n; 0 when `out` is aligned, or not even aligned to T).
template <std::size_t Align, class T>
DDPM_FORCEINLINE std::size_t peel_to(const T* out, std::size_t n) noexcept {
    const auto mis = static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(out) % Align);
    if (mis == 0 || mis % sizeof(T) != 0) return 0;
    return std::min<std::size_t>((Align - mis) / sizeof(T), n);
}

/// Whether the range kernels peel when called from the compile-time SIMD
/// path (the `Peel` parameter below). Not where the compiler may fuse
/// multiply-adds (-march=native builds): there the scalar head may round
/// differently from the SIMD body, so where the head ends — which depends on
/// the buffer's address — would change the last bits, and a sample's values
/// would depend on where its buffer lies (a batch split across buffers or
/// processes would differ). The dispatched kernels (-ffp-contract=off) always
/// peel: their scalar and SIMD paths give the same bits.
inline constexpr bool compile_time_peels = !compile_time_may_fuse;

template <backend Bk, class T, class Arch = default_simd_arch, bool Peel = true>
void forward_range(const T* x0, const T* z, T* xt, std::size_t n, T a, T b) noexcept {
    std::size_t i = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd) {
        using batch = xsimd::batch<T, Arch>;
        const batch va(a), vb(b);
        for (const std::size_t head = Peel ? peel_to<sizeof(batch)>(xt, n) : 0; i < head; ++i)
            xt[i] = scalar::q_sample(x0[i], z[i], a, b);
        for (; i + batch::size <= n; i += batch::size) {
            const batch x = batch::load_unaligned(x0 + i);
            const batch e = batch::load_unaligned(z + i);
            (va * x + vb * e).store_unaligned(xt + i);
        }
    }
#endif
    for (; i < n; ++i) xt[i] = scalar::q_sample(x0[i], z[i], a, b);
}

/// draw() at a fixed arch, for the range kernels: they are instantiated in the
/// run-time dispatch files (ddpm/dispatch/), where a call into the dispatch
/// machinery (draw → dispatch::table_nothrow) would be an instantiation
/// compiled with another compiled_isa than the caller's — an ODR violation.
/// The same bits as draw (a SIMD fill computes whole 64-element groups).
template <backend Bk, class Arch, class T>
DDPM_FORCEINLINE void draw_at(const noise_stream& ns, std::size_t row, std::size_t dim, std::size_t first,
                              std::size_t n, T* out) noexcept {
    alignas(64) float tmp[chunk_elements];
    float* dst = std::is_same_v<T, float> ? reinterpret_cast<float*>(out) : tmp;
    const std::span<float> span(dst, n);
    const auto sample = static_cast<std::uint32_t>(ns.first_sample + row);
    if (draws_v2_tail(ns, dim, first, n)) {
#if DDPM_HAS_XSIMD
        if constexpr (Bk == backend::simd)
            random::detail::fill_rows_v2_simd<Arch>(dst, 1, n, dim, ns.seed, sample, ns.step, first);
        else
#endif
            random::detail::fill_rows_v2_scalar(dst, 1, n, dim, ns.seed, sample, ns.step, first);
    } else {
#if DDPM_HAS_XSIMD
        if constexpr (Bk == backend::simd) random::fill_normal_simd<Arch>(span, ns.seed, sample, ns.step, first);
        else
#endif
            random::fill_normal_scalar(span, ns.seed, sample, ns.step, first);
    }
    if constexpr (!std::is_same_v<T, float>)
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(tmp[i]);
}

/// Forward noising of one row range with counter noise, ε drawn and used in
/// one pass: for each whole 64-element noise group inside the range the
/// normals are made in registers (random::normal_batches), ε is stored once
/// and x_t = a·x_0 + b·ε computed from the same registers. The groups cut by
/// the range's ends (a row of `dim` elements: in stream v2 its partial last
/// group has the compact layout), double precision, and SIMD widths that do
/// not divide 16 take draw + forward_range. The same bits as draw + forward_range.
template <backend Bk, class T, class Arch = default_simd_arch, bool Peel = true>
void forward_stream_range(const noise_stream& ns, std::size_t row, std::size_t dim, std::size_t first, std::size_t n,
                          const T* x0, T* eps, T* xt, T a, T b) noexcept {
    std::size_t i = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd && std::is_same_v<T, float> &&
                  random::noise_group_blocks % xsimd::batch<float, Arch>::size == 0) {
        using batch = xsimd::batch<float, Arch>;
        constexpr std::size_t group = random::noise_group_elements, blocks = random::noise_group_blocks;
        const batch va(a), vb(b);
        const random::philox4x32_key key = random::noise_key(ns.seed);
        const auto sample = static_cast<std::uint32_t>(ns.first_sample + row);
        i = std::min(n, (group - first % group) % group); // up to the first whole group
        if (i > 0) {
            draw_at<Bk, Arch>(ns, row, dim, first, i, eps);
            forward_range<Bk, T, Arch, Peel>(x0, eps, xt, i, a, b);
        }
        for (; i + group <= n; i += group) {
            const std::uint64_t g = (first + i) / group;
            for (std::size_t h = 0; h < blocks; h += batch::size) {
                const random::noise_batches<Arch> nb = random::normal_batches<Arch>(key, sample, ns.step, g * blocks + h);
                for (std::size_t j = 0; j < 4; ++j) {
                    const std::size_t k = i + blocks * j + h; // word j of blocks h.. lands on 16 j + h
                    const batch x = batch::load_unaligned(x0 + k);
                    nb.v[j].store_unaligned(eps + k);
                    (va * x + vb * nb.v[j]).store_unaligned(xt + k);
                }
            }
        }
    }
#endif
    if (i < n) {
        draw_at<Bk, Arch>(ns, row, dim, first + i, n - i, eps + i);
        forward_range<Bk, T, Arch, Peel>(x0 + i, eps + i, xt + i, n - i, a, b);
    }
}

#if DDPM_HAS_XSIMD
template <x0_form Form, class B>
DDPM_FORCEINLINE B predict_x0_batch(const B& a, const B& b, const B& xt, const B& out) noexcept {
    if constexpr (Form == x0_form::multiply) return a * xt - b * out;
    else if constexpr (Form == x0_form::divide) return (xt - b * out) / a;
    else return out;
}

/// scalar::clamp on a batch, NaN included: the comparisons are false for NaN,
/// so it passes through as in the scalar reference (and torch.clamp). xsimd's
/// min/max would return the bound for a NaN lane instead.
template <class B>
DDPM_FORCEINLINE B clip_batch(const B& x0, const B& bound, const B& divisor) noexcept {
    const B lo = -bound;
    return xsimd::select(x0 < lo, lo, xsimd::select(x0 > bound, bound, x0)) / divisor;
}
#endif

/// σ of one element of the DDPM step.
template <step_variance V, class T>
DDPM_FORCEINLINE T element_sigma(const reverse_coefficients<T>& c, T v) noexcept {
    if constexpr (V == step_variance::fixed) {
        return c.noise_scale;
    } else if constexpr (V == step_variance::learned_range) {
        const T frac = (v + T(1)) / T(2);
        return std::exp(T(0.5) * (frac * c.max_log + (T(1) - frac) * c.min_log));
    } else if constexpr (V == step_variance::learned_log) {
        return std::exp(T(0.5) * v);
    } else {
        return std::sqrt(v);
    }
}

/// One row of the DDPM step (Algorithm 2, line 4, written as μ̃(x̂_0, x_t) + σ z):
/// x̂_0 from the output, clip, posterior mean, + σ z. `var` is the variance
/// channel (learned types), `z` null for no noise, `x0_out` null if unwanted.
template <backend Bk, x0_form Form, bool Clip, step_variance V, class T, class Arch = default_simd_arch,
          bool Peel = true>
void ddpm_range(const T* out, const T* var, const T* xt, const T* z, T* x_prev, T* x0_out, std::size_t n,
                const reverse_coefficients<T>& c, const x0_clip<T>& clip) noexcept {
    const bool noisy = z != nullptr; // the caller passes no noise on the final step
    const auto one = [&](std::size_t i) {
        T x0 = scalar::predict_x0(c, xt[i], out[i]);
        if constexpr (Clip) x0 = clip_x0(x0, clip);
        if (x0_out) x0_out[i] = x0;
        T mean = scalar::posterior_mean(x0, xt[i], c.mean_coef_x0, c.mean_coef_xt);
        if (noisy) mean += element_sigma<V>(c, var ? var[i] : T(0)) * z[i];
        x_prev[i] = mean;
    };
    std::size_t i = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd && V == step_variance::fixed) {
        using batch = xsimd::batch<T, Arch>;
        const batch a(c.x0_a), b(c.x0_b), c1(c.mean_coef_x0), c2(c.mean_coef_xt), sigma(c.noise_scale);
        const batch bound(clip.bound), divisor(clip.divisor);
        for (const std::size_t head = Peel ? peel_to<sizeof(batch)>(x_prev, n) : 0; i < head; ++i) one(i);
        for (; i + batch::size <= n; i += batch::size) {
            const batch x = batch::load_unaligned(xt + i);
            batch x0 = predict_x0_batch<Form>(a, b, x, batch::load_unaligned(out + i));
            if constexpr (Clip) x0 = clip_batch(x0, bound, divisor);
            if (x0_out) x0.store_unaligned(x0_out + i);
            batch mean = c1 * x0 + c2 * x;
            if (noisy) mean = mean + sigma * batch::load_unaligned(z + i);
            mean.store_unaligned(x_prev + i);
        }
    }
#endif
    for (; i < n; ++i) one(i);
}

/// One row of the DDIM step (Song et al. 2021, eq. 12).
template <backend Bk, x0_form Form, bool Clip, class T, class Arch = default_simd_arch, bool Peel = true>
void ddim_range(const T* out, const T* xt, const T* z, T* x_prev, T* x0_out, std::size_t n,
                const ddim_coefficients<T>& c, const x0_clip<T>& clip) noexcept {
    const bool noisy = z != nullptr && c.sigma != T(0);
    const auto one = [&](std::size_t i) {
        T x0 = scalar::ddim_x0(c, xt[i], out[i]);
        if constexpr (Clip) x0 = clip_x0(x0, clip);
        if (x0_out) x0_out[i] = x0;
        const T eps = scalar::ddim_eps(c, xt[i], out[i], x0);
        const T mean = scalar::ddim_mean(c, x0, eps);
        x_prev[i] = noisy ? mean + c.sigma * z[i] : mean;
    };
    std::size_t i = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd) {
        using batch = xsimd::batch<T, Arch>;
        const batch a(c.x0_a), b(c.x0_b), ea(c.eps_a), eb(c.eps_b), ec(c.eps_c), cx(c.coef_x0), ce(c.coef_eps);
        const batch sigma(c.sigma);
        const batch bound(clip.bound), divisor(clip.divisor);
        for (const std::size_t head = Peel ? peel_to<sizeof(batch)>(x_prev, n) : 0; i < head; ++i) one(i);
        for (; i + batch::size <= n; i += batch::size) {
            const batch x = batch::load_unaligned(xt + i);
            const batch o = batch::load_unaligned(out + i);
            batch x0 = predict_x0_batch<Form>(a, b, x, o);
            if constexpr (Clip) x0 = clip_batch(x0, bound, divisor);
            if (x0_out) x0.store_unaligned(x0_out + i);
            batch eps = o;
            if (c.eps == eps_form::from_v) eps = ea * o + eb * x;
            else if (c.eps == eps_form::from_out) eps = (ea * x - ec * o) / eb;
            else if (c.eps == eps_form::from_x0) eps = (ea * x - ec * x0) / eb;
            batch prev = cx * x0 + ce * eps;
            if (noisy) prev = prev + sigma * batch::load_unaligned(z + i);
            prev.store_unaligned(x_prev + i);
        }
    }
#endif
    for (; i < n; ++i) one(i);
}

/// Calls f.template operator()<Form, Clip>() for the run-time pair (form, clip).
template <class F>
constexpr decltype(auto) dispatch_form_clip(x0_form form, bool clip, F&& f) {
    switch (form) {
    case x0_form::multiply:
        return clip ? f.template operator()<x0_form::multiply, true>() : f.template operator()<x0_form::multiply, false>();
    case x0_form::divide:
        return clip ? f.template operator()<x0_form::divide, true>() : f.template operator()<x0_form::divide, false>();
    case x0_form::identity: break;
    }
    return clip ? f.template operator()<x0_form::identity, true>() : f.template operator()<x0_form::identity, false>();
}

[[nodiscard]] constexpr int form_index(x0_form f) noexcept {
    return f == x0_form::multiply ? 0 : f == x0_form::divide ? 1 : 2;
}

/// The SIMD range kernels of one xsimd arch, as registered for run-time
/// dispatch (ddpm/dispatch/isa.hpp). DDPM steps with a learned variance have
/// no SIMD body and are not in the table.
template <class T>
struct kernel_table {
    using forward_fn = void (*)(const T*, const T*, T*, std::size_t, T, T) noexcept;
    using forward_stream_fn = void (*)(const noise_stream&, std::size_t, std::size_t, std::size_t, std::size_t,
                                       const T*, T*, T*, T, T) noexcept;
    using ddpm_fn = void (*)(const T*, const T*, const T*, const T*, T*, T*, std::size_t,
                             const reverse_coefficients<T>&, const x0_clip<T>&) noexcept;
    using ddim_fn = void (*)(const T*, const T*, const T*, T*, T*, std::size_t, const ddim_coefficients<T>&,
                             const x0_clip<T>&) noexcept;
    using sqdist_fn = double (*)(const T*, const T*, std::size_t) noexcept;
    forward_fn forward = nullptr;
    forward_stream_fn forward_stream = nullptr; ///< forward noising with counter noise, one pass
    ddpm_fn ddpm[3][2] = {}; ///< [form_index][clip], fixed variance
    ddim_fn ddim[3][2] = {}; ///< [form_index][clip]
    sqdist_fn squared_distance = nullptr; ///< Σ (p − q)² of one row (weighted_mse, gaussian_kl_sum)
};

template <backend Bk, class T, class Arch>
double squared_distance_range(const T* p, const T* q, std::size_t n) noexcept;

/// The kernel_table of `Arch` (instantiated by the arch files only).
template <class T, class Arch>
constexpr kernel_table<T> make_kernel_table() noexcept {
    kernel_table<T> t;
    t.forward = &forward_range<backend::simd, T, Arch>;
    t.forward_stream = &forward_stream_range<backend::simd, T, Arch>;
    t.squared_distance = &squared_distance_range<backend::simd, T, Arch>;
    auto add = [&]<x0_form F, bool C>() {
        t.ddpm[form_index(F)][C] = &ddpm_range<backend::simd, F, C, step_variance::fixed, T, Arch>;
        t.ddim[form_index(F)][C] = &ddim_range<backend::simd, F, C, T, Arch>;
    };
    for (const bool clip : {false, true})
        for (const x0_form f : {x0_form::multiply, x0_form::divide, x0_form::identity})
            dispatch_form_clip(f, clip, add);
    return t;
}

/// The dispatched table of kind `Table` for a call with backend `bk` (null:
/// the compile-time code).
template <class Table>
[[nodiscard]] const Table* dispatched(std::string_view where, backend bk) {
#if DDPM_HAS_XSIMD
    if (bk == backend::simd) return dispatch::resolve<Table>(where);
#endif
    (void)where;
    (void)bk;
    return nullptr;
}

inline void check_equal(std::string_view where, std::string_view name, std::size_t got, std::size_t expected,
                        std::string_view what) {
    if (got != expected)
        ddpm::detail::throw_invalid(where, std::string(name) + ".size()", got,
                                    std::to_string(expected) + " " + std::string(what));
}

inline std::size_t check_rows(std::string_view where, std::size_t rows, std::size_t xt_size,
                              std::string_view rows_name = "coefficients.size()") {
    if (rows == 0) ddpm::detail::throw_invalid(where, rows_name, 0, ">= 1 (one per sample)");
    if (xt_size % rows != 0)
        ddpm::detail::throw_invalid(where, "xt.size()", xt_size,
                                    "a multiple of the number of samples (" + std::to_string(rows) + ")");
    return xt_size / rows;
}

template <class T>
void check_noise(std::string_view where, const step_noise<T>& noise, std::size_t elements) {
    if (noise.source == step_noise<T>::kind::buffer)
        check_equal(where, "noise", noise.buffer.size(), elements, "elements (B x D)");
    if (noise.source == step_noise<T>::kind::stream) random::detail::check_version(where, noise.stream.version);
}

/// The size checks a DDPM step shares: model_output (B·D, or B·2D for a
/// learned variance), x_prev, x0_out (or none) and buffer noise against xt.
template <class T>
void check_step_sizes(std::string_view where, step_variance variance, std::span<const T> model_output,
                      std::span<const T> xt, const step_noise<T>& noise, std::span<T> x_prev, std::span<T> x0_out) {
    const std::size_t channels = variance == step_variance::fixed ? 1 : 2;
    check_equal(where, "model_output", model_output.size(), channels * xt.size(),
                channels == 1 ? "elements (B x D)" : "elements (B x 2D for a learned variance)");
    check_equal(where, "x_prev", x_prev.size(), xt.size(), "elements (B x D)");
    if (!x0_out.empty()) check_equal(where, "x0_out", x0_out.size(), xt.size(), "elements (B x D, or none)");
    check_noise(where, noise, xt.size());
}

/// The size checks a DDIM step shares (channels 1 or 2: only the first D
/// values per sample are read).
template <class T>
void check_ddim_sizes(std::string_view where, std::size_t channels, std::span<const T> model_output,
                      std::span<const T> xt, const step_noise<T>& noise, std::span<T> x_prev, std::span<T> x0_out) {
    if (channels != 1 && channels != 2) ddpm::detail::throw_invalid(where, "channels", channels, "1 or 2");
    check_equal(where, "model_output", model_output.size(), channels * xt.size(),
                channels == 1 ? "elements (B x D)" : "elements (B x 2D)");
    check_equal(where, "x_prev", x_prev.size(), xt.size(), "elements (B x D)");
    if (!x0_out.empty()) check_equal(where, "x0_out", x0_out.size(), xt.size(), "elements (B x D, or none)");
    check_noise(where, noise, xt.size());
}

// Whether two rows' parameters are the same bits, so that the rows may share
// one range-kernel call (the per-element computation is the same either way).
// Field by field (runs of consecutive T fields as one memcmp): struct padding
// is not part of the value. The static_asserts catch a field added to the
// struct and not compared here. Inlined: a batch of short rows compares once
// per row (with_row_params).

/// memcmp of the `count` consecutive T fields of a and b from `field`, as
/// bits (checked by the callers' static_asserts to be adjacent).
template <class S, class T>
[[nodiscard]] DDPM_FORCEINLINE bool same_fields(const S& a, const S& b, T S::*field, std::size_t count) noexcept {
    return std::memcmp(&(a.*field), &(b.*field), count * sizeof(T)) == 0;
}

template <class T>
[[nodiscard]] DDPM_FORCEINLINE bool same_row(const x0_clip<T>& a, const x0_clip<T>& b) noexcept {
    struct mirror { bool e; T bound, divisor; };
    static_assert(sizeof(x0_clip<T>) == sizeof(mirror), "compare every field of x0_clip");
    static_assert(offsetof(x0_clip<T>, divisor) == offsetof(x0_clip<T>, bound) + sizeof(T));
    return a.enabled == b.enabled && same_fields(a, b, &x0_clip<T>::bound, 2);
}

template <class T>
[[nodiscard]] DDPM_FORCEINLINE bool same_row(const reverse_coefficients<T>& a,
                                             const reverse_coefficients<T>& b) noexcept {
    using C = reverse_coefficients<T>;
    struct mirror { x0_form f; T a, b, c, d, e, g, h, i, j; bool k; T l, m; };
    static_assert(sizeof(C) == sizeof(mirror), "compare every field of reverse_coefficients");
    static_assert(offsetof(C, noise_scale) == offsetof(C, x0_a) + 8 * sizeof(T) &&
                  offsetof(C, eps_b) == offsetof(C, eps_a) + sizeof(T));
    return a.form == b.form && a.final_step == b.final_step && same_fields(a, b, &C::x0_a, 9) &&
           same_fields(a, b, &C::eps_a, 2);
}

template <class T>
[[nodiscard]] DDPM_FORCEINLINE bool same_row(const ddim_coefficients<T>& a, const ddim_coefficients<T>& b) noexcept {
    using C = ddim_coefficients<T>;
    struct mirror { x0_form f; T a, b; eps_form e; T c, d, g, h, i, j; };
    static_assert(sizeof(C) == sizeof(mirror), "compare every field of ddim_coefficients");
    static_assert(offsetof(C, x0_b) == offsetof(C, x0_a) + sizeof(T) &&
                  offsetof(C, sigma) == offsetof(C, eps_a) + 5 * sizeof(T));
    return a.form == b.form && a.eps == b.eps && same_fields(a, b, &C::x0_a, 2) && same_fields(a, b, &C::eps_a, 6);
}

/// Whether rows r and q use the same clipping (none given: both unclipped).
template <class T>
[[nodiscard]] bool same_clip(std::span<const x0_clip<T>> clips, std::size_t r, std::size_t q) noexcept {
    return clips.empty() || same_row(clips[r], clips[q]);
}

/// Whether every value of `v` is the same bits as the first (`same(a, b)`):
/// a batch at one timestep. Stops at the first value that differs.
template <class V, class Same>
[[nodiscard]] bool all_same(std::span<const V> v, Same&& same) noexcept {
    for (std::size_t r = 1; r < v.size(); ++r)
        if (!same(v[0], v[r])) return false;
    return true;
}

/// Per-sample parameters of a batch call, one value per row. `fallback`
/// stands for every row when `values` is empty (no clipping given).
template <class V>
struct per_row {
    static constexpr bool uniform = false;
    std::span<const V> values;
    V fallback{};
    [[nodiscard]] DDPM_FORCEINLINE const V& operator[](std::size_t r) const noexcept {
        return values.empty() ? fallback : values[r];
    }
};

/// Per-sample parameters of a batch call, one value for every row (the
/// samples share a timestep): the tile loops look nothing up, compare
/// nothing and make one range call per tile.
template <class V>
struct every_row {
    static constexpr bool uniform = true;
    V value{};
    [[nodiscard]] DDPM_FORCEINLINE const V& operator[](std::size_t) const noexcept { return value; }
};

/// Whether rows r and q of `p` have the same bits (always, for every_row).
template <class P>
[[nodiscard]] DDPM_FORCEINLINE bool same_params(const P& p, std::size_t r, std::size_t q) noexcept {
    if constexpr (P::uniform) return true;
    else return p.values.empty() || same_row(p[r], p[q]);
}

/// Calls f(coefficients, clips) with every_row accessors when all rows share
/// their coefficients and clipping (checked once per call, stopping at the
/// first row that differs), else with per_row ones. The results are the same
/// bits either way; only the per-row lookups and comparisons go.
template <class C, class T, class F>
DDPM_FORCEINLINE void with_row_params(std::span<const C> coefficients, std::span<const x0_clip<T>> clips, F&& f) {
    const auto same = [](const auto& a, const auto& b) { return same_row(a, b); };
    if (all_same(coefficients, same) && all_same(clips, same))
        f(every_row<C>{coefficients[0]}, every_row<x0_clip<T>>{clips.empty() ? x0_clip<T>{} : clips[0]});
    else
        f(per_row<C>{coefficients}, per_row<x0_clip<T>>{clips});
}

/// The checks of a *_step_uniform call (B ≥ 1 dividing xt.size(); clips B,
/// one or none); returns D.
inline std::size_t check_uniform_batch(std::string_view where, std::size_t batch, std::size_t clips,
                                       std::size_t xt_size) {
    const std::size_t dim = check_rows(where, batch, xt_size, "batch");
    if (clips > 1) check_equal(where, "clips", clips, batch, "(one per sample, one for every sample, or none)");
    return dim;
}

/// Calls f(coefficients, clips) for a *_step_uniform call: every_row
/// coefficients, and every_row clips (one or none given) or per_row ones.
template <class C, class T, class F>
DDPM_FORCEINLINE void with_uniform_params(const C& coefficients, std::span<const x0_clip<T>> clips, F&& f) {
    if (clips.size() <= 1) f(every_row<C>{coefficients}, every_row<x0_clip<T>>{clips.empty() ? x0_clip<T>{} : clips[0]});
    else f(every_row<C>{coefficients}, per_row<x0_clip<T>>{clips});
}

/// Runs the tiles of a batch step: `run(r, k, z)` for each run of rows
/// [r, r + k) that shares one range call, z the tile's counter noise (drawn
/// when `wants_noise(r)` for a row of the tile). Rows share a call when
/// `merge` (rows_may_share_calls, one output channel) and their parameters
/// are the same bits: with every_row parameters a whole tile is one call.
template <class T, class Coefs, class Clips, class Wants, class Run>
DDPM_FORCEINLINE void for_each_step_run(std::size_t rows, std::size_t dim, const execution& exec, backend bk,
                                        const step_noise<T>& noise, const Coefs& coefficients, const Clips& clips,
                                        bool merge, Wants&& wants_noise, Run&& run) {
    for_each_tile(rows, dim, exec, [&](std::size_t row, std::size_t tile_rows, std::size_t first, std::size_t n) {
        alignas(64) T z[chunk_elements];
        if constexpr (Coefs::uniform) {
            if (noise.source == step_noise<T>::kind::stream && wants_noise(row))
                draw_tile<T>(noise.stream, row, tile_rows, dim, first, n, z, bk);
            if (Clips::uniform && merge) {
                run(row, tile_rows, first, n, z);
                return;
            }
        } else {
            tile_noise(noise, wants_noise, row, tile_rows, dim, first, n, z, bk);
        }
        for_each_run(
            row, tile_rows,
            [&](std::size_t r, std::size_t q) {
                return merge && same_params(coefficients, r, q) && same_params(clips, r, q);
            },
            [&](std::size_t r, std::size_t k) { run(r, k, first, n, z + (r - row) * n); });
    });
}

/// The noise of the run that starts at row r: `tile_z` (its rows of the
/// tile's counter noise), the caller's buffer, or none.
template <class T>
DDPM_FORCEINLINE const T* run_noise(const step_noise<T>& noise, bool wanted, std::size_t r, std::size_t dim,
                                    std::size_t first, const T* tile_z) noexcept {
    if (!wanted) return nullptr;
    if (noise.source == step_noise<T>::kind::stream) return tile_z;
    if (noise.source == step_noise<T>::kind::buffer) return noise.buffer.data() + r * dim + first;
    return nullptr;
}

/// The body of ddpm_step / ddpm_step_uniform, sizes checked: per_row or
/// every_row coefficients and clips.
template <class T, class Coefs, class Clips>
void ddpm_step_rows(const Coefs& coefficients, const Clips& clips, step_variance variance,
                    std::span<const T> model_output, std::span<const T> xt, const step_noise<T>& noise,
                    std::span<T> x_prev, std::span<T> x0_out, std::size_t rows, std::size_t dim, const execution& exec,
                    backend bk, const kernel_table<T>* table) {
    const std::size_t channels = variance == step_variance::fixed ? 1 : 2;
    const auto wants_noise = [&](std::size_t r) {
        const auto& c = coefficients[r];
        return noise.source != step_noise<T>::kind::none && !c.final_step &&
               (variance != step_variance::fixed || c.noise_scale != T(0));
    };
    // Rows with the same coefficients and clipping (one timestep for the
    // batch) are one range call; a learned variance interleaves its channels
    // per row, so those rows go one by one.
    const bool merge = rows_may_share_calls<T>(bk, table != nullptr, dim) && channels == 1;
    for_each_step_run<T>(rows, dim, exec, bk, noise, coefficients, clips, merge, wants_noise,
                         [&](std::size_t r, std::size_t k, std::size_t first, std::size_t n, const T* tile_z) {
        const auto& c = coefficients[r];
        const std::size_t off = r * dim + first, len = k * n;
        const T* zp = run_noise(noise, wants_noise(r), r, dim, first, tile_z);
        const x0_clip<T>& clip = clips[r];
        const T* out = model_output.data() + r * channels * dim + first;
        const T* var = channels == 2 ? out + dim : nullptr;
        T* x0p = x0_out.empty() ? nullptr : x0_out.data() + off;
        dispatch_form_clip(c.form, clip.enabled, [&]<x0_form F, bool C>() {
            auto run = [&]<step_variance V>() {
                if (V == step_variance::fixed && table)
                    table->ddpm[form_index(F)][C](out, var, xt.data() + off, zp, x_prev.data() + off, x0p, len, c, clip);
                else if (bk == backend::simd)
                    ddpm_range<backend::simd, F, C, V, T, default_simd_arch, compile_time_peels>(
                        out, var, xt.data() + off, zp, x_prev.data() + off, x0p, len, c, clip);
                else
                    ddpm_range<backend::scalar, F, C, V>(out, var, xt.data() + off, zp, x_prev.data() + off, x0p, len,
                                                         c, clip);
            };
            switch (variance) {
            case step_variance::fixed: run.template operator()<step_variance::fixed>(); break;
            case step_variance::learned_range: run.template operator()<step_variance::learned_range>(); break;
            case step_variance::learned_log: run.template operator()<step_variance::learned_log>(); break;
            case step_variance::learned_raw: run.template operator()<step_variance::learned_raw>(); break;
            }
        });
    });
}

/// The body of ddim_step / ddim_step_uniform, sizes checked.
template <class T, class Coefs, class Clips>
void ddim_step_rows(const Coefs& coefficients, const Clips& clips, std::span<const T> model_output,
                    std::span<const T> xt, const step_noise<T>& noise, std::span<T> x_prev, std::span<T> x0_out,
                    std::size_t rows, std::size_t dim, std::size_t channels, const execution& exec, backend bk,
                    const kernel_table<T>* table) {
    const auto wants_noise = [&](std::size_t r) {
        return noise.source != step_noise<T>::kind::none && coefficients[r].sigma != T(0);
    };
    const bool merge = rows_may_share_calls<T>(bk, table != nullptr, dim) && channels == 1;
    for_each_step_run<T>(rows, dim, exec, bk, noise, coefficients, clips, merge, wants_noise,
                         [&](std::size_t r, std::size_t k, std::size_t first, std::size_t n, const T* tile_z) {
        const auto& c = coefficients[r];
        const std::size_t off = r * dim + first, len = k * n;
        const T* zp = run_noise(noise, wants_noise(r), r, dim, first, tile_z);
        const x0_clip<T>& clip = clips[r];
        T* x0p = x0_out.empty() ? nullptr : x0_out.data() + off;
        const T* out = model_output.data() + r * channels * dim + first;
        dispatch_form_clip(c.form, clip.enabled, [&]<x0_form F, bool C>() {
            if (table)
                table->ddim[form_index(F)][C](out, xt.data() + off, zp, x_prev.data() + off, x0p, len, c, clip);
            else if (bk == backend::simd)
                ddim_range<backend::simd, F, C, T, default_simd_arch, compile_time_peels>(
                    out, xt.data() + off, zp, x_prev.data() + off, x0p, len, c, clip);
            else
                ddim_range<backend::scalar, F, C>(out, xt.data() + off, zp, x_prev.data() + off, x0p, len, c, clip);
        });
    });
}

/// Whether every sample of a forward noising call has the same a and b (one
/// timestep for the batch): then forward_tile makes one call per tile.
template <class T>
[[nodiscard]] bool uniform_forward(std::span<const T> a, std::span<const T> b) noexcept {
    const auto same = [](T u, T v) { return same_bits(u, v); };
    return all_same(a, same) && all_same(b, same);
}

/// x_t = a_r·x_0 + b_r·z over a tile of rows [row, row + rows), elements
/// [first, first + n) of each, z already drawn: consecutive rows with the same
/// coefficients (one timestep for the batch) are one range call over their
/// contiguous elements; `uniform` (uniform_forward) says every row has them.
template <class T>
void forward_tile(const kernel_table<T>* table, backend bk, const T* x0, const T* z, T* xt, std::span<const T> a,
                  std::span<const T> b, std::size_t dim, std::size_t row, std::size_t rows, std::size_t first,
                  std::size_t n, bool uniform) noexcept {
    const bool merge = rows_may_share_calls<T>(bk, table != nullptr, n);
    const auto run = [&](std::size_t r, std::size_t k) {
        const std::size_t off = r * dim + first, len = k * n;
        if (table)
            table->forward(x0 + off, z + off, xt + off, len, a[r], b[r]);
        else if (bk == backend::simd)
            forward_range<backend::simd, T, default_simd_arch, compile_time_peels>(x0 + off, z + off, xt + off, len,
                                                                                    a[r], b[r]);
        else
            forward_range<backend::scalar>(x0 + off, z + off, xt + off, len, a[r], b[r]);
    };
    if (uniform && merge) {
        run(row, rows);
        return;
    }
    for_each_run(
        row, rows, [&](std::size_t r, std::size_t q) { return merge && same_bits(a[r], a[q]) && same_bits(b[r], b[q]); },
        run);
}

} // namespace detail

// ---------------------------------------------------------------------------
// Entry points

/// Fused forward noising (Algorithm 1's x_t): draws ε from the counter stream
/// and writes x_t = a_b·x_0 + b_b·ε and ε (the ε-prediction target) in one pass.
/// `a` and `b` hold √ᾱ_t and √(1 − ᾱ_t) per sample (B each).
template <class T>
void forward_noise(std::span<const T> x0, std::span<const T> a, std::span<const T> b, const noise_stream& ns,
                   std::span<T> xt, std::span<T> eps, const execution& exec = {}, backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::forward_noise";
    const std::size_t dim = detail::check_rows(where, a.size(), x0.size());
    detail::check_equal(where, "b", b.size(), a.size(), "(one per sample)");
    detail::check_equal(where, "xt", xt.size(), x0.size(), "elements (B x D)");
    detail::check_equal(where, "eps", eps.size(), x0.size(), "elements (B x D)");
    random::detail::check_version(where, ns.version);
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    const bool uniform = detail::uniform_forward(a, b);
    detail::for_each_tile(a.size(), dim, exec, [&](std::size_t row, std::size_t rows, std::size_t first, std::size_t n) {
        if (rows == 1) {
            // One row (long samples): one pass, the normals made in registers,
            // ε and x_t each written once.
            const std::size_t off = row * dim + first;
            const T* x = x0.data() + off;
            T* e = eps.data() + off;
            T* y = xt.data() + off;
            if (table) table->forward_stream(ns, row, dim, first, n, x, e, y, a[row], b[row]);
            else if (bk == backend::simd) detail::forward_stream_range<backend::simd, T, detail::default_simd_arch, detail::compile_time_peels>(
                ns, row, dim, first, n, x, e, y, a[row], b[row]);
            else detail::forward_stream_range<backend::scalar, T>(ns, row, dim, first, n, x, e, y, a[row], b[row]);
            return;
        }
        // A tile of short rows: their noise is drawn across samples.
        detail::draw_tile<T>(ns, row, rows, dim, first, n, eps.data() + row * dim + first, bk);
        detail::forward_tile<T>(table, bk, x0.data(), eps.data(), xt.data(), a, b, dim, row, rows, first, n, uniform);
    });
}

/// Forward noising with caller noise: x_t = a_b·x_0 + b_b·ε (q_sample).
template <class T>
void forward_noise(std::span<const T> x0, std::span<const T> a, std::span<const T> b, std::span<const T> noise,
                   std::span<T> xt, const execution& exec = {}, backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::forward_noise";
    const std::size_t dim = detail::check_rows(where, a.size(), x0.size());
    detail::check_equal(where, "b", b.size(), a.size(), "(one per sample)");
    detail::check_equal(where, "noise", noise.size(), x0.size(), "elements (B x D)");
    detail::check_equal(where, "xt", xt.size(), x0.size(), "elements (B x D)");
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    const bool uniform = detail::uniform_forward(a, b);
    detail::for_each_tile(a.size(), dim, exec, [&](std::size_t row, std::size_t rows, std::size_t first, std::size_t n) {
        detail::forward_tile<T>(table, bk, x0.data(), noise.data(), xt.data(), a, b, dim, row, rows, first, n, uniform);
    });
}

/// The fused DDPM reverse step for a batch: per sample b, x̂_0 from the network
/// output with coefficients[b], clipping with clips[b] (or none when `clips`
/// is empty), the posterior mean, and + σ z with z from `noise`.
///
/// @param model_output B·D values, or B·2D for a learned variance (`variance`
///        not fixed): per sample the D predictions, then the D variance values.
/// @param x0_out B·D (receives the clipped x̂_0) or empty.
/// `x_prev` may alias `xt`.
template <class T>
void ddpm_step(std::span<const reverse_coefficients<T>> coefficients, std::span<const x0_clip<T>> clips,
               step_variance variance, std::span<const T> model_output, std::span<const T> xt,
               const step_noise<T>& noise, std::span<T> x_prev, std::span<T> x0_out, const execution& exec = {},
               backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::ddpm_step";
    const std::size_t rows = coefficients.size();
    const std::size_t dim = detail::check_rows(where, rows, xt.size());
    if (!clips.empty()) detail::check_equal(where, "clips", clips.size(), rows, "(one per sample, or none)");
    detail::check_step_sizes(where, variance, model_output, xt, noise, x_prev, x0_out);
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);

    detail::with_row_params(coefficients, clips, [&](const auto& coefs, const auto& clip_of) {
        detail::ddpm_step_rows<T>(coefs, clip_of, variance, model_output, xt, noise, x_prev, x0_out, rows, dim, exec,
                                  bk, table);
    });
}

/// The fused DDPM step for a batch whose samples share one timestep: the
/// same coefficients for every sample (ddpm::sample's case). The same bits
/// as ddpm_step with B copies of `coefficients`, without reading B of them.
/// @param batch B ≥ 1; xt.size() must be a multiple of it.
/// @param clips B clip bounds (dynamic thresholding), one for every sample
///        (static clipping), or none.
template <class T>
void ddpm_step_uniform(const reverse_coefficients<T>& coefficients, std::size_t batch,
                       std::span<const x0_clip<T>> clips, step_variance variance, std::span<const T> model_output,
                       std::span<const T> xt, const step_noise<T>& noise, std::span<T> x_prev, std::span<T> x0_out,
                       const execution& exec = {}, backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::ddpm_step_uniform";
    const std::size_t dim = detail::check_uniform_batch(where, batch, clips.size(), xt.size());
    detail::check_step_sizes(where, variance, model_output, xt, noise, x_prev, x0_out);
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    detail::with_uniform_params(coefficients, clips, [&](const auto& coefs, const auto& clip_of) {
        detail::ddpm_step_rows<T>(coefs, clip_of, variance, model_output, xt, noise, x_prev, x0_out, batch, dim, exec,
                                  bk, table);
    });
}

/// The fused DDIM step for a batch (coefficients per sample; see
/// kernels::scalar::ddim_coefficients). `x_prev` may alias `xt`. The network
/// output has `channels`·D values per sample; only the first D are read (a
/// learned variance's channels are ignored by DDIM, as in diffusers).
template <class T>
void ddim_step(std::span<const ddim_coefficients<T>> coefficients, std::span<const x0_clip<T>> clips,
               std::span<const T> model_output, std::span<const T> xt, const step_noise<T>& noise, std::span<T> x_prev,
               std::span<T> x0_out, const execution& exec = {}, backend bk = best_backend, std::size_t channels = 1) {
    constexpr std::string_view where = "ddpm::kernels::ddim_step";
    const std::size_t rows = coefficients.size();
    const std::size_t dim = detail::check_rows(where, rows, xt.size());
    if (!clips.empty()) detail::check_equal(where, "clips", clips.size(), rows, "(one per sample, or none)");
    detail::check_ddim_sizes(where, channels, model_output, xt, noise, x_prev, x0_out);
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);

    detail::with_row_params(coefficients, clips, [&](const auto& coefs, const auto& clip_of) {
        detail::ddim_step_rows<T>(coefs, clip_of, model_output, xt, noise, x_prev, x0_out, rows, dim, channels, exec,
                                  bk, table);
    });
}

/// The fused DDIM step for a batch whose samples share one timestep (see
/// ddpm_step_uniform): the same bits as ddim_step with B copies of
/// `coefficients`. `clips`: B, one for every sample, or none.
template <class T>
void ddim_step_uniform(const ddim_coefficients<T>& coefficients, std::size_t batch, std::span<const x0_clip<T>> clips,
                       std::span<const T> model_output, std::span<const T> xt, const step_noise<T>& noise,
                       std::span<T> x_prev, std::span<T> x0_out, const execution& exec = {},
                       backend bk = best_backend, std::size_t channels = 1) {
    constexpr std::string_view where = "ddpm::kernels::ddim_step_uniform";
    const std::size_t dim = detail::check_uniform_batch(where, batch, clips.size(), xt.size());
    detail::check_ddim_sizes(where, channels, model_output, xt, noise, x_prev, x0_out);
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    detail::with_uniform_params(coefficients, clips, [&](const auto& coefs, const auto& clip_of) {
        detail::ddim_step_rows<T>(coefs, clip_of, model_output, xt, noise, x_prev, x0_out, batch, dim, channels, exec,
                                  bk, table);
    });
}

// ---------------------------------------------------------------------------
// Reductions. Per-sample results are summed in a fixed order that depends on
// neither the thread count nor the SIMD width: 64/sizeof(T) partial sums in T
// (element i feeds partial i mod 64/sizeof(T)), added in index order in
// double, then the tail in double. So every SIMD path (SSE2, AVX2, AVX-512,
// dispatched or compiled in) gives the same bits; the scalar backend sums
// every element in double and may differ from them in the last bits.

namespace detail {

/// Σ_i (p_i − q_i)² over one row, in the order described above.
template <backend Bk, class T, class Arch = default_simd_arch>
double squared_distance_range(const T* p, const T* q, std::size_t n) noexcept {
    std::size_t i = 0;
    double total = 0;
#if DDPM_HAS_XSIMD
    if constexpr (Bk == backend::simd) {
        using batch = xsimd::batch<T, Arch>;
        constexpr std::size_t partials = 64 / sizeof(T);
        if constexpr (partials % batch::size == 0) {
            constexpr std::size_t accs = partials / batch::size;
            batch acc[accs];
            for (std::size_t a = 0; a < accs; ++a) acc[a] = batch(T(0));
            for (; i + partials <= n; i += partials)
                for (std::size_t a = 0; a < accs; ++a) {
                    const batch d = batch::load_unaligned(p + i + a * batch::size) -
                                    batch::load_unaligned(q + i + a * batch::size);
                    acc[a] = acc[a] + d * d;
                }
            alignas(64) T part[partials];
            for (std::size_t a = 0; a < accs; ++a) acc[a].store_unaligned(part + a * batch::size);
            for (std::size_t j = 0; j < partials; ++j) total += static_cast<double>(part[j]);
        }
    }
#endif
    for (; i < n; ++i) {
        const T d = p[i] - q[i];
        total += static_cast<double>(d * d);
    }
    return total;
}

/// squared_distance_range through the dispatched table when there is one.
template <class T>
double squared_distance(const T* p, const T* q, std::size_t n, backend bk, const kernel_table<T>* table) noexcept {
    if (table) return table->squared_distance(p, q, n);
    return bk == backend::simd ? squared_distance_range<backend::simd, T>(p, q, n)
                               : squared_distance_range<backend::scalar, T>(p, q, n);
}

} // namespace detail

/// Per-sample weighted mean squared error: out[b] = w_b · mean_i (pred − target)².
/// `weights` may be empty (all 1).
template <class T>
void weighted_mse(std::span<const T> prediction, std::span<const T> target, std::span<const T> weights,
                  std::size_t batch, std::span<T> out, const execution& exec = {}, backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::weighted_mse";
    const std::size_t dim = detail::check_rows(where, batch, prediction.size());
    detail::check_equal(where, "target", target.size(), prediction.size(), "elements (B x D)");
    if (!weights.empty()) detail::check_equal(where, "weights", weights.size(), batch, "(one per sample, or none)");
    detail::check_equal(where, "out", out.size(), batch, "(one per sample)");
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    parallel_for(detail::batch_execution(exec, prediction.size()), batch, [&](std::size_t b) {
        const double s =
            detail::squared_distance<T>(prediction.data() + b * dim, target.data() + b * dim, dim, bk, table);
        const double w = weights.empty() ? 1.0 : static_cast<double>(weights[b]);
        out[b] = static_cast<T>(w * s / static_cast<double>(dim));
    });
}

/// Per-sample sum over elements of KL(N(μ1, e^{lv1}) ‖ N(μ2, e^{lv2})), with
/// one log-variance per sample for each side (fixed variance types):
/// ½ Σ_i (−1 + lv2 − lv1 + e^{lv1 − lv2} + (μ1 − μ2)² e^{−lv2})
/// (docs/math.md#likelihood-and-bits-per-dimension).
template <class T>
void gaussian_kl_sum(std::span<const T> mean1, std::span<const T> logvar1, std::span<const T> mean2,
                     std::span<const T> logvar2, std::span<T> out, const execution& exec = {},
                     backend bk = best_backend) {
    constexpr std::string_view where = "ddpm::kernels::gaussian_kl_sum";
    const std::size_t batch = out.size();
    const std::size_t dim = detail::check_rows(where, batch, mean1.size());
    detail::check_equal(where, "mean2", mean2.size(), mean1.size(), "elements (B x D)");
    detail::check_equal(where, "logvar1", logvar1.size(), batch, "(one per sample)");
    detail::check_equal(where, "logvar2", logvar2.size(), batch, "(one per sample)");
    const auto* table = detail::dispatched<detail::kernel_table<T>>(where, bk);
    parallel_for(detail::batch_execution(exec, mean1.size()), batch, [&](std::size_t b) {
        const double sq = detail::squared_distance<T>(mean1.data() + b * dim, mean2.data() + b * dim, dim, bk, table);
        const double l1 = static_cast<double>(logvar1[b]), l2 = static_cast<double>(logvar2[b]);
        const double n = static_cast<double>(dim);
        out[b] = static_cast<T>(0.5 * (n * (-1.0 + l2 - l1 + std::exp(l1 - l2)) + sq * std::exp(-l2)));
    });
}

} // namespace ddpm::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
