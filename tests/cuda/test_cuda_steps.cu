// The fused reverse steps on the device against the CPU:
//   * DDPM: ddpm::cuda::ddpm_step = ddpm_scheduler::step (per-sample timesteps,
//     the same counter noise) for every prediction type, variance type,
//     clipping mode and profile;
//   * DDIM: ddpm::cuda::ddim_step = ddim_scheduler::step;
//   * dynamic thresholding's per-sample quantile = core's torch.quantile, bit
//     for bit, cached in shared memory or not;
//   * the vector and scalar work splits give the same bits.
// Within float rounding by default (nvcc contracts a·b + c into FMA); built
// with -fmad=false (test_cuda_steps_exact, DDPM_TEST_EXACT) the fixed-variance
// steps must equal the CPU bit for bit.
#include "device_util.cuh"

#include <ddpm/core/clipping.hpp>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#ifndef DDPM_TEST_EXACT
#define DDPM_TEST_EXACT 0
#endif

using namespace ddpm_cuda_test;
using ddpm::timestep_t;

namespace {

constexpr std::int64_t dims[] = {1, 17, 64, 100, 128, 192, 4096};

template <class V>
std::vector<V> values(std::size_t n, std::uint64_t seed, double scale) {
    std::vector<V> v(n);
    ddpm::random::counter_engine e(seed, 1, 2);
    for (auto& x : v) x = static_cast<V>(scale * e.normal());
    return v;
}

const char* clip_name(const ddpm::clip_options& c) {
    return c.kind == ddpm::clip_options::mode::none ? "none" : (c.kind == ddpm::clip_options::mode::clip ? "clip" : "dynamic");
}

/// Tolerance in roundoffs of T (relative to max(|ref|, 1)); 0 = bit for bit.
template <class T>
double step_tolerance(bool exp_involved) {
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
        return 4;
    } else {
        if (DDPM_TEST_EXACT && !exp_involved) return 0;
        return 512; // x̂_0 = a·x_t − b·out cancels up to 1/√ᾱ ≈ 160× at t = T − 1
    }
}

template <class T>
void compare(const std::vector<T>& got, const std::vector<double>& ref, double tol, const std::string& what) {
    const double r = roundoffs<T>(got, ref);
    if (tol == 0) {
        const auto gc = to_compute(got);
        std::vector<compute<T>> rc(ref.begin(), ref.end());
        DDPM_EXPECT(bitwise_equal<compute<T>>(gc, rc)) << what << ": " << r << " roundoffs, expected bit-identical";
    } else {
        DDPM_EXPECT(r <= tol) << what << ": " << r << " roundoffs > " << tol;
    }
}

/// Runs one step on the device twice — aligned (vector path when D % 64 == 0)
/// and shifted by one element (scalar path) — and checks both give the same bits.
template <class T, class Run>
std::pair<std::vector<T>, std::vector<T>> run_both_paths(std::size_t n, std::size_t out_n, const std::vector<T>& x,
                                                         const std::vector<T>& out, Run&& run, const std::string& what) {
    std::vector<T> prev[2], x0[2];
    for (int shift = 0; shift < 2; ++shift) {
        ddpm::cuda::device_buffer<T> dx(n + 1), dout(out_n + 1), dprev(n + 1), dx0(n + 1);
        DDPM_CUDA_CHECK(cudaMemcpy(dx.data() + shift, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
        DDPM_CUDA_CHECK(cudaMemcpy(dout.data() + shift, out.data(), out_n * sizeof(T), cudaMemcpyHostToDevice));
        poison(dprev);
        poison(dx0);
        ddpm::cuda::step_buffers<T> buf;
        buf.model_output = dout.data() + shift;
        buf.xt = dx.data() + shift;
        buf.x_prev = dprev.data() + shift;
        buf.pred_x0 = dx0.data() + shift;
        run(buf);
        prev[shift].resize(n);
        x0[shift].resize(n);
        DDPM_CUDA_CHECK(cudaMemcpy(prev[shift].data(), dprev.data() + shift, n * sizeof(T), cudaMemcpyDeviceToHost));
        DDPM_CUDA_CHECK(cudaMemcpy(x0[shift].data(), dx0.data() + shift, n * sizeof(T), cudaMemcpyDeviceToHost));
    }
    DDPM_EXPECT(bitwise_equal<T>(prev[0], prev[1])) << what << ": vector and scalar paths differ (x_prev)";
    DDPM_EXPECT(bitwise_equal<T>(x0[0], x0[1])) << what << ": vector and scalar paths differ (x0)";
    return {prev[0], x0[0]};
}

template <class T>
void check_ddpm(ddpm::profile p, ddpm::prediction_type pred, ddpm::variance_type var, const ddpm::clip_options& clip) {
    using C = compute<T>;
    const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
    const ddpm::model_options opt{pred, var, clip};
    ddpm::ddpm_scheduler<C> sch(s, opt);
    if (p == ddpm::profile::diffusers) sch.set_timesteps(50);
    const auto chain = sch.timesteps();
    const std::vector<timestep_t> ts{chain[0], chain[chain.size() / 2], chain[chain.size() - 1]};
    const auto recs = ddpm::cuda::ddpm_step_records<T>(sch, ts);
    const ddpm::cuda::device_buffer<ddpm::cuda::ddpm_record<T>> drec(recs);
    const bool learned = ddpm::is_learned(var);
    const std::size_t batch = ts.size();
    ddpm::cuda::device_buffer<C> thresholds(batch);
    const bool exp_involved = var == ddpm::variance_type::learned_range ||
                              (var == ddpm::variance_type::learned && p != ddpm::profile::diffusers);
    for (const std::int64_t dim : dims) {
        const auto D = static_cast<std::size_t>(dim);
        const std::size_t n = batch * D, out_n = (learned ? 2 : 1) * n;
        const auto x = to_storage<T>(values<C>(n, 10 + D, 1.5));
        std::vector<C> outc(out_n);
        toy_model<C>{var}(to_compute(x), ts, outc);
        const auto out = to_storage<T>(outc);
        // The CPU on exactly the values the device reads.
        const auto xc = to_compute(x);
        outc = to_compute(out);
        std::vector<C> z(n);
        for (std::size_t b = 0; b < batch; ++b) {
            const auto zb = normals<C>(2024, static_cast<std::uint32_t>(3 + b), recs[b].noise_step, 1, D);
            std::copy(zb.begin(), zb.end(), z.begin() + static_cast<std::ptrdiff_t>(b * D));
        }
        std::vector<C> ref_prev(n), ref_x0(n);
        sch.step(outc, ts, xc, z, ref_prev, ref_x0);

        const std::string what = std::string(ddpm::to_string(p)) + " " + std::string(ddpm::to_string(pred)) + " " +
                                 std::string(ddpm::to_string(var)) + " clip " + clip_name(clip) + " dim " +
                                 std::to_string(dim) + " sizeof(T) " + std::to_string(sizeof(T));
        const auto [prev, x0] = run_both_paths<T>(n, out_n, x, out, [&](ddpm::cuda::step_buffers<T>& buf) {
            buf.thresholds = thresholds.data();
            ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, static_cast<std::int64_t>(batch), dim, opt,
                                     ddpm::cuda::sigma_mode_of(var, s.profile()), {2024, 3});
        }, what);
        const double tol = step_tolerance<T>(exp_involved);
        compare<T>(prev, widen(ref_prev), tol, what + " x_prev");
        compare<T>(x0, widen(ref_x0), step_tolerance<T>(false), what + " x0");
    }
}

template <class T>
void check_ddim(ddpm::profile p, ddpm::prediction_type pred, const ddpm::clip_options& clip, double eta,
                bool use_clipped) {
    using C = compute<T>;
    const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
    const ddpm::model_options opt{pred, ddpm::variance_type::fixed_small, clip};
    ddpm::ddim_options d;
    d.eta = eta;
    d.use_clipped_model_output = use_clipped;
    ddpm::ddim_scheduler<C> sch(s, opt, d);
    sch.set_timesteps(50);
    const auto chain = sch.timesteps();
    const std::vector<timestep_t> ts{chain[0], chain[chain.size() / 2], chain[chain.size() - 1]};
    const auto recs = ddpm::cuda::ddim_step_records<T>(sch, ts);
    const ddpm::cuda::device_buffer<ddpm::cuda::ddim_record<T>> drec(recs);
    const std::size_t batch = ts.size();
    ddpm::cuda::device_buffer<C> thresholds(batch);
    for (const std::int64_t dim : dims) {
        const auto D = static_cast<std::size_t>(dim);
        const std::size_t n = batch * D;
        const auto x = to_storage<T>(values<C>(n, 20 + D, 1.5));
        std::vector<C> outc(n);
        toy_model<C>{}(to_compute(x), ts, outc);
        const auto out = to_storage<T>(outc);
        const auto xc = to_compute(x);
        outc = to_compute(out);
        std::vector<C> z(n);
        for (std::size_t b = 0; b < batch; ++b) {
            const auto zb = normals<C>(55, static_cast<std::uint32_t>(b), recs[b].noise_step, 1, D);
            std::copy(zb.begin(), zb.end(), z.begin() + static_cast<std::ptrdiff_t>(b * D));
        }
        std::vector<C> ref_prev(n), ref_x0(n);
        sch.step(outc, ts, xc, z, ref_prev, ref_x0);
        const std::string what = std::string("ddim ") + std::string(ddpm::to_string(p)) + " " +
                                 std::string(ddpm::to_string(pred)) + " clip " + clip_name(clip) + " eta " +
                                 std::to_string(eta) + " use_clipped " + std::to_string(use_clipped) + " dim " +
                                 std::to_string(dim) + " sizeof(T) " + std::to_string(sizeof(T));
        const auto [prev, x0] = run_both_paths<T>(n, n, x, out, [&](ddpm::cuda::step_buffers<T>& buf) {
            buf.thresholds = thresholds.data();
            ddpm::cuda::ddim_step<T>(drec.data(), 1, buf, static_cast<std::int64_t>(batch), dim, opt, {55, 0});
        }, what);
        compare<T>(prev, widen(ref_prev), step_tolerance<T>(false), what + " x_prev");
        compare<T>(x0, widen(ref_x0), step_tolerance<T>(false), what + " x0");
    }
}

template <class T>
void ddpm_sweep(std::initializer_list<ddpm::profile> profiles) {
    using ddpm::prediction_type;
    using ddpm::variance_type;
    for (const auto p : profiles)
        for (const auto pred : {prediction_type::epsilon, prediction_type::sample, prediction_type::v_prediction})
            for (const auto var : {variance_type::fixed_small, variance_type::fixed_large, variance_type::fixed_large_log,
                                   variance_type::learned, variance_type::learned_range})
                for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::clip(1.0),
                                         ddpm::clip_options::dynamic(0.9, 1.5)})
                    check_ddpm<T>(p, pred, var, clip);
}

template <class T>
void ddim_sweep(std::initializer_list<ddpm::profile> profiles) {
    using ddpm::prediction_type;
    for (const auto p : profiles)
        for (const auto pred : {prediction_type::epsilon, prediction_type::sample, prediction_type::v_prediction})
            for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::clip(1.0),
                                     ddpm::clip_options::dynamic(0.95, 2.0)})
                for (const double eta : {0.0, 1.0})
                    for (const bool use_clipped : {false, true}) check_ddim<T>(p, pred, clip, eta, use_clipped);
}

/// dynamic_thresholds with x̂_0 = the output (sample prediction): the
/// device's s_b must equal core's clamp(quantile_linear(|x̂_0|), 1, max).
template <class T>
void check_thresholds() {
    using C = compute<T>;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const ddpm::model_options opt{ddpm::prediction_type::sample, ddpm::variance_type::fixed_small,
                                  ddpm::clip_options::dynamic(0.995, 3.0)};
    ddpm::ddpm_scheduler<C> sch(s, opt);
    const std::vector<timestep_t> ts{999};
    const auto rec = ddpm::cuda::ddpm_step_records<T>(sch, ts);
    const ddpm::cuda::device_buffer<ddpm::cuda::ddpm_record<T>> drec(rec);
    const std::int64_t cache_limit = static_cast<std::int64_t>(40 * 1024 / sizeof(ddpm::kernels::scalar::radix_key_t<C>));
    for (const std::int64_t dim : {std::int64_t{1}, std::int64_t{2}, std::int64_t{3}, std::int64_t{100},
                                   std::int64_t{4096}, cache_limit, cache_limit + 1, std::int64_t{70000}}) {
        for (const int ties : {0, 1}) {
            for (const double ratio : {0.995, 0.5, 0.0}) {
                const std::size_t batch = dim > 10000 ? 3 : 37;
                const auto D = static_cast<std::size_t>(dim);
                auto vals = values<C>(batch * D, 99 + D, 2.0);
                if (ties) for (auto& v : vals) v = std::round(v * C(4)) / C(4);
                const auto out = to_storage<T>(vals);
                const auto outc = to_compute(out);
                const auto x = to_storage<T>(values<C>(batch * D, 7, 1.0));
                const auto dout = to_device(out);
                const auto dx = to_device(x);
                ddpm::cuda::device_buffer<C> th(batch);
                poison(th);
                auto clip = ddpm::clip_options::dynamic(ratio, 3.0);
                ddpm::cuda::dynamic_thresholds<T>(drec.data(), 0, dout.data(), dim, dx.data(),
                                                  static_cast<std::int64_t>(batch), dim, clip, th.data());
                const auto got = to_host(th);
                std::vector<C> absv(D), scratch(D), ref(batch);
                for (std::size_t b = 0; b < batch; ++b) {
                    for (std::size_t i = 0; i < D; ++i) absv[i] = std::abs(outc[b * D + i]);
                    const C q = ddpm::detail::quantile_linear<C>(absv, static_cast<C>(ratio), scratch);
                    ref[b] = std::min(std::max(q, C(1)), static_cast<C>(3.0));
                }
                DDPM_EXPECT(bitwise_equal<C>(got, ref)) << "dim " << dim << " ties " << ties << " ratio " << ratio
                                                        << " cached " << (dim <= cache_limit) << " sizeof(T) "
                                                        << sizeof(T) << " first got " << got[0] << " ref " << ref[0];
            }
        }
    }
}

} // namespace

DDPM_CUDA_TEST(ddpm_step_float) { ddpm_sweep<float>({ddpm::profile::standard, ddpm::profile::improved_diffusion, ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddpm_step_double) { ddpm_sweep<double>({ddpm::profile::standard, ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddpm_step_half) { ddpm_sweep<__half>({ddpm::profile::standard}); }
DDPM_CUDA_TEST(ddpm_step_bfloat16) { ddpm_sweep<__nv_bfloat16>({ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddim_step_float) { ddim_sweep<float>({ddpm::profile::standard, ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddim_step_double) { ddim_sweep<double>({ddpm::profile::standard, ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddim_step_half) { ddim_sweep<__half>({ddpm::profile::diffusers}); }
DDPM_CUDA_TEST(ddim_step_bfloat16) { ddim_sweep<__nv_bfloat16>({ddpm::profile::standard}); }
DDPM_CUDA_TEST(thresholds_float) { check_thresholds<float>(); }
DDPM_CUDA_TEST(thresholds_double) { check_thresholds<double>(); }
DDPM_CUDA_TEST(thresholds_half) { check_thresholds<__half>(); }

/// torch.quantile's NaN rule: a NaN anywhere in a sample's |x̂_0| makes its s_b NaN
/// (even a NaN that would sort above the wanted rank); other samples are unaffected.
DDPM_CUDA_TEST(thresholds_nan_as_torch_quantile) {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const ddpm::model_options opt{ddpm::prediction_type::sample, ddpm::variance_type::fixed_small,
                                  ddpm::clip_options::dynamic(0.5, 3.0)};
    ddpm::ddpm_scheduler<float> sch(s, opt);
    const auto rec = ddpm::cuda::ddpm_step_records<float>(sch, std::vector<timestep_t>{999});
    const ddpm::cuda::device_buffer<ddpm::cuda::ddpm_record<float>> drec(rec);
    for (const std::int64_t dim : {std::int64_t{100}, std::int64_t{20000}}) { // cached and uncached keys
        const auto D = static_cast<std::size_t>(dim);
        auto out = values<float>(3 * D, 5, 1.0);
        out[D + 7] = std::numeric_limits<float>::quiet_NaN(); // sample 1: one NaN, far above the median's rank
        const auto dout = to_device(out);
        const auto dx = to_device(values<float>(3 * D, 6, 1.0));
        ddpm::cuda::device_buffer<float> th(3);
        ddpm::cuda::dynamic_thresholds<float>(drec.data(), 0, dout.data(), dim, dx.data(), 3, dim, opt.clip, th.data());
        const auto got = to_host(th);
        DDPM_EXPECT(!std::isnan(got[0]) && std::isnan(got[1]) && !std::isnan(got[2]))
            << "dim " << dim << ": " << got[0] << " " << got[1] << " " << got[2];
    }
}

DDPM_CUDA_TEST(bad_step_arguments_throw) {
    using T = float;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::ddpm_scheduler<float> sch(s, {});
    const std::vector<timestep_t> ts{10, 20};
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step_records<T>(sch, std::vector<timestep_t>{1000}), ddpm::invalid_argument);
    const auto recs = ddpm::cuda::ddpm_step_records<T>(sch, ts);
    const ddpm::cuda::device_buffer<ddpm::cuda::ddpm_record<T>> drec(recs);
    ddpm::cuda::device_buffer<T> x(2 * 64), out(2 * 64), prev(2 * 64);
    ddpm::cuda::step_buffers<T> buf;
    buf.model_output = out.data();
    buf.xt = x.data();
    buf.x_prev = prev.data();
    const ddpm::model_options fixed{};
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step<T>(nullptr, 1, buf, 2, 64, fixed, ddpm::cuda::sigma_mode::fixed, {}),
                       ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, 0, 64, fixed, ddpm::cuda::sigma_mode::fixed, {}),
                       ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, 2, 64, fixed, ddpm::cuda::sigma_mode::learned_range, {}),
                       ddpm::invalid_argument);
    ddpm::model_options dyn{};
    dyn.clip = ddpm::clip_options::dynamic();
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, 2, 64, dyn, ddpm::cuda::sigma_mode::fixed, {}),
                       ddpm::invalid_argument); // no threshold scratch
    ddpm::model_options bad{};
    bad.clip = ddpm::clip_options::clip(-1.0);
    DDPM_EXPECT_THROWS(ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, 2, 64, bad, ddpm::cuda::sigma_mode::fixed, {}),
                       ddpm::invalid_argument);
    // A valid call, then the record stride checked by the noexcept launcher.
    ddpm::cuda::ddpm_step<T>(drec.data(), 1, buf, 2, 64, fixed, ddpm::cuda::sigma_mode::fixed, {});
    DDPM_CUDA_CHECK(cudaDeviceSynchronize());
    ddpm::kernels::grid::reverse_args<T, ddpm::kernels::scalar::reverse_coefficients<float>> a;
    a.model_output = out.data();
    a.xt = x.data();
    a.x_prev = prev.data();
    a.records = drec.data();
    a.record_stride = 2;
    a.batch = 2;
    a.dim = 64;
    a.out_stride = 64;
    const auto st = ddpm::cuda::launch_reverse(a, nullptr);
    DDPM_EXPECT(st.bad_argument() && std::string(st.parameter) == "record_stride");
}

DDPM_CUDA_TEST_MAIN()
