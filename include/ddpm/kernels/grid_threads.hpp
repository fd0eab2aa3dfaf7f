// ddpm/kernels/grid_threads.hpp — the work of one GPU thread in each fused
// CUDA kernel (ddpm/cuda/*.cuh), written once as host/device code so that
// g++ compiles it too and the host tests run a whole "grid" of these threads
// sequentially against the CPU reference (the mdspan habit: the same body on
// the host or in a kernel).
//
// ## Work split
//
// The counter noise (random/counter_noise.hpp) cuts a sample's elements into
// groups of 64: Philox block 16g + l feeds elements 64g + 16j + l, j = 0..3.
// A thread owns V consecutive blocks of one group (V = 1, or V = 4 on the
// vector path) and so the 4·V elements 64g + 16j + l0 + v (j < 4, v < V):
// for each j its V elements are contiguous, and the 16/V threads of a group
// cover 16 contiguous elements per j — coalesced, and with V = 4 each access
// is one aligned 4-element vector (16 bytes for float). The vector path
// (`Full`) needs D % 64 == 0 and every pointer aligned to 4 elements; the
// scalar path (V = 1) handles any D, the threads of the last group skipping
// the elements past D.
//
// Thread index q of sample b: g = q / (16/V), l0 = (q mod (16/V))·V.
// thread_chunks(D, V) is the number of threads a sample needs.
//
// In noise stream v2 (random::noise_version, the default) a sample's partial
// last group is compact: block 16g + l feeds elements 64g + 4l + j instead
// (word_element). Only the scalar path meets a partial group (the vector path
// needs D % 64 == 0, where v1 and v2 agree); its thread of block l then owns
// those 4 elements, and the threads past the sample's end skip them.
//
// ## Types
//
// Storage T is float, double, or (in ddpm/cuda/types.cuh, which specialises
// storage_traits) __half and __nv_bfloat16; the arithmetic runs in
// compute_t<T>: double for double, float otherwise. Noise is drawn in float
// (bit-identical to random::normal_at) and widened or rounded to T.
//
// Kernels are noexcept and validate nothing: the launchers check once per call.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/config.hpp"
#include "ddpm/kernels/quantile_scalar.hpp"
#include "ddpm/kernels/scalar.hpp"
#include "ddpm/random/counter_noise.hpp"
#include "ddpm/random/normal.hpp"
#include "ddpm/random/philox.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace ddpm::kernels::grid {

// ---------------------------------------------------------------------------
// Storage and compute types.

/// How a storage type is read into, and written from, its compute type.
/// float and double here; __half and __nv_bfloat16 in ddpm/cuda/types.cuh.
template <class T>
struct storage_traits {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "ddpm::kernels::grid: storage must be float or double here; __half and __nv_bfloat16 are "
                  "available through <ddpm/cuda.cuh> (nvcc)");
    using compute_type = T;
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static constexpr T load(T v) noexcept { return v; }
    DDPM_HOST_DEVICE DDPM_FORCEINLINE static constexpr T store(T v) noexcept { return v; }
};

template <class T>
using compute_t = typename storage_traits<T>::compute_type;

// ---------------------------------------------------------------------------
// Math that must run on both sides.

DDPM_HOST_DEVICE DDPM_FORCEINLINE float exp_(float x) noexcept {
#if defined(__CUDA_ARCH__)
    return ::expf(x);
#else
    return std::exp(x);
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE double exp_(double x) noexcept {
#if defined(__CUDA_ARCH__)
    return ::exp(x);
#else
    return std::exp(x);
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE float sqrt_(float x) noexcept {
#if defined(__CUDA_ARCH__)
    return __fsqrt_rn(x);
#else
    return std::sqrt(x);
#endif
}
DDPM_HOST_DEVICE DDPM_FORCEINLINE double sqrt_(double x) noexcept {
#if defined(__CUDA_ARCH__)
    return __dsqrt_rn(x);
#else
    return std::sqrt(x);
#endif
}
template <class C>
DDPM_HOST_DEVICE DDPM_FORCEINLINE C quiet_nan() noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (std::is_same_v<C, float>) return __int_as_float(0x7fffffff);
    else return __longlong_as_double(0x7fffffffffffffffll);
#else
    return std::numeric_limits<C>::quiet_NaN();
#endif
}

/// V elements of T as one aligned unit: on the device a load or store of it
/// is one vector access (ld.global.v4.f32 for 4 floats, 8 bytes for 4 halves,
/// two 16-byte accesses for 4 doubles).
template <class T, int V>
struct alignas(sizeof(T) * V) packed {
    T v[V];
};

/// out[v] = p[v] as compute values, v < V. With V > 1, p must be aligned to
/// V elements (the vector path guarantees it); the device then reads one
/// vector, the host element by element (no type punning in host code).
template <int V, class T>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void load_n(const T* p, compute_t<T> (&out)[V]) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (V > 1) {
        const packed<T, V> w = *reinterpret_cast<const packed<T, V>*>(p);
#pragma unroll
        for (int v = 0; v < V; ++v) out[v] = storage_traits<T>::load(w.v[v]);
    } else
#endif
    {
        for (int v = 0; v < V; ++v) out[v] = storage_traits<T>::load(p[v]);
    }
}

#if defined(__CUDA_ARCH__)
/// One 16-byte (4 × 4 bytes), 8-byte (4 × 2 bytes) or two 16-byte (4 × 8
/// bytes) global stores of w, as inline PTX: written through a vector type
/// (packed<T, 4>, uint4, even with __builtin_assume_aligned) nvcc 13 still
/// split some of these stores into scalar ones — all of the first unrolled
/// iteration's in the reverse kernel — so the instruction is spelled out.
/// p is 4·sizeof(T)-aligned global memory (the vector path's condition).
/// No "memory" clobber, so that nvcc may still hoist the next elements'
/// loads above these stores: it is sound because each element is read (if
/// at all) only by the thread that writes it, and the stored values depend
/// on those reads — even in place (x_prev = x_t, x_t = x_0) the read of an
/// element comes first.
template <class T>
__device__ DDPM_FORCEINLINE void store4_global(T* p, const packed<T, 4>& w) noexcept {
    const auto g = static_cast<unsigned long long>(__cvta_generic_to_global(p));
    if constexpr (sizeof(T) == 4) {
        unsigned u[4];
        memcpy(u, &w, sizeof(u));
        asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(g), "r"(u[0]), "r"(u[1]), "r"(u[2]), "r"(u[3]));
    } else if constexpr (sizeof(T) == 2) {
        unsigned short u[4];
        memcpy(u, &w, sizeof(u));
        asm volatile("st.global.v4.b16 [%0], {%1, %2, %3, %4};" ::"l"(g), "h"(u[0]), "h"(u[1]), "h"(u[2]), "h"(u[3]));
    } else {
        static_assert(sizeof(T) == 8, "storage of 2, 4 or 8 bytes");
        unsigned long long u[4];
        memcpy(u, &w, sizeof(u));
        asm volatile("st.global.v2.b64 [%0], {%1, %2};" ::"l"(g), "l"(u[0]), "l"(u[1]));
        asm volatile("st.global.v2.b64 [%0+16], {%1, %2};" ::"l"(g), "l"(u[2]), "l"(u[3]));
    }
}
#endif

/// p[v] = in[v] rounded to T, v < V (the same alignment rule as load_n). On
/// the device, with V = 4, one vector store (two for double).
template <int V, class T>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void store_n(T* p, const compute_t<T> (&in)[V]) noexcept {
#if defined(__CUDA_ARCH__)
    if constexpr (V == 4) {
        packed<T, V> w;
#pragma unroll
        for (int v = 0; v < V; ++v) w.v[v] = storage_traits<T>::store(in[v]);
        store4_global(p, w);
    } else
#endif
    {
        for (int v = 0; v < V; ++v) p[v] = storage_traits<T>::store(in[v]);
    }
}

/// Sets *flag (an out-of-range timestep was seen); atomic on the device.
DDPM_HOST_DEVICE DDPM_FORCEINLINE void raise_flag(int* flag, int bits) noexcept {
    if (flag == nullptr) return;
#if defined(__CUDA_ARCH__)
    atomicOr(flag, bits);
#else
    *flag |= bits;
#endif
}

// ---------------------------------------------------------------------------
// The work split.

inline constexpr std::int64_t group_elements = 64; // random::noise_group_elements
inline constexpr std::int64_t group_blocks = 16;   // random::noise_group_blocks
static_assert(group_elements == static_cast<std::int64_t>(random::noise_group_elements) &&
              group_blocks == static_cast<std::int64_t>(random::noise_group_blocks));

/// Threads one sample of `dim` elements needs with V blocks per thread.
/// V = 4 requires dim % 64 == 0.
template <int V>
[[nodiscard]] DDPM_HOST_DEVICE constexpr std::int64_t thread_chunks(std::int64_t dim) noexcept {
    static_assert(V == 1 || V == 4, "ddpm::kernels::grid: V is 1 or 4");
    if (dim <= 0) return 0;
    const std::int64_t groups = (dim + group_elements - 1) / group_elements;
    if constexpr (V == 4) {
        return groups * (group_blocks / V);
    } else {
        // The last group needs only the lanes that own an element.
        const std::int64_t rest = dim - (groups - 1) * group_elements;
        return (groups - 1) * group_blocks + (rest < group_blocks ? rest : group_blocks);
    }
}

/// The element that word j of block 16g + l feeds in a sample of `dim`
/// elements: 64g + 16j + l (stream v1, and every whole group of v2), or
/// 64g + 4l + j in the partial last group of stream v2 (`compact`).
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE constexpr std::int64_t word_element(std::int64_t g, std::int64_t l,
                                                                                   std::int64_t j, std::int64_t dim,
                                                                                   bool compact) noexcept {
    const std::int64_t base = g * group_elements;
    return compact && base + group_elements > dim ? base + 4 * l + j : base + j * group_blocks + l;
}

/// The 4·V standard normals of blocks 16g + l0 .. 16g + l0 + V − 1:
/// z[j][v] = random::normal_at(seed, sample, step, 64g + 16j + l0 + v).
template <int V>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void draw_normals(std::uint64_t seed, std::uint32_t sample, std::uint32_t step,
                                                    std::uint64_t first_block, float (&z)[4][V]) noexcept {
    const random::philox4x32_key key = random::noise_key(seed);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int v = 0; v < V; ++v) {
        const random::philox4x32_counter w =
            random::philox4x32_10(random::noise_counter(first_block + static_cast<std::uint64_t>(v), sample, step), key);
        const random::normal_pair a = random::box_muller(w.w[0], w.w[1]);
        const random::normal_pair b = random::box_muller(w.w[2], w.w[3]);
        z[0][v] = a.z0;
        z[1][v] = a.z1;
        z[2][v] = b.z0;
        z[3][v] = b.z1;
    }
}

// ---------------------------------------------------------------------------
// Noise fill: out[b·D + k] = normal_at(seed, first_sample + b, step, element_offset + k)
// (or uniform_at) in stream v1; in stream v2 (the default) normal_at_v2(…,
// element_offset + k, element_offset + D). One thread per Philox block
// covering [offset, offset + D).

template <class T>
struct fill_args {
    T* out = nullptr;
    std::int64_t batch = 0;
    std::int64_t dim = 0;
    std::uint64_t seed = 0;
    std::uint32_t step = 0;
    std::uint32_t first_sample = 0;
    std::uint64_t element_offset = 0;
    bool uniform = false;
    /// Of the normals (uniforms are stream v1's layout): stream v2 treats each
    /// row as elements [element_offset, element_offset + dim) of a sample of
    /// element_offset + dim elements.
    random::noise_version version = random::noise_version::v2;
};

/// Threads one sample of a fill needs: 16 per group overlapping [offset, offset + dim).
[[nodiscard]] DDPM_HOST_DEVICE constexpr std::int64_t fill_chunks(std::uint64_t offset, std::int64_t dim) noexcept {
    if (dim <= 0) return 0;
    const std::uint64_t first_group = offset / group_elements;
    const std::uint64_t last_group = (offset + static_cast<std::uint64_t>(dim) - 1) / group_elements;
    return static_cast<std::int64_t>(last_group - first_group + 1) * group_blocks;
}

template <class T>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void fill_thread(const fill_args<T>& a, std::int64_t b, std::int64_t q) noexcept {
    using S = storage_traits<T>;
    using C = compute_t<T>;
    const std::uint64_t g = a.element_offset / group_elements + static_cast<std::uint64_t>(q / group_blocks);
    const std::uint64_t l = static_cast<std::uint64_t>(q % group_blocks);
    const std::uint64_t block = g * group_blocks + l;
    const auto sample = static_cast<std::uint32_t>(a.first_sample + static_cast<std::uint64_t>(b));
    const random::philox4x32_counter w =
        random::philox4x32_10(random::noise_counter(block, sample, a.step), random::noise_key(a.seed));
    float v[4];
    if (a.uniform) {
        for (int j = 0; j < 4; ++j) v[j] = random::uniform_float(w.w[j]);
    } else {
        const random::normal_pair p = random::box_muller(w.w[0], w.w[1]);
        const random::normal_pair r = random::box_muller(w.w[2], w.w[3]);
        v[0] = p.z0;
        v[1] = p.z1;
        v[2] = r.z0;
        v[3] = r.z1;
    }
    const std::uint64_t end = a.element_offset + static_cast<std::uint64_t>(a.dim);
    // Stream v2's partial last group of the sample [0, end): 4 consecutive elements per block.
    // (Uniforms have one layout, stream v1's.)
    const bool compact = !a.uniform && a.version == random::noise_version::v2 && (g + 1) * group_elements > end;
    T* row = a.out + b * a.dim;
    for (int j = 0; j < 4; ++j) {
        const std::uint64_t e = compact ? g * group_elements + 4 * l + static_cast<std::uint64_t>(j)
                                        : g * group_elements + static_cast<std::uint64_t>(j) * group_blocks + l;
        if (e >= a.element_offset && e < end) row[e - a.element_offset] = S::store(static_cast<C>(v[j]));
    }
}

// ---------------------------------------------------------------------------
// Forward noising (Algorithm 1's x_t): x_t = a_t·x_0 + b_t·ε, ε from the counter
// stream (written to eps_out) or from the caller (noise_in); optionally the
// v target v = a_t·ε − b_t·x_0. a_t, b_t are the device tables the CPU's
// q_sample uses for that precision and profile (cuda::device_schedule).
// A drawn ε is the float normal rounded to the storage type T; x_t and v are
// formed from that rounded ε, so (ε, x_t) is exactly what q_sample with the
// stored ε gives (for 16-bit T; for float and double the rounding is exact).

/// Bit set in the error flag when a timestep is outside [0, T).
inline constexpr int error_bad_timestep = 1;

template <class T>
struct forward_args {
    const T* x0 = nullptr;
    const T* noise_in = nullptr; ///< caller noise (B·D), or nullptr: draw it
    T* xt = nullptr;
    T* eps_out = nullptr;        ///< optional: the drawn ε
    T* v_out = nullptr;          ///< optional: the v-prediction target
    const timestep_t* timesteps = nullptr; ///< B, device
    const compute_t<T>* coef_a = nullptr;  ///< √ᾱ_t, T entries
    const compute_t<T>* coef_b = nullptr;  ///< √(1 − ᾱ_t), T entries
    std::int64_t num_timesteps = 0;
    std::int64_t batch = 0;
    std::int64_t dim = 0;
    std::uint64_t seed = 0;
    std::uint32_t step = 0;
    std::uint32_t first_sample = 0;
    int* error_flag = nullptr;   ///< raised (error_bad_timestep) on a timestep outside [0, T)
    random::noise_version version = random::noise_version::v2; ///< of the drawn ε
};

template <int V, bool Full, class T>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void forward_thread(const forward_args<T>& a, std::int64_t b,
                                                      std::int64_t q) noexcept {
    static_assert(Full || V == 1, "the guarded path handles one block per thread");
    using S = storage_traits<T>;
    using C = compute_t<T>;
    constexpr std::int64_t lanes = group_blocks / V;
    const std::int64_t g = q / lanes;
    const std::int64_t l0 = (q % lanes) * V;
    const std::int64_t row = b * a.dim;
    const timestep_t t = a.timesteps[b];
    const bool bad = t < 0 || t >= a.num_timesteps;
    if (bad && q == 0) raise_flag(a.error_flag, error_bad_timestep);
    const C ca = bad ? quiet_nan<C>() : a.coef_a[bad ? 0 : t];
    const C cb = bad ? quiet_nan<C>() : a.coef_b[bad ? 0 : t];

    float z[4][V] = {};
    if (a.noise_in == nullptr)
        draw_normals<V>(a.seed, static_cast<std::uint32_t>(a.first_sample + static_cast<std::uint64_t>(b)), a.step,
                        static_cast<std::uint64_t>(g * group_blocks + l0), z);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int j = 0; j < 4; ++j) {
        // The guarded path (V = 1) places stream v2's partial last group
        // compactly (word_element); the vector path has whole groups only.
        const std::int64_t e0 = Full ? g * group_elements + j * group_blocks + l0
                                     : word_element(g, l0, j, a.dim, a.version == random::noise_version::v2);
        if constexpr (!Full) {
            if (e0 >= a.dim) break;
        }
        C x[V], e[V], r[V];
        load_n<V>(a.x0 + row + e0, x);
        if (a.noise_in != nullptr) {
            load_n<V>(a.noise_in + row + e0, e);
        } else {
            // ε is rounded to the storage type first (the identity for float
            // and double), so that x_t, v and the stored ε agree: q_sample
            // with the stored ε gives the same x_t bits, as torch's
            // randn_like in half followed by a·x_0 + b·ε does.
            for (int v = 0; v < V; ++v) e[v] = S::load(S::store(static_cast<C>(z[j][v])));
            if (a.eps_out != nullptr) store_n<V>(a.eps_out + row + e0, e);
        }
        for (int v = 0; v < V; ++v) r[v] = scalar::q_sample(x[v], e[v], ca, cb);
        store_n<V>(a.xt + row + e0, r);
        if (a.v_out != nullptr) {
            for (int v = 0; v < V; ++v) r[v] = scalar::velocity(x[v], e[v], ca, cb);
            store_n<V>(a.v_out + row + e0, r);
        }
    }
}

// ---------------------------------------------------------------------------
// The reverse steps (DDPM and DDIM).

/// How x̂_0 is kept in range inside a step (docs/math.md#clipping-and-dynamic-thresholding).
enum class clip_mode : std::uint8_t {
    none,
    clip,    ///< clamp(x̂_0, −r, r)
    dynamic, ///< clamp(x̂_0, −s_b, s_b) / s_b with the per-sample s_b of the threshold kernel
};

/// How σ of a DDPM step is found for each element (the rules of the CPU
/// sampler, samplers/ddpm.hpp): from the coefficients, or from the variance
/// channels of the network output (the second D values of each sample).
enum class sigma_mode : std::uint8_t {
    fixed,            ///< σ = coef.noise_scale
    learned_range,    ///< σ = exp(½(f·max_log + (1 − f)·min_log)), f = (v + 1)/2
    learned_log,      ///< σ = exp(½ v)   (improved-diffusion "learned")
    learned_variance, ///< σ = √v         (diffusers "learned")
};

/// What a reverse kernel reads for each sample (or, broadcast, for a whole
/// step of a chain): the coefficients and the noise of the step.
template <class Coef>
struct step_record {
    Coef coef{};
    std::uint32_t noise_step = 0; ///< counter step of z: chain position + 1 (samplers/noise.hpp)
    std::uint32_t noisy = 0;      ///< 1: add σ z; 0: the step adds no noise
};

template <class T, class Coef>
struct reverse_args {
    const T* model_output = nullptr; ///< B·D, or B·2D (DDPM with a learned variance)
    const T* xt = nullptr;           ///< B·D
    T* x_prev = nullptr;             ///< B·D; may alias xt
    T* pred_x0 = nullptr;            ///< optional B·D: the clipped x̂_0
    const T* noise_in = nullptr;     ///< caller noise B·D, or nullptr: the counter stream
    const step_record<Coef>* records = nullptr;
    std::int64_t record_stride = 1;  ///< 1: one record per sample; 0: one for the batch
    clip_mode clip = clip_mode::none;
    compute_t<T> clip_range = 1;
    const compute_t<T>* thresholds = nullptr; ///< B: s_b (clip_mode::dynamic)
    sigma_mode sigma = sigma_mode::fixed;     ///< DDPM only
    std::int64_t batch = 0;
    std::int64_t dim = 0;
    std::int64_t out_stride = 0;     ///< D, or 2D with a learned variance
    std::uint64_t seed = 0;
    std::uint32_t first_sample = 0;
    random::noise_version version = random::noise_version::v2; ///< of the drawn z
};

/// x̂_0 from one element of the network output, for either kind of step.
template <class C>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE C x0_of(const scalar::reverse_coefficients<C>& c, C xt,
                                                        C out) noexcept {
    return scalar::predict_x0(c, xt, out);
}
template <class C>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE C x0_of(const scalar::ddim_coefficients<C>& c, C xt,
                                                        C out) noexcept {
    return scalar::ddim_x0(c, xt, out);
}

template <class C>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE C clip_x0(clip_mode mode, C x0, C range, C s) noexcept {
    switch (mode) {
    case clip_mode::none: return x0;
    case clip_mode::clip: return scalar::clamp(x0, -range, range);
    case clip_mode::dynamic: return scalar::apply_threshold(x0, s);
    }
    return x0;
}

/// σ of one element of a DDPM step (v: the element's variance channel).
template <class C>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE C step_sigma(sigma_mode mode, const scalar::reverse_coefficients<C>& c,
                                                             C v) noexcept {
    switch (mode) {
    case sigma_mode::fixed: return c.noise_scale;
    case sigma_mode::learned_range: {
        const C frac = (v + C(1)) / C(2);
        return exp_(C(0.5) * (frac * c.max_log + (C(1) - frac) * c.min_log));
    }
    case sigma_mode::learned_log: return exp_(C(0.5) * v);
    case sigma_mode::learned_variance: return sqrt_(v);
    }
    return c.noise_scale;
}

template <class C>
inline constexpr bool is_ddim_coefficients_v = false;
template <class C>
inline constexpr bool is_ddim_coefficients_v<scalar::ddim_coefficients<C>> = true;

/// One thread of the fused reverse step: x̂_0, clip, then
///   DDPM: x_prev = μ̃(x̂_0, x_t) + σ z              (Algorithm 2, line 4)
///   DDIM: x_prev = √ᾱ_prev x̂_0 + √(1−ᾱ_prev−σ²) ε̂ + σ z   (Song et al., eq. 12)
/// with the element operations of kernels/scalar.hpp, in the order the CPU
/// kernels use.
template <int V, bool Full, class T, class Coef>
DDPM_HOST_DEVICE DDPM_FORCEINLINE void reverse_thread(const reverse_args<T, Coef>& a, std::int64_t b,
                                                      std::int64_t q) noexcept {
    static_assert(Full || V == 1, "the guarded path handles one block per thread");
    using C = compute_t<T>;
    constexpr bool ddim = is_ddim_coefficients_v<Coef>;
    constexpr std::int64_t lanes = group_blocks / V;
    const std::int64_t g = q / lanes;
    const std::int64_t l0 = (q % lanes) * V;
    const std::int64_t row = b * a.dim;
    const std::int64_t orow = b * a.out_stride;
    const step_record<Coef> rec = a.records[b * a.record_stride]; // a copy: the stores below may alias
    const Coef& c = rec.coef;
    const C s = a.clip == clip_mode::dynamic ? a.thresholds[b] : C(1);
    bool noisy = rec.noisy != 0;
    if constexpr (ddim) noisy = noisy && c.sigma != C(0);

    float z[4][V] = {};
    const bool draw = noisy && a.noise_in == nullptr;
    if (draw)
        draw_normals<V>(a.seed, static_cast<std::uint32_t>(a.first_sample + static_cast<std::uint64_t>(b)),
                        rec.noise_step, static_cast<std::uint64_t>(g * group_blocks + l0), z);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int j = 0; j < 4; ++j) {
        // The guarded path (V = 1) places stream v2's partial last group
        // compactly (word_element); the vector path has whole groups only.
        const std::int64_t e0 = Full ? g * group_elements + j * group_blocks + l0
                                     : word_element(g, l0, j, a.dim, a.version == random::noise_version::v2);
        if constexpr (!Full) {
            if (e0 >= a.dim) break;
        }
        C x[V], o[V], zz[V];
        load_n<V>(a.xt + row + e0, x);
        load_n<V>(a.model_output + orow + e0, o);
        if (noisy) {
            if (draw) {
                for (int v = 0; v < V; ++v) zz[v] = static_cast<C>(z[j][v]);
            } else {
                load_n<V>(a.noise_in + row + e0, zz);
            }
        } else {
            for (int v = 0; v < V; ++v) zz[v] = C(0);
        }
        C x0[V], r[V];
        for (int v = 0; v < V; ++v) x0[v] = clip_x0(a.clip, x0_of(c, x[v], o[v]), a.clip_range, s);
        if (a.pred_x0 != nullptr) store_n<V>(a.pred_x0 + row + e0, x0);
        if constexpr (ddim) {
            for (int v = 0; v < V; ++v) {
                const C eps = scalar::ddim_eps(c, x[v], o[v], x0[v]);
                r[v] = scalar::ddim_prev(c, x0[v], eps, zz[v]);
            }
        } else {
            for (int v = 0; v < V; ++v) r[v] = scalar::posterior_mean(x0[v], x[v], c.mean_coef_x0, c.mean_coef_xt);
            if (noisy) {
                if (a.sigma == sigma_mode::fixed) {
                    for (int v = 0; v < V; ++v) r[v] = r[v] + c.noise_scale * zz[v];
                } else {
                    C var[V];
                    load_n<V>(a.model_output + orow + a.dim + e0, var);
                    for (int v = 0; v < V; ++v) r[v] = r[v] + step_sigma(a.sigma, c, var[v]) * zz[v];
                }
            }
        }
        store_n<V>(a.x_prev + row + e0, r);
    }
}

// ---------------------------------------------------------------------------
// Dynamic thresholding: the per-sample quantile of |x̂_0| (the CUDA kernel is
// block-cooperative; see quantile_scalar.hpp for the selection it runs).

template <class T, class Coef>
struct threshold_args {
    const T* model_output = nullptr;
    const T* xt = nullptr;
    const step_record<Coef>* records = nullptr;
    std::int64_t record_stride = 1;
    std::int64_t batch = 0;
    std::int64_t dim = 0;
    std::int64_t out_stride = 0;
    scalar::quantile_position<compute_t<T>> position{}; ///< quantile_rank(ratio, D) in compute precision
    compute_t<T> max_value = 1;                           ///< sample_max_value
    compute_t<T>* thresholds = nullptr;                   ///< B outputs: s_b
};

/// x̂_0 of element i of sample b, as the threshold kernel sees it (before |·|).
template <class T, class Coef>
[[nodiscard]] DDPM_HOST_DEVICE DDPM_FORCEINLINE compute_t<T> x0_at(const threshold_args<T, Coef>& a,
                                                                        const Coef& c, std::int64_t b,
                                                                        std::int64_t i) noexcept {
    using S = storage_traits<T>;
    return x0_of(c, S::load(a.xt[b * a.dim + i]), S::load(a.model_output[b * a.out_stride + i]));
}

} // namespace ddpm::kernels::grid
