// The forward process on the device: device_schedule holds the CPU tables
// exactly; forward_noise draws ε bit-identical to the CPU and writes
// x_t = ddpm::q_sample(x_0, ε) (and v = ddpm::get_velocity) within float
// rounding, ε being the stored (for 16-bit types: rounded) noise; q_sample
// with that ε as caller noise gives the same bits; bad timesteps are caught.
#include "device_util.cuh"

#include <ddpm/core/forward.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

using namespace ddpm_cuda_test;
using ddpm::timestep_t;

namespace {

template <class V>
std::vector<V> reference_values(std::size_t n, std::uint64_t seed) {
    std::vector<V> v(n);
    ddpm::random::counter_engine e(seed, 0, 0);
    for (auto& x : v) x = static_cast<V>(e.normal());
    return v;
}

/// |got − ref| within a few roundoffs of |a·x0| + |b·ε| (FMA contraction and storage rounding).
template <class T>
double forward_roundoffs(std::span<const T> got, std::span<const double> ref, std::span<const double> scale) {
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = static_cast<double>(to_compute(got[i]));
        worst = std::max(worst, std::abs(g - ref[i]) / (std::max(scale[i], 1e-30) * unit_roundoff<T>()));
    }
    return worst;
}

template <class T>
void check_forward(ddpm::profile p) {
    using C = compute<T>;
    const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
    const ddpm::cuda::device_schedule ds(s);
    for (const std::int64_t dim : {1, 17, 64, 100, 256, 4096}) {
        for (const int misalign : {0, 1}) {
            const std::vector<timestep_t> ts{0, 17, 999, 500, 250};
            const auto batch = static_cast<std::int64_t>(ts.size());
            const auto n = static_cast<std::size_t>(batch * dim);
            const auto x0c = to_compute(to_storage<T>(reference_values<C>(n, 3)));
            const auto x0 = to_storage<T>(x0c);
            // misalign: shift every pointer by one element to force the scalar path.
            ddpm::cuda::device_buffer<T> dx(n + 1), dxt(n + 1), deps(n + 1), dv(n + 1);
            ddpm::cuda::device_buffer<timestep_t> dt(ts.size());
            DDPM_CUDA_CHECK(cudaMemcpy(dx.data() + misalign, x0.data(), n * sizeof(T), cudaMemcpyHostToDevice));
            ddpm::cuda::upload_timesteps(ds, ts, dt.data());
            poison(dxt);
            poison(deps);
            poison(dv);
            ddpm::cuda::forward_noise<T>(ds, dx.data() + misalign, dt.data(), batch, dim, {77, 12, 5},
                                         dxt.data() + misalign, deps.data() + misalign, nullptr, dv.data() + misalign);
            ds.check_errors();
            auto host = [&](const ddpm::cuda::device_buffer<T>& d) {
                std::vector<T> h(n);
                DDPM_CUDA_CHECK(cudaMemcpy(h.data(), d.data() + misalign, n * sizeof(T), cudaMemcpyDeviceToHost));
                return h;
            };
            const auto xt = host(dxt), eps = host(deps), v = host(dv);
            // ε: the CPU generator's floats, stored as T.
            const auto z = normals<float>(77, 5, 12, ts.size(), static_cast<std::size_t>(dim));
            DDPM_EXPECT(bitwise_equal<T>(eps, to_storage<T>(z))) << "eps, dim " << dim;
            // x_t and v: the CPU q_sample in the compute type on the same inputs — the
            // stored ε (rounded to T first: x_t is formed from it, as from randn_like in T).
            std::vector<C> zc = to_compute(to_storage<T>(z)), ref(n), ref_v(n);
            ddpm::q_sample(s, x0c, zc, ts, ref);
            ddpm::get_velocity(s, x0c, zc, ts, ref_v);
            const auto tab = ddpm::kernels::grid::make_forward_tables<C>(s);
            std::vector<double> scale(n);
            for (std::size_t k = 0; k < n; ++k) {
                const auto t = static_cast<std::size_t>(ts[k / static_cast<std::size_t>(dim)]);
                scale[k] = std::abs(double(tab.a[t]) * double(x0c[k])) + std::abs(double(tab.b[t]) * double(zc[k]));
            }
            const double dx_t = forward_roundoffs<T>(xt, widen(ref), scale);
            const double dv_t = forward_roundoffs<T>(v, widen(ref_v), scale);
            DDPM_EXPECT(dx_t <= 4) << "x_t: " << dx_t << " roundoffs, dim " << dim << " misalign " << misalign;
            DDPM_EXPECT(dv_t <= 4) << "v: " << dv_t << " roundoffs, dim " << dim << " misalign " << misalign;

            // Caller noise: q_sample.
            ddpm::cuda::device_buffer<T> dz(n + 1), dxt2(n + 1);
            const auto zs = to_storage<T>(z);
            DDPM_CUDA_CHECK(cudaMemcpy(dz.data() + misalign, zs.data(), n * sizeof(T), cudaMemcpyHostToDevice));
            poison(dxt2);
            ddpm::cuda::q_sample<T>(ds, dx.data() + misalign, dz.data() + misalign, dt.data(), batch, dim,
                                    dxt2.data() + misalign);
            DDPM_EXPECT(bitwise_equal<T>(host(dxt2), xt)) << "q_sample with the same noise, dim " << dim;
        }
    }
}

} // namespace

DDPM_CUDA_TEST(device_schedule_holds_the_cpu_tables) {
    for (const auto p : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
        const ddpm::cuda::device_schedule ds(s);
        const auto n = static_cast<std::size_t>(s.size());
        auto check = [&](auto tag) {
            using C = decltype(tag);
            const auto t = ds.tables<C>();
            std::vector<C> h(n);
            DDPM_CUDA_CHECK(cudaMemcpy(h.data(), t.posterior_mean_coef2, n * sizeof(C), cudaMemcpyDeviceToHost));
            DDPM_EXPECT(bitwise_equal<C>(h, s.tables<C>().posterior_mean_coef2));
            DDPM_CUDA_CHECK(cudaMemcpy(h.data(), t.betas, n * sizeof(C), cudaMemcpyDeviceToHost));
            DDPM_EXPECT(bitwise_equal<C>(h, s.tables<C>().betas));
            DDPM_CUDA_CHECK(cudaMemcpy(h.data(), t.snr, n * sizeof(C), cudaMemcpyDeviceToHost));
            DDPM_EXPECT(bitwise_equal<C>(h, s.tables<C>().snr));
            const auto f = ddpm::kernels::grid::make_forward_tables<C>(s);
            DDPM_CUDA_CHECK(cudaMemcpy(h.data(), t.forward_b, n * sizeof(C), cudaMemcpyDeviceToHost));
            DDPM_EXPECT(bitwise_equal<C>(h, f.b));
        };
        check(float{});
        check(double{});
    }
}

DDPM_CUDA_TEST(forward_float) {
    check_forward<float>(ddpm::profile::standard);
    check_forward<float>(ddpm::profile::diffusers);
}
DDPM_CUDA_TEST(forward_double) {
    check_forward<double>(ddpm::profile::standard);
    check_forward<double>(ddpm::profile::diffusers);
}
DDPM_CUDA_TEST(forward_half) { check_forward<__half>(ddpm::profile::standard); }
DDPM_CUDA_TEST(forward_bfloat16) { check_forward<__nv_bfloat16>(ddpm::profile::diffusers); }

DDPM_CUDA_TEST(bad_timesteps_are_reported) {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const ddpm::cuda::device_schedule ds(s);
    const std::vector<timestep_t> bad{3, 1000};
    ddpm::cuda::device_buffer<timestep_t> dt(2);
    DDPM_EXPECT_THROWS(ddpm::cuda::upload_timesteps(ds, bad, dt.data()), ddpm::invalid_argument);
    // Device-resident bad timesteps: NaN for that sample, check_errors throws (once).
    dt.upload(bad);
    const std::int64_t dim = 128;
    ddpm::cuda::device_buffer<float> x(2 * dim), xt(2 * dim);
    ddpm::cuda::fill_normal<float>(x.data(), 2, dim, {1, 2, 3});
    ddpm::cuda::forward_noise<float>(ds, x.data(), dt.data(), 2, dim, {}, xt.data(), nullptr);
    DDPM_EXPECT_THROWS(ds.check_errors(), ddpm::invalid_argument);
    ds.check_errors(); // cleared
    const auto h = to_host(xt);
    DDPM_EXPECT(std::none_of(h.begin(), h.begin() + dim, [](float v) { return std::isnan(v); }));
    DDPM_EXPECT(std::all_of(h.begin() + dim, h.end(), [](float v) { return std::isnan(v); }));
    // Null / host pointers and sizes.
    std::vector<float> host(2 * dim);
    DDPM_EXPECT_THROWS(ddpm::cuda::forward_noise<float>(ds, host.data(), dt.data(), 2, dim, {}, xt.data(), nullptr),
                       ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::forward_noise<float>(ds, x.data(), nullptr, 2, dim, {}, xt.data(), nullptr),
                       ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::forward_noise<float>(ds, x.data(), dt.data(), 0, dim, {}, xt.data(), nullptr),
                       ddpm::invalid_argument);
}

DDPM_CUDA_TEST_MAIN()
