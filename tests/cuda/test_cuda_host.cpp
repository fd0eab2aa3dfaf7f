// The host/device code of the CUDA kernels, tested on the host (label
// `cuda_host`; runs in every build, with or without CUDA):
//
//   * quantile helpers and the radix selection = core's torch.quantile;
//   * the CPU DDIM scheduler's coefficients, converted for the kernels
//     (grid::kernel_coefficients), through the element functions the kernels
//     run = diffusers' DDIMScheduler.step (tests/data/ddim_step.json);
//   * every kernel's per-thread body, run as a whole grid on the host
//     (reference.hpp), = the CPU reference, bit for bit: the noise fill, the
//     forward process, the DDPM step (ddpm_scheduler::step) and the DDIM step
//     (ddim_scheduler::step),
//     over prediction types, variance types, clipping modes, profiles, sizes
//     with and without a partial last noise group, and both the scalar and
//     the vector work split;
//   * whole chains simulated with the GPU's records and work split =
//     ddpm::sample and ddpm::ddim_sample with the same counter noise.
#include <catch2/catch.hpp>

#include <ddpm/core/forward.hpp>
#include <ddpm/cuda/host_records.hpp>
#include <ddpm/kernels/grid_threads.hpp>
#include <ddpm/kernels/quantile_scalar.hpp>
#include <ddpm/random/counter_noise.hpp>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>
#include <ddpm/samplers/timesteps.hpp>

#include "reference.hpp"
#include <support/golden.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

using namespace ddpm_cuda_test;
using ddpm::timestep_t;

namespace {

constexpr std::int64_t test_dims[] = {1, 5, 16, 17, 63, 64, 65, 100, 128, 192};

template <class T>
std::vector<T> random_values(std::size_t n, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, scale);
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

const char* name_of(ddpm::clip_options::mode m) {
    switch (m) {
    case ddpm::clip_options::mode::none: return "none";
    case ddpm::clip_options::mode::clip: return "clip";
    case ddpm::clip_options::mode::dynamic_threshold: return "dynamic";
    }
    return "?";
}

grid::clip_mode grid_clip(const ddpm::clip_options& c) {
    switch (c.kind) {
    case ddpm::clip_options::mode::none: return grid::clip_mode::none;
    case ddpm::clip_options::mode::clip: return grid::clip_mode::clip;
    case ddpm::clip_options::mode::dynamic_threshold: return grid::clip_mode::dynamic;
    }
    return grid::clip_mode::none;
}

} // namespace

// ---------------------------------------------------------------------------
// Quantile

TEMPLATE_TEST_CASE("quantile position, lerp and radix selection equal core's torch.quantile", "[cuda_host][quantile]",
                   float, double) {
    using T = TestType;
    const T qs[] = {T(0), T(0.5), T(0.9), T(0.995), T(1) / T(3), T(0.999999)};
    std::mt19937_64 g(42);
    for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{10}, std::size_t{64},
                                std::size_t{257}, std::size_t{1000}, std::size_t{4099}}) {
        for (int variant = 0; variant < 3; ++variant) {
            std::vector<T> v = random_values<T>(n, 1000 * n + static_cast<std::uint64_t>(variant), 2.0);
            if (variant == 1) // heavy ties: a few distinct magnitudes of both signs
                for (auto& x : v) x = std::round(x * T(2)) / T(2);
            if (variant == 2) // tiny, zero and huge values, ±0
                for (std::size_t i = 0; i < n; ++i)
                    v[i] = (i % 5 == 0) ? T(0) : (i % 5 == 1 ? -T(0) : (i % 5 == 2 ? v[i] * T(1e-30) : v[i] * T(1e20)));
            std::vector<T> absv(n), scratch(n);
            for (std::size_t i = 0; i < n; ++i) absv[i] = std::abs(v[i]);
            for (const T q : qs) {
                INFO("n = " << n << ", variant " << variant << ", q = " << q);
                const T ref = ddpm::detail::quantile_linear<T>(absv, q, scratch);
                const auto pos = ks::quantile_rank<T>(q, n);
                // The rank arithmetic is the same as core's.
                const T rank = q * static_cast<T>(n - 1);
                CHECK(pos.below == static_cast<std::size_t>(rank));
                CHECK(pos.above == static_cast<std::size_t>(std::ceil(rank)));
                // Sorting and lerping with the helpers gives core's value exactly.
                std::vector<T> sorted = absv;
                std::sort(sorted.begin(), sorted.end());
                const T lo = sorted[pos.below];
                const T hi = pos.above != pos.below ? sorted[pos.below + 1] : lo;
                CHECK(ks::quantile_lerp(lo, hi, pos.weight) == ref);
                // The radix selection (the CUDA kernel's decisions, in sequence) too.
                const T sel = ks::radix_quantile_reference<T>(n, [&](std::uint64_t i) { return v[i]; }, pos);
                CHECK(sel == ref);
            }
        }
    }
}

TEST_CASE("threshold scale and element match core's dynamic thresholding", "[cuda_host][quantile]") {
    const std::size_t dim = 50, batch = 3;
    auto x0 = random_values<float>(batch * dim, 7, 3.0);
    auto ref = x0;
    std::vector<float> scratch(2 * dim);
    const auto opt = ddpm::clip_options::dynamic(0.9, 2.5);
    ddpm::apply_clipping<float>(opt, ref, dim, scratch);
    const auto pos = ks::quantile_rank<float>(0.9f, dim);
    for (std::size_t b = 0; b < batch; ++b) {
        const float q = ks::radix_quantile_reference<float>(dim, [&](std::uint64_t i) { return x0[b * dim + i]; }, pos);
        const float s = ks::threshold_scale(q, 2.5f);
        for (std::size_t i = 0; i < dim; ++i) CHECK(ks::apply_threshold(x0[b * dim + i], s) == ref[b * dim + i]);
    }
    CHECK(ks::threshold_scale(0.5f, 2.0f) == 1.0f);
    CHECK(ks::threshold_scale(3.0f, 2.0f) == 2.0f);
    CHECK(ks::threshold_scale(1.5f, 2.0f) == 1.5f);
    const std::uint32_t hist[ks::radix_bins] = {2, 0, 3};
    const auto c = ks::radix_choose(hist, 3);
    CHECK(c.digit == 2);
    CHECK(c.rank == 1);
    CHECK(c.count == 3);
}

// ---------------------------------------------------------------------------
// DDIM coefficients

namespace {

template <class T>
double ddim_golden_mode(const std::string& mode, double tol) {
    const auto& g = ddpm_test::golden("ddim_step.json");
    const ddpm::noise_schedule s(ddpm::schedule_config{}, ddpm::profile::diffusers);
    const auto x = ddpm_test::values<T>(g.at("inputs").at("x"));
    const auto noise = ddpm_test::values<T>(g.at("inputs").at("noise"));
    const std::size_t batch = 2, dim = x.size() / batch;
    double worst = 0;
    int checked = 0;
    for (const auto& cfg : g.at("configs")) {
        const auto& c = cfg.at("config");
        ddpm::ddim_options d;
        d.set_alpha_to_one = c.at("set_alpha_to_one") == true;
        d.use_clipped_model_output = cfg.at("use_clipped_model_output") == true;
        d.previous = ddpm::ddim_previous_rule::diffusers; // the golden steps use t − T/N
        const bool clip_sample = c.at("clip_sample") == true;
        const auto spacing = ddpm::timestep_spacing_from_string(c.at("timestep_spacing").template get<std::string>());
        const auto offset = static_cast<std::int64_t>(ddpm_test::number(c.at("steps_offset")));
        for (const auto& [key, variants] : cfg.at("steps").items()) {
            const bool v_pred = key.rfind("v_prediction", 0) == 0;
            d.eta = key.back() == '1' ? 1.0 : 0.0;
            const ddpm::model_options opt{v_pred ? ddpm::prediction_type::v_prediction : ddpm::prediction_type::epsilon,
                                          ddpm::variance_type::fixed_small,
                                          clip_sample ? ddpm::clip_options::clip(1.0) : ddpm::clip_options::none()};
            ddpm::ddim_scheduler<T> sch(s, opt, d);
            sch.set_timesteps(50, spacing, offset);
            for (const auto& step : variants.at(mode)) {
                const auto t = static_cast<timestep_t>(ddpm_test::number(step.at("t")));
                const auto prev = static_cast<timestep_t>(ddpm_test::number(step.at("prev_timestep")));
                INFO(mode << " " << c.dump() << " use_clipped=" << d.use_clipped_model_output << " " << key << " t=" << t);
                const std::size_t p = grid::chain_position("test", sch.timesteps(), t, 0);
                const auto full = sch.position_coefficients(p);
                CHECK(full.params.prev_timestep == prev);
                const auto coef = grid::kernel_coefficients(full);
                // The toy network, rounded as torch rounds it in this precision.
                std::vector<T> out(x.size());
                const T scale = static_cast<T>(0.5 + static_cast<double>(t) / 1000.0);
                for (std::size_t i = 0; i < x.size(); ++i)
                    out[i] = std::tanh(T(0.7) * x[i]) * scale + T(0.05) * x[i];
                const std::vector<ks::ddim_coefficients<T>> coefs(batch, coef);
                std::vector<T> prev_sample(x.size()), x0(x.size());
                cpu_ddim_step<T>(coefs, opt.clip, out, dim, x,
                                 d.eta > 0 ? std::span<const T>(noise) : std::span<const T>(), prev_sample, x0);
                const double d1 = max_rel<T, double>(prev_sample, ddpm_test::values(step.at("prev_sample")));
                const double d2 = max_rel<T, double>(x0, ddpm_test::values(step.at("pred_original_sample")));
                CHECK(d1 <= tol);
                CHECK(d2 <= tol);
                worst = std::max({worst, d1, d2});
                ++checked;
            }
        }
    }
    CHECK(checked == 14 * 4 * 5);
    return worst;
}

} // namespace

TEST_CASE("the kernels' DDIM coefficients and element functions reproduce DDIMScheduler.step in float64", "[cuda_host][ddim][parity]") {
    const double w = ddim_golden_mode<double>("f64", 1e-12);
    std::cout << "[ddim_step f64, diffusers profile] worst relative diff " << w << "\n";
}

TEST_CASE("the kernels' DDIM coefficients and element functions reproduce DDIMScheduler.step in float32", "[cuda_host][ddim][parity]") {
    const double w = ddim_golden_mode<float>("f32", 5e-5);
    std::cout << "[ddim_step f32, diffusers profile] worst relative diff " << w << "\n";
}

// ---------------------------------------------------------------------------
// Kernels as host grids

TEST_CASE("the fill kernel's threads draw random::fill_normal / fill_uniform bit for bit", "[cuda_host][noise]") {
    struct params {
        std::uint64_t seed;
        std::uint32_t first_sample, step;
        std::uint64_t offset;
        std::int64_t dim;
    };
    const params cases[] = {{0, 0, 0, 0, 1},          {1, 3, 7, 0, 64},       {0x123456789abcdefull, 0, 1, 5, 100},
                            {42, 1000, 999, 63, 2},   {7, 0xFFFFFFF0u, 5, 64, 129}, {99, 2, 0, (1ull << 40) + 17, 300}};
    for (const auto& c : cases) {
        for (const bool uniform : {false, true}) {
            INFO("seed " << c.seed << " sample " << c.first_sample << " step " << c.step << " offset " << c.offset
                         << " dim " << c.dim << " uniform " << uniform);
            const std::int64_t batch = 3;
            std::vector<float> got(static_cast<std::size_t>(batch * c.dim), std::numeric_limits<float>::quiet_NaN());
            for (const auto version : {ddpm::random::noise_version::v1, ddpm::random::noise_version::v2}) {
                INFO("version " << unsigned(version));
                grid::fill_args<float> a;
                a.out = got.data();
                a.batch = batch;
                a.dim = c.dim;
                a.seed = c.seed;
                a.step = c.step;
                a.first_sample = c.first_sample;
                a.element_offset = c.offset;
                a.uniform = uniform;
                a.version = version;
                run_fill_grid(a);
                for (std::int64_t b = 0; b < batch; ++b) {
                    const auto sample = static_cast<std::uint32_t>(c.first_sample + static_cast<std::uint64_t>(b));
                    const auto ref = fill_reference(c.seed, sample, c.step, c.offset, static_cast<std::size_t>(c.dim),
                                                    uniform, version);
                    const std::span<const float> row(got.data() + b * c.dim, static_cast<std::size_t>(c.dim));
                    CHECK(max_ulp<float>(row, ref) == 0);
                    CHECK(std::memcmp(row.data(), ref.data(), ref.size() * sizeof(float)) == 0);
                }
            }
        }
    }
}

TEMPLATE_TEST_CASE("the forward kernel's threads equal ddpm::q_sample with the same noise", "[cuda_host][forward]",
                   float, double) {
    using T = TestType;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::diffusers}) {
        const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
        const auto tab = grid::make_forward_tables<T>(s);
        for (const std::int64_t dim : test_dims) {
            for (const int path_and_version : {0, 1, 2, 3}) {
                const bool vector_path = path_and_version >= 2;
                const auto version = path_and_version % 2 == 0 ? ddpm::random::noise_version::v1
                                                               : ddpm::random::noise_version::v2;
                if (vector_path && dim % 64 != 0) continue;
                INFO("profile " << ddpm::to_string(p) << " dim " << dim << " vector " << vector_path << " version "
                                << unsigned(version));
                const std::vector<timestep_t> ts{0, 17, 999, 500};
                const std::int64_t batch = static_cast<std::int64_t>(ts.size());
                const auto n = static_cast<std::size_t>(batch * dim);
                const auto x0 = random_values<T>(n, 3);
                const T nan = std::numeric_limits<T>::quiet_NaN();
                std::vector<T> xt(n, nan), eps(n, nan), v(n, nan);
                grid::forward_args<T> a;
                a.x0 = x0.data();
                a.xt = xt.data();
                a.eps_out = eps.data();
                a.v_out = v.data();
                a.timesteps = ts.data();
                a.coef_a = tab.a.data();
                a.coef_b = tab.b.data();
                a.num_timesteps = s.size();
                a.batch = batch;
                a.dim = dim;
                a.seed = 77;
                a.step = 12;
                a.first_sample = 5;
                a.version = version;
                int flag = 0;
                a.error_flag = &flag;
                run_forward_grid(a, vector_path);
                const auto z = normals<T>(77, 5, 12, ts.size(), static_cast<std::size_t>(dim), version);
                std::vector<T> ref(n), ref_v(n);
                ddpm::q_sample(s, x0, z, ts, ref);
                ddpm::get_velocity(s, x0, z, ts, ref_v);
                CHECK(max_ulp<T>(eps, z) == 0);
                CHECK(max_ulp<T>(xt, ref) == 0);
                CHECK(max_ulp<T>(v, ref_v) == 0);
                CHECK(flag == 0);

                // Caller noise: the same x_t.
                std::vector<T> xt2(n, nan);
                a.noise_in = z.data();
                a.eps_out = nullptr;
                a.v_out = nullptr;
                a.xt = xt2.data();
                run_forward_grid(a, vector_path);
                CHECK(max_ulp<T>(xt2, ref) == 0);
            }
        }
        // A timestep outside [0, T): NaN for that sample, the flag raised, the others intact.
        const std::vector<timestep_t> ts{3, 1000};
        const std::int64_t dim = 70;
        const auto x0 = random_values<T>(static_cast<std::size_t>(2 * dim), 4);
        std::vector<T> xt(x0.size()), eps(x0.size());
        grid::forward_args<T> a;
        a.x0 = x0.data();
        a.xt = xt.data();
        a.eps_out = eps.data();
        a.timesteps = ts.data();
        a.coef_a = tab.a.data();
        a.coef_b = tab.b.data();
        a.num_timesteps = s.size();
        a.batch = 2;
        a.dim = dim;
        int flag = 0;
        a.error_flag = &flag;
        run_forward_grid(a, false);
        CHECK(flag == grid::error_bad_timestep);
        CHECK(std::all_of(xt.begin() + dim, xt.end(), [](T v) { return std::isnan(v); }));
        CHECK(std::none_of(xt.begin(), xt.begin() + dim, [](T v) { return std::isnan(v); }));
    }
}

namespace {

template <class T>
void check_ddpm_threads(ddpm::profile p, ddpm::prediction_type pred, ddpm::variance_type var,
                        const ddpm::clip_options& clip) {
    const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
    const ddpm::model_options opt{pred, var, clip};
    ddpm::ddpm_scheduler<T> sch(s, opt);
    if (p == ddpm::profile::diffusers) sch.set_timesteps(50); // a strided chain too
    const auto chain = sch.timesteps();
    const std::vector<timestep_t> ts{chain[0], chain[chain.size() / 2], chain[chain.size() - 1]};
    const std::size_t batch = ts.size();
    const auto recs = [&] {
        std::vector<grid::step_record<ks::reverse_coefficients<T>>> r;
        for (std::size_t b = 0; b < batch; ++b)
            r.push_back(grid::ddpm_position_record(sch, grid::chain_position("test", chain, ts[b], b)));
        return r;
    }();
    const bool learned = ddpm::is_learned(var);
    const toy_model<T> model{var};
    for (const std::int64_t dim : test_dims) {
        const auto D = static_cast<std::size_t>(dim);
        const auto n = batch * D;
        const auto x = random_values<T>(n, 11 + D, 1.5);
        std::vector<T> out((learned ? 2 : 1) * n);
        model(x, ts, out);
        // CPU: the scheduler's step with the counter noise of each sample's step.
        std::vector<T> z(n);
        for (std::size_t b = 0; b < batch; ++b) {
            const auto zb = normals<T>(2024, static_cast<std::uint32_t>(3 + b), recs[b].noise_step, 1, D);
            std::copy(zb.begin(), zb.end(), z.begin() + static_cast<std::ptrdiff_t>(b * D));
        }
        std::vector<T> ref_prev(n), ref_x0(n);
        sch.step(out, ts, x, z, ref_prev, ref_x0);

        // GPU threads: thresholds first, then the step.
        std::vector<T> th(batch);
        grid::threshold_args<T, ks::reverse_coefficients<T>> ta;
        ta.model_output = out.data();
        ta.xt = x.data();
        ta.records = recs.data();
        ta.batch = static_cast<std::int64_t>(batch);
        ta.dim = dim;
        ta.out_stride = (learned ? 2 : 1) * dim;
        ta.position = ks::quantile_rank<T>(static_cast<T>(clip.dynamic_thresholding_ratio), D);
        ta.max_value = static_cast<T>(clip.sample_max_value);
        ta.thresholds = th.data();
        if (clip.kind == ddpm::clip_options::mode::dynamic_threshold) run_threshold_reference(ta);

        for (const bool vector_path : {false, true}) {
            if (vector_path && dim % 64 != 0) continue;
            for (const bool caller_noise : {false, true}) {
                INFO(ddpm::to_string(p) << " " << ddpm::to_string(pred) << " " << ddpm::to_string(var) << " clip "
                                        << name_of(clip.kind) << " dim " << dim << " vector " << vector_path
                                        << " caller noise " << caller_noise);
                const T nan = std::numeric_limits<T>::quiet_NaN();
                std::vector<T> prev(n, nan), x0(n, nan);
                grid::reverse_args<T, ks::reverse_coefficients<T>> a;
                a.model_output = out.data();
                a.xt = x.data();
                a.x_prev = prev.data();
                a.pred_x0 = x0.data();
                a.noise_in = caller_noise ? z.data() : nullptr;
                a.records = recs.data();
                a.record_stride = 1;
                a.clip = grid_clip(clip);
                a.clip_range = static_cast<T>(clip.clip_range);
                a.thresholds = th.data();
                a.sigma = grid::sigma_mode_of(var, p);
                a.batch = static_cast<std::int64_t>(batch);
                a.dim = dim;
                a.out_stride = ta.out_stride;
                a.seed = 2024;
                a.first_sample = 3;
                run_reverse_grid(a, vector_path);
                CHECK(max_ulp<T>(prev, ref_prev) == 0);
                CHECK(max_ulp<T>(x0, ref_x0) == 0);
            }
        }
    }
}

} // namespace

TEMPLATE_TEST_CASE("the DDPM step kernel's threads equal ddpm_scheduler::step", "[cuda_host][ddpm]", float, double) {
    using T = TestType;
    using ddpm::prediction_type;
    using ddpm::variance_type;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::improved_diffusion, ddpm::profile::diffusers})
        for (const auto pred : {prediction_type::epsilon, prediction_type::sample, prediction_type::v_prediction})
            for (const auto var : {variance_type::fixed_small, variance_type::fixed_large, variance_type::fixed_small_log,
                                   variance_type::learned, variance_type::learned_range})
                for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::clip(1.0),
                                         ddpm::clip_options::dynamic(0.9, 1.5)})
                    check_ddpm_threads<T>(p, pred, var, clip);
}

namespace {

template <class T>
void check_ddim_threads(ddpm::profile p, ddpm::prediction_type pred, const ddpm::clip_options& clip, double eta,
                        bool use_clipped, bool learned_channels) {
    const ddpm::noise_schedule s(ddpm::schedule_config{}, p);
    const ddpm::model_options opt{pred, learned_channels ? ddpm::variance_type::learned_range
                                                         : ddpm::variance_type::fixed_small,
                                  clip};
    ddpm::ddim_options d;
    d.eta = eta;
    d.use_clipped_model_output = use_clipped;
    ddpm::ddim_scheduler<T> sch(s, opt, d);
    sch.set_timesteps(50);
    const auto chain = sch.timesteps();
    const std::vector<timestep_t> ts{chain[0], chain[20], chain[chain.size() - 1]};
    std::vector<grid::step_record<ks::ddim_coefficients<T>>> recs;
    for (std::size_t b = 0; b < ts.size(); ++b)
        recs.push_back(grid::ddim_position_record(sch, grid::chain_position("test", chain, ts[b], b)));
    const std::size_t batch = recs.size();
    const toy_model<T> model{opt.variance};
    for (const std::int64_t dim : test_dims) {
        const auto D = static_cast<std::size_t>(dim);
        const std::size_t stride = (learned_channels ? 2 : 1) * D;
        const auto n = batch * D;
        const auto x = random_values<T>(n, 5 + D, 1.5);
        std::vector<T> out(batch * stride);
        model(x, ts, out);
        std::vector<T> z(n);
        for (std::size_t b = 0; b < batch; ++b) {
            const auto zb = normals<T>(9, static_cast<std::uint32_t>(b), recs[b].noise_step, 1, D);
            std::copy(zb.begin(), zb.end(), z.begin() + static_cast<std::ptrdiff_t>(b * D));
        }
        std::vector<T> ref_prev(n), ref_x0(n);
        sch.step(out, ts, x, z, ref_prev, ref_x0);

        std::vector<T> th(batch);
        grid::threshold_args<T, ks::ddim_coefficients<T>> ta;
        ta.model_output = out.data();
        ta.xt = x.data();
        ta.records = recs.data();
        ta.batch = static_cast<std::int64_t>(batch);
        ta.dim = dim;
        ta.out_stride = static_cast<std::int64_t>(stride);
        ta.position = ks::quantile_rank<T>(static_cast<T>(clip.dynamic_thresholding_ratio), D);
        ta.max_value = static_cast<T>(clip.sample_max_value);
        ta.thresholds = th.data();
        if (clip.kind == ddpm::clip_options::mode::dynamic_threshold) run_threshold_reference(ta);
        for (const bool vector_path : {false, true}) {
            if (vector_path && dim % 64 != 0) continue;
            INFO(ddpm::to_string(p) << " " << ddpm::to_string(pred) << " clip " << name_of(clip.kind) << " eta " << eta
                                    << " use_clipped " << use_clipped << " dim " << dim << " vector " << vector_path);
            const T nan = std::numeric_limits<T>::quiet_NaN();
            std::vector<T> prev(n, nan), x0(n, nan);
            grid::reverse_args<T, ks::ddim_coefficients<T>> a;
            a.model_output = out.data();
            a.xt = x.data();
            a.x_prev = prev.data();
            a.pred_x0 = x0.data();
            a.records = recs.data();
            a.record_stride = 1;
            a.clip = grid_clip(clip);
            a.clip_range = static_cast<T>(clip.clip_range);
            a.thresholds = th.data();
            a.batch = static_cast<std::int64_t>(batch);
            a.dim = dim;
            a.out_stride = static_cast<std::int64_t>(stride);
            a.seed = 9;
            run_reverse_grid(a, vector_path);
            CHECK(max_ulp<T>(prev, ref_prev) == 0);
            CHECK(max_ulp<T>(x0, ref_x0) == 0);
        }
    }
}

} // namespace

TEMPLATE_TEST_CASE("the DDIM step kernel's threads equal ddim_scheduler::step", "[cuda_host][ddim]", float, double) {
    using T = TestType;
    using ddpm::prediction_type;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::improved_diffusion, ddpm::profile::diffusers})
        for (const auto pred : {prediction_type::epsilon, prediction_type::sample, prediction_type::v_prediction})
            for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::clip(1.0),
                                     ddpm::clip_options::dynamic(0.95, 2.0)})
                for (const double eta : {0.0, 0.5, 1.0})
                    for (const bool use_clipped : {false, true})
                        check_ddim_threads<T>(p, pred, clip, eta, use_clipped, pred == prediction_type::v_prediction);
}

TEMPLATE_TEST_CASE("DDPM and DDIM chains on the host grid equal ddpm::sample / ddim_sample with the counter noise",
                   "[cuda_host][sampler]", float, double) {
    using T = TestType;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    const std::size_t batch = 3, dim = 128;
    const std::uint64_t seed = 314;
    const std::uint32_t first = 10;
    ddpm::sampler_options so;
    so.batch = batch;
    for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::dynamic(0.9, 2.0)}) {
        for (const auto var : {ddpm::variance_type::fixed_small, ddpm::variance_type::learned_range}) {
            const ddpm::model_options opt{ddpm::prediction_type::epsilon, var, clip};
            const toy_model<T> model{var};
            ddpm::ddpm_scheduler<T> sch(s, opt);
            sch.set_timesteps(25);
            std::vector<T> ref(batch * dim), ref_fused(batch * dim);
            ddpm::sample(sch, model, counter_noise<T>{seed, dim, first}, ref, so);
            // The library's own counter source (drawn inside the CPU's fused kernels): the same numbers.
            ddpm::sample(sch, model, ddpm::counter_noise(seed, dim, first), ref_fused, so);
            CHECK(max_ulp<T>(ref_fused, ref) == 0);
            ddpm::ddim_options d;
            d.eta = 0.5;
            ddpm::ddim_scheduler<T> dsch(s, opt, d);
            dsch.set_timesteps(20);
            std::vector<T> dref(batch * dim), dref_fused(batch * dim);
            ddpm::ddim_sample(dsch, model, counter_noise<T>{seed, dim, first}, dref, so);
            ddpm::ddim_sample(dsch, model, ddpm::counter_noise(seed, dim, first), dref_fused, so);
            CHECK(max_ulp<T>(dref_fused, dref) == 0);
            for (const bool vector_path : {false, true}) {
                INFO("clip " << name_of(clip.kind) << " variance " << ddpm::to_string(var) << " vector " << vector_path);
                std::vector<T> x;
                simulate_chain<T>(grid::ddpm_chain_records(sch), sch.timesteps(), opt, grid::sigma_mode_of(var, s.profile()),
                                  batch, dim, seed, first, model, vector_path, x);
                CHECK(max_ulp<T>(x, ref) == 0);
                simulate_chain<T>(grid::ddim_chain_records(dsch), dsch.timesteps(), opt, grid::sigma_mode::fixed, batch,
                                  dim, seed, first, model, vector_path, x);
                CHECK(max_ulp<T>(x, dref) == 0);
            }
        }
    }
}

TEST_CASE("chain records: noise steps, noise rules and bad chains", "[cuda_host][sampler]") {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::ddpm_scheduler<float> sch(s, {});
    sch.set_timesteps(10);
    const auto r = grid::ddpm_chain_records(sch);
    REQUIRE(r.size() == 10);
    for (std::size_t p = 0; p < r.size(); ++p) {
        CHECK(r[p].noise_step == p + 1);
        CHECK((r[p].noisy != 0) == sch.adds_noise(p));
    }
    CHECK(r.back().noisy == 0);
    CHECK(grid::sigma_mode_of(ddpm::variance_type::learned, ddpm::profile::diffusers) ==
          grid::sigma_mode::learned_variance);
    CHECK(grid::sigma_mode_of(ddpm::variance_type::learned, ddpm::profile::improved_diffusion) ==
          grid::sigma_mode::learned_log);
    CHECK(grid::sigma_mode_of(ddpm::variance_type::fixed_large, ddpm::profile::diffusers) == grid::sigma_mode::fixed);

    ddpm::ddim_scheduler<float> dsch(s, {});
    CHECK_THROWS_AS(grid::ddim_chain_records(dsch), ddpm::invalid_argument); // before set_timesteps
    dsch.set_timesteps(4);
    auto d = grid::ddim_chain_records(dsch);
    CHECK(std::all_of(d.begin(), d.end(), [](const auto& x) { return x.noisy == 0; })); // η = 0
    dsch.set_eta(1.0);
    d = grid::ddim_chain_records(dsch);
    REQUIRE(d.size() == 4);
    CHECK(d[0].noisy == 1);
    CHECK(d[3].noise_step == 4);
    for (std::size_t p = 0; p < d.size(); ++p) {
        const auto full = dsch.position_coefficients(p);
        CHECK(d[p].coef.sigma == full.sigma);
        CHECK(d[p].coef.coef_eps == full.coef_eps);
        CHECK(d[p].coef.coef_x0 == full.coef_x0);
        CHECK(d[p].coef.x0_a == full.x0.x0_a);
    }
    CHECK_THROWS_AS(grid::chain_position("test", sch.timesteps(), 7, 0), ddpm::invalid_argument);
}

TEST_CASE("thread counts cover every element exactly once", "[cuda_host][grid]") {
    for (std::int64_t dim = 1; dim <= 300; ++dim) {
        std::vector<int> seen(static_cast<std::size_t>(dim), 0);
        const std::int64_t chunks = grid::thread_chunks<1>(dim);
        for (std::int64_t q = 0; q < chunks; ++q) {
            const std::int64_t g = q / 16, l = q % 16;
            int owned = 0;
            for (int j = 0; j < 4; ++j) {
                const std::int64_t e = 64 * g + 16 * j + l;
                if (e < dim) {
                    ++seen[static_cast<std::size_t>(e)];
                    ++owned;
                }
            }
            CHECK(owned >= 1); // no idle thread
        }
        CHECK(std::all_of(seen.begin(), seen.end(), [](int k) { return k == 1; }));
        if (dim % 64 == 0) CHECK(grid::thread_chunks<4>(dim) * 16 == dim);
        for (const std::uint64_t off : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{63}, std::uint64_t{64}})
            CHECK(grid::fill_chunks(off, dim) ==
                  16 * static_cast<std::int64_t>((off + static_cast<std::uint64_t>(dim) - 1) / 64 - off / 64 + 1));
    }
}
