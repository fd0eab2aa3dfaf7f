// Regression tests for issue 11 (defects found by fuzzing, sanitizers and bad
// input): each case reproduces one finding and requires a ddpm error with a
// message that names the parameter, instead of NaN/Inf tables, undefined
// behaviour, std::bad_alloc or wrong results. Loader findings (deep nesting,
// file size, dynamic_thresholding_ratio) are in tests/inspect; the nested
// parallel_for deadlock in test_parallel.cpp; the SIMD clip NaN in tests/kernels.
#include <catch2/catch.hpp>

#include <ddpm/ddpm.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

using namespace ddpm;

namespace {

/// The message of the ddpm::invalid_argument that `f` throws; fails the test
/// when it throws nothing.
template <class F>
std::string invalid_message(F&& f) {
    try {
        f();
    } catch (const ddpm::invalid_argument& e) {
        return e.what();
    }
    FAIL("no ddpm::invalid_argument thrown");
    return {};
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

constexpr profile all_profiles[] = {profile::standard, profile::ho2020, profile::improved_diffusion, profile::diffusers};

template <class Tables>
bool all_finite(const Tables& t) {
    bool ok = true;
    t.for_each([&](auto, const auto& v) {
        for (const auto x : v) ok = ok && std::isfinite(x);
    });
    return ok;
}

} // namespace

// Item 4: a β_1 so small that 1 − β_1 rounds to 1 gave ᾱ_0 = 1 and NaN/Inf tables.
TEST_CASE("issue 11.4: a first beta that rounds 1 - beta to 1 is rejected, naming beta", "[reliability][schedule]") {
    schedule_config c;
    c.beta_start = 1e-20;
    for (const auto p : all_profiles) {
        INFO("profile " << to_string(p));
        const auto msg = invalid_message([&] { (void)noise_schedule(c, p); });
        INFO(msg);
        CHECK(contains(msg, "betas[0]"));
        CHECK(contains(msg, "rounds to 1"));
    }
    // 1e-8 is representable next to 1 in float64 but not in float32: only the
    // diffusers profile (float32 tables built as torch does) must refuse it.
    c.beta_start = 1e-8;
    CHECK(all_finite(noise_schedule(c).f64()));
    const auto msg = invalid_message([&] { (void)noise_schedule(c, profile::diffusers); });
    INFO(msg);
    CHECK(contains(msg, "betas[0]"));
    CHECK(contains(msg, "float32"));
    // User βs go through the same check.
    const std::vector<double> betas{1e-20, 0.1, 0.2};
    CHECK(contains(invalid_message([&] { (void)noise_schedule::from_betas(betas); }), "betas[0]"));
}

// Item 5: the float32 view underflowed to 0 (→ +inf) in every profile but diffusers.
TEST_CASE("issue 11.5: float32 tables that underflow are rejected in every profile", "[reliability][schedule]") {
    schedule_config c;
    c.schedule = beta_schedule::constant;
    c.beta_end = 0.02;
    c.num_train_timesteps = 20000; // ᾱ_T ≈ 0.98^20000 ≈ 1e-175: fine in float64, 0 in float32
    for (const auto p : all_profiles) {
        INFO("profile " << to_string(p));
        const auto msg = invalid_message([&] { (void)noise_schedule(c, p); });
        INFO(msg);
        CHECK(contains(msg, "alphas_cumprod["));
        CHECK(contains(msg, "float32"));
    }
    // A schedule whose float32 view is finite still loads, and is finite.
    c.num_train_timesteps = 2000;
    for (const auto p : all_profiles) {
        const noise_schedule s(c, p);
        CHECK(all_finite(s.f32()));
        CHECK(all_finite(s.f64()));
    }
    // Zero terminal SNR keeps its one intended infinity (1/√ᾱ_T with ᾱ_T = 0).
    schedule_config z;
    z.rescale_betas_zero_snr = true;
    for (const auto p : all_profiles) CHECK_NOTHROW(noise_schedule(z, p));
}

// Issue 10 §4: a named schedule running backwards is an error.
TEST_CASE("issue 10.4: a named schedule with beta_start > beta_end is rejected", "[reliability][schedule]") {
    for (const auto kind : {beta_schedule::linear, beta_schedule::scaled_linear, beta_schedule::sigmoid,
                            beta_schedule::warmup10, beta_schedule::warmup50}) {
        schedule_config c;
        c.schedule = kind;
        c.beta_start = 0.5;
        c.beta_end = 0.02;
        INFO(to_string(kind));
        const auto msg = invalid_message([&] { (void)noise_schedule(c); });
        INFO(msg);
        CHECK(contains(msg, "beta_start = 0.5"));
        CHECK(contains(msg, "beta_end"));
    }
    // Equal ends are a constant schedule, and schedules that ignore
    // beta_start do not care.
    schedule_config flat;
    flat.beta_start = flat.beta_end = 0.01;
    CHECK_NOTHROW(noise_schedule(flat));
    schedule_config cst;
    cst.schedule = beta_schedule::constant;
    cst.beta_start = 0.5;
    CHECK_NOTHROW(noise_schedule(cst));
    // Explicit decreasing βs remain the user's choice.
    const std::vector<double> decreasing{0.05, 0.04, 0.03};
    CHECK_NOTHROW(noise_schedule::from_betas(decreasing));
}

// Item 6: i·ratio + steps_offset overflowed (UB) and the error blamed num_inference_steps.
TEST_CASE("issue 11.6: a huge steps_offset is refused before any arithmetic", "[reliability][timesteps]") {
    for (const std::int64_t offset : {std::numeric_limits<std::int64_t>::max(),
                                      std::numeric_limits<std::int64_t>::max() - 500, std::int64_t{1000},
                                      std::int64_t{901}}) {
        INFO("steps_offset " << offset);
        const auto msg = invalid_message([&] { (void)make_timesteps(1000, 10, timestep_spacing::leading, offset); });
        INFO(msg);
        CHECK(contains(msg, "steps_offset = " + std::to_string(offset)));
        CHECK(contains(msg, "<= 99"));
    }
    // The largest offset that fits still works.
    const auto ts = make_timesteps(1000, 10, timestep_spacing::leading, 99);
    CHECK(ts.front() == 999);
    CHECK(ts.back() == 99);
}

// Items 7 and 8: T near INT64_MAX overflowed the float→int64 cast (trailing) and
// huge T threw std::bad_alloc / std::length_error.
TEST_CASE("issue 11.7/11.8: num_train_timesteps above the documented maximum is refused",
          "[reliability][timesteps][schedule]") {
    const std::int64_t huge = std::numeric_limits<std::int64_t>::max();
    for (const auto spacing : {timestep_spacing::linspace, timestep_spacing::leading, timestep_spacing::trailing}) {
        INFO(to_string(spacing));
        const auto msg = invalid_message([&] { (void)make_timesteps(huge, 1, spacing); });
        INFO(msg);
        CHECK(contains(msg, "num_train_timesteps"));
        CHECK(contains(msg, "<= 1000000"));
    }
    CHECK(make_timesteps(max_num_train_timesteps, 4, timestep_spacing::trailing).front() ==
          max_num_train_timesteps - 1);

    for (const std::int64_t T : {max_num_train_timesteps + 1, std::int64_t{1} << 40, huge}) {
        schedule_config c;
        c.num_train_timesteps = T;
        INFO("T = " << T);
        const auto msg = invalid_message([&] { (void)noise_schedule(c); });
        CHECK(contains(msg, "num_train_timesteps"));
        CHECK(contains(msg, "<= 1000000"));
        CHECK(contains(invalid_message([&] { (void)make_betas(c); }), "<= 1000000"));
        CHECK(contains(invalid_message([&] { (void)space_timesteps(T, "10"); }), "<= 1000000"));
    }
}

TEST_CASE("issue 11.8: allocation failures inside ddpm surface as ddpm errors", "[reliability][errors]") {
    const auto bad_alloc = [] { throw std::bad_alloc(); };
    const auto length = [] { throw std::length_error("vector::_M_default_append"); };
    for (const auto& f : {std::function<void()>(bad_alloc), std::function<void()>(length)}) {
        try {
            detail::guard_allocation("ddpm::test", "tables", f);
            FAIL("nothing thrown");
        } catch (const ddpm::error& e) {
            const std::string msg = e.what();
            INFO(msg);
            CHECK(contains(msg, "ddpm::test"));
            CHECK(contains(msg, "tables"));
            // Still a std::bad_alloc for callers that catch that.
            CHECK(dynamic_cast<const std::bad_alloc*>(&e) != nullptr);
        }
    }
    // Other exceptions pass through unchanged.
    CHECK_THROWS_AS(detail::guard_allocation("w", "x", [] { throw std::runtime_error("x"); }), std::runtime_error);
    CHECK(detail::guard_allocation("w", "x", [] { return 7; }) == 7);
}

// Item 11: space_timesteps("0") returned an empty set.
TEST_CASE("issue 11.11: space_timesteps that keeps no step throws", "[reliability][timesteps]") {
    CHECK(contains(invalid_message([] { (void)space_timesteps(1000, "0"); }), "section_counts"));
    CHECK(contains(invalid_message([] { (void)space_timesteps(1000, "0,0,0"); }), "section_counts"));
    const std::vector<std::int64_t> zeros{0, 0};
    CHECK(contains(invalid_message([&] { (void)space_timesteps(1000, std::span<const std::int64_t>(zeros)); }),
                   "section_counts"));
    CHECK(space_timesteps(1000, "0,5").size() == 5); // a zero section among others is fine
}

// Item 11: zero terminal SNR with ε-prediction made every sample NaN: x̂_0 =
// (x_T − ε̂)/√ᾱ_T divides by zero. The schedulers refuse the combination.
TEST_CASE("issue 11.11: zero terminal SNR with epsilon prediction is refused", "[reliability][samplers]") {
    schedule_config c;
    c.rescale_betas_zero_snr = true;
    c.num_train_timesteps = 100;
    const noise_schedule s(c);
    REQUIRE(s.f64().alphas_cumprod.back() == 0.0);
    model_options eps{prediction_type::epsilon, variance_type::fixed_small, clip_options::none()};
    const auto m1 = invalid_message([&] { ddpm_scheduler<float> sch(s, eps); });
    INFO(m1);
    CHECK(contains(m1, "prediction_type = epsilon"));
    CHECK(contains(m1, "v_prediction"));
    CHECK(contains(invalid_message([&] { ddim_scheduler<double> sch(s, eps); }), "prediction_type = epsilon"));
    for (const auto pred : {prediction_type::v_prediction, prediction_type::sample}) {
        const model_options ok{pred, variance_type::fixed_small, clip_options::none()};
        CHECK_NOTHROW(ddpm_scheduler<float>(s, ok));
        CHECK_NOTHROW(ddim_scheduler<float>(s, ok));
    }
    // User βs ending in β_T = 1 reach ᾱ_T = 0 the same way.
    const std::vector<double> betas{0.1, 0.2, 1.0};
    CHECK_THROWS_AS(ddpm_scheduler<double>(noise_schedule::from_betas(betas), eps), ddpm::invalid_argument);
}

// Item 11: with dynamic thresholding the step writes x̂_0 before reading the
// inputs, so an aliased pred_original_sample corrupted the result silently.
TEMPLATE_TEST_CASE("issue 11.11: pred_original_sample overlapping another buffer throws", "[reliability][samplers]",
                   float, double) {
    using T = TestType;
    const noise_schedule s(schedule_config{});
    const std::size_t B = 2, D = 16;
    const model_options opt{prediction_type::epsilon, variance_type::fixed_small, clip_options::dynamic(0.9, 1.5)};
    ddpm_scheduler<T> ddpm_s(s, opt);
    ddim_scheduler<T> ddim_s(s, opt);
    ddim_s.set_timesteps(10);
    std::vector<T> out(B * D, T(0.3)), x(B * D, T(0.7)), z(B * D, T(0.1)), prev(B * D), x0(B * D);
    std::span<T> xs(x), outs(out), zs(z), prevs(prev);
    const std::vector<T> x_before = x, out_before = out;
    const timestep_t t = ddim_s.timesteps()[0];
    const auto check = [&](auto&& f) {
        const auto msg = invalid_message(f);
        INFO(msg);
        CHECK(contains(msg, "pred_original_sample"));
        CHECK(contains(msg, "overlap"));
        CHECK(x == x_before);
        CHECK(out == out_before);
    };
    check([&] { ddpm_s.step(out, t, x, z, prev, xs, B); });                     // x̂_0 over x_t
    check([&] { ddpm_s.step(out, t, x, z, prev, outs, B); });                   // over the network output
    check([&] { ddpm_s.step(out, t, x, z, prev, zs.subspan(0, B * D), B); });   // over the noise
    check([&] { ddpm_s.step(out, t, x, z, prev, prevs, B); });                  // over prev_sample
    check([&] { ddim_s.step(out, t, x, z, prev, xs, B); });
    check([&] { ddim_s.step(out, t, x, z, prev, prevs, B); });
    // A partial overlap is caught too.
    std::vector<T> big(3 * B * D, T(0.2));
    std::span<T> bigs(big);
    const auto msg = invalid_message([&] {
        ddpm_s.step(bigs.subspan(0, B * D), t, bigs.subspan(B * D, B * D), std::span<const T>{}, prev,
                    bigs.subspan(B * D / 2, B * D), B);
    });
    CHECK(contains(msg, "overlap"));
    // prev_sample may still alias the sample (documented), and distinct buffers work.
    CHECK_NOTHROW(ddpm_s.step(out, t, x, z, xs, std::span<T>(x0), B));
    CHECK_NOTHROW(ddim_s.step(out, t, x, z, prev, std::span<T>(x0), B));
}
