// The Euler family's API beyond parity: the σ helpers, the stateful
// diffusers-style step() against the loop, custom timesteps and σ,
// exponential σ, threads, counter noise, and every documented error.
#include <catch2/catch.hpp>

#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>

#include <support/golden.hpp>

#include <cmath>
#include <vector>

namespace {

const ddpm::noise_schedule& diffusers_linear() {
    static const ddpm::noise_schedule s{ddpm::schedule_config{}, ddpm::profile::diffusers};
    return s;
}

template <class T>
void toy(std::span<const T> x, std::span<const T> t, std::span<T> out) {
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::tanh(T(0.7) * x[i]) * (T(0.5) + t[0] / T(1000));
}

template <class T>
std::vector<T> start(std::size_t n, T scale) {
    std::vector<T> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = scale * T(std::sin(0.37 * double(i + 1)));
    return x;
}

} // namespace

TEST_CASE("sigma helpers follow numpy", "[samplers][solvers][sigmas]") {
    using namespace ddpm::sigmas;
    const auto l = linspace(0.0, 999.0, 4);
    REQUIRE(l.size() == 4);
    CHECK(l[0] == 0.0);
    CHECK(l[1] == 1.0 * (999.0 / 3.0));
    CHECK(l[3] == 999.0);
    CHECK(linspace(2.0, 5.0, 1) == std::vector<double>{2.0});
    CHECK(linspace(2.0, 5.0, 0).empty());
    const std::vector<float> fp{1.f, 3.f, 7.f};
    CHECK(interp<float>(0.5, fp) == 2.0);
    CHECK(interp<float>(1.25, fp) == 4.0);
    CHECK(interp<float>(-1.0, fp) == 1.0);
    CHECK(interp<float>(5.0, fp) == 7.0);
    const auto k = karras_sigmas(0.01, 100.0, 5);
    CHECK(k.front() == Approx(100.0).epsilon(1e-14));
    CHECK(k.back() == Approx(0.01).epsilon(1e-14));
    for (std::size_t i = 1; i < k.size(); ++i) CHECK(k[i] < k[i - 1]);
    const auto e = exponential_sigmas(0.01, 100.0, 5);
    for (std::size_t i = 1; i < e.size(); ++i) CHECK(std::log(e[i - 1] / e[i]) == Approx(std::log(1e4) / 4).epsilon(1e-12));
    // _sigma_to_t inverts the interpolation of log σ.
    const auto train = training_sigmas<double>(diffusers_linear());
    const auto logs = log_sigmas<double>(train);
    CHECK(sigma_to_t<double>(train[417], logs) == Approx(417.0).margin(1e-9));
    CHECK(sigma_to_t<double>(std::exp(0.5 * (logs[10] + logs[11])), logs) == Approx(10.5).margin(1e-9));
    CHECK(sigma_to_t<double>(1e-6, logs) == 0.0);  // clipped below σ_0
    CHECK(sigma_to_t<double>(1e6, logs) == 999.0); // and above σ_max
    // float helpers: expm1 keeps tiny arguments, exp inverts log
    CHECK(expm1_of(1e-8f) == Approx(1e-8).epsilon(1e-6));
    CHECK(exp_of(log_of(123.25f)) == Approx(123.25f).epsilon(1e-6));
    // λ = −log σ
    CHECK(lambda_of(2.0) == Approx(-std::log(2.0)).epsilon(1e-14));
    const auto as = to_alpha_sigma(3.0);
    CHECK(as.alpha * as.alpha + as.sigma * as.sigma == Approx(1.0).epsilon(1e-15));
    CHECK(ddpm::sigma_schedule_from_string("karras") == ddpm::sigma_schedule::karras);
    CHECK(ddpm::to_string(ddpm::sigma_schedule::exponential) == "exponential");
    CHECK_THROWS_AS(ddpm::sigma_schedule_from_string("beta"), ddpm::invalid_argument);
    CHECK_THROWS_AS(ddpm::final_sigmas_type_from_string("one"), ddpm::invalid_argument);
}

TEMPLATE_TEST_CASE("Euler-family step() equals the loop, bit for bit", "[samplers][solvers]", float, double) {
    using T = TestType;
    const std::size_t B = 2, D = 37;
    ddpm::model_options vpred;
    vpred.prediction = ddpm::prediction_type::v_prediction;
    ddpm::euler_options karras;
    karras.sigmas = ddpm::sigma_schedule::karras;
    const auto x_T = start<T>(B * D, T(1));
    const ddpm::counter_noise noise(11);

    SECTION("euler") {
        ddpm::euler_scheduler<T> s(diffusers_linear(), vpred, karras);
        s.set_timesteps(7);
        std::vector<T> loop = x_T;
        ddpm::sampler_options opt;
        opt.batch = B;
        opt.start_from_input = true;
        ddpm::sample(s, toy<T>, noise, loop, opt);
        std::vector<T> x = x_T, in(B * D), out(B * D), x0(B * D), prev(B * D);
        for (const T t : s.timesteps()) {
            s.scale_model_input(x, t, in);
            toy<T>(in, std::span<const T>(&t, 1), out);
            s.step(out, t, x, prev, x0, B);
            x = prev;
        }
        CHECK(x == loop);
        CHECK(s.step_index() == s.num_steps());
        CHECK_THROWS_AS(s.step(out, s.timesteps()[0], x, prev, x0, B), ddpm::invalid_argument); // past the end
        s.set_timesteps(7); // resets the step index
        CHECK_FALSE(s.step_index().has_value());
    }
    SECTION("euler ancestral, counter noise drawn in the kernel = the same noise passed to step()") {
        ddpm::euler_ancestral_scheduler<T> s(diffusers_linear());
        s.set_timesteps(6);
        std::vector<T> loop = x_T;
        ddpm::sampler_options opt;
        opt.batch = B;
        opt.start_from_input = true;
        ddpm::sample(s, toy<T>, noise, loop, opt);
        std::vector<T> threaded = x_T;
        opt.exec = ddpm::execution{3};
        ddpm::sample(s, toy<T>, noise, threaded, opt);
        CHECK(threaded == loop); // any thread count, same bits
        std::vector<T> x = x_T, in(B * D), out(B * D), x0(B * D), prev(B * D), z(B * D);
        for (std::size_t i = 0; i < s.num_steps(); ++i) {
            const T t = s.timesteps()[i];
            s.scale_model_input(x, t, in);
            toy<T>(in, std::span<const T>(&t, 1), out);
            noise.fill_rows(std::span<T>(z), i + 1, D); // the loop's addressing: step i + 1
            s.step(out, t, x, z, prev, x0, B);
            x = prev;
        }
        CHECK(x == loop); // the same kernel, the same noise values
        const std::vector<T> none;
        s.set_timesteps(6);
        CHECK_THROWS_AS(s.step(out, s.timesteps()[0], x, none, prev, x0, B), ddpm::invalid_argument); // σ_up > 0
    }
    SECTION("heun: 2N - 1 calls, predictor and corrector") {
        ddpm::heun_scheduler<T> s(diffusers_linear(), vpred);
        s.set_timesteps(5);
        REQUIRE(s.num_steps() == 9);
        REQUIRE(s.sigmas().size() == 10);
        std::vector<T> loop = x_T;
        ddpm::sampler_options opt;
        opt.batch = B;
        opt.start_from_input = true;
        std::size_t calls = 0;
        ddpm::sample(s, toy<T>, noise, loop, opt, [&](std::size_t, T, std::span<const T>, std::span<const T>) { ++calls; });
        CHECK(calls == 9);
        std::vector<T> x = x_T, in(B * D), out(B * D), x0(B * D), prev(B * D);
        for (const T t : s.timesteps()) {
            CHECK(s.state_in_first_order() == (!s.step_index() || *s.step_index() % 2 == 0));
            s.scale_model_input(x, t, in);
            toy<T>(in, std::span<const T>(&t, 1), out);
            s.step(out, t, x, prev, x0, B);
            x = prev;
        }
        CHECK(x == loop);
    }
}

TEST_CASE("Euler: the ODE step is exact for a Gaussian data distribution", "[samplers][solvers]") {
    // For x_0 ~ N(0, 1) the ideal ε̂ at σ is x·σ/(σ² + 1) (x the VE state), the
    // ODE is dx/dσ = x σ/(σ² + 1), solved by x ∝ √(σ² + 1): Euler and Heun
    // converge to it, Heun at second order.
    const ddpm::noise_schedule s{ddpm::schedule_config{}, ddpm::profile::standard};
    auto ideal = [](std::span<const double> in, std::span<const double> t, std::span<double> out) {
        // the network sees x/√(σ²+1); σ from t through the training table
        const auto train = ddpm::sigmas::training_sigmas<double>(ddpm::noise_schedule{ddpm::schedule_config{}});
        const double sigma = ddpm::sigmas::interp<double>(t[0], train);
        for (std::size_t i = 0; i < in.size(); ++i) out[i] = in[i] * sigma / std::sqrt(sigma * sigma + 1.0);
    };
    auto error_of = [&](auto sched, std::int64_t n) {
        sched.set_timesteps(n);
        std::vector<double> x{sched.init_noise_sigma()};
        ddpm::sampler_options opt;
        opt.batch = 1;
        opt.start_from_input = true;
        ddpm::sample(sched, ideal, ddpm::zero_noise{}, x, opt);
        // exact: x_0 = x_T · √(σ_end² + 1)/√(σ_max² + 1) with σ_end = 0
        const double smax = sched.sigmas()[0];
        return std::abs(x[0] - sched.init_noise_sigma() / std::sqrt(smax * smax + 1.0));
    };
    const double e_euler_10 = error_of(ddpm::euler_scheduler<double>(s), 10);
    const double e_euler_40 = error_of(ddpm::euler_scheduler<double>(s), 40);
    const double e_heun_10 = error_of(ddpm::heun_scheduler<double>(s), 10);
    const double e_heun_40 = error_of(ddpm::heun_scheduler<double>(s), 40);
    INFO("euler " << e_euler_10 << " -> " << e_euler_40 << ", heun " << e_heun_10 << " -> " << e_heun_40);
    CHECK(e_euler_40 < e_euler_10);
    CHECK(e_heun_40 < e_heun_10);
    CHECK(e_heun_40 < e_euler_40);
}

TEST_CASE("Euler family: custom timesteps and sigmas", "[samplers][solvers]") {
    ddpm::euler_scheduler<float> s(diffusers_linear());
    const std::vector<double> ts{999.0, 500.5, 10.0};
    s.set_timesteps(ts);
    REQUIRE(s.timesteps().size() == 3);
    CHECK(s.timesteps()[1] == 500.5f);
    const auto train = ddpm::sigmas::training_sigmas<float>(diffusers_linear());
    CHECK(s.sigmas()[0] == train[999]);
    CHECK(s.sigmas()[2] == train[10]);
    CHECK(s.sigmas()[3] == 0.f);
    const std::vector<double> sig{80.0, 5.0, 0.5, 0.0};
    s.set_sigmas(sig);
    REQUIRE(s.timesteps().size() == 3);
    CHECK(s.sigmas()[1] == 5.f);
    CHECK(s.init_noise_sigma() == 80.f);
    // the timestep whose interpolated σ is 80 (log-linear between table entries)
    CHECK(ddpm::sigmas::interp<float>(s.timesteps()[0], train) == Approx(80.0).epsilon(1e-3));
    ddpm::heun_scheduler<double> h(diffusers_linear());
    h.set_sigmas(sig);
    CHECK(h.num_steps() == 5);
    CHECK(h.sigmas().size() == 6);

    // Errors name the parameter and leave the scheduler as it was.
    const std::vector<double> up{10.0, 20.0}, out_of_range{1000.0}, empty{};
    CHECK_THROWS_WITH(s.set_timesteps(up), Catch::Contains("timesteps[1]"));
    CHECK_THROWS_WITH(s.set_timesteps(out_of_range), Catch::Contains("timesteps[0]"));
    CHECK_THROWS_AS(s.set_timesteps(empty), ddpm::invalid_argument);
    const std::vector<double> one{1.0}, negative{1.0, -0.5}, rising{1.0, 2.0, 0.0};
    CHECK_THROWS_WITH(s.set_sigmas(one), Catch::Contains("sigmas.size()"));
    CHECK_THROWS_WITH(s.set_sigmas(negative), Catch::Contains("sigmas[1]"));
    CHECK_THROWS_WITH(s.set_sigmas(rising), Catch::Contains("sigmas[1]"));
    CHECK(s.sigmas()[1] == 5.f);
    ddpm::euler_options karras;
    karras.sigmas = ddpm::sigma_schedule::karras;
    ddpm::euler_scheduler<float> k(diffusers_linear(), {}, karras);
    CHECK_THROWS_AS(k.set_timesteps(ts), ddpm::invalid_argument); // as diffusers
}

TEST_CASE("Euler family: exponential sigmas", "[samplers][solvers]") {
    ddpm::euler_options o;
    o.sigmas = ddpm::sigma_schedule::exponential;
    ddpm::euler_scheduler<double> s(diffusers_linear(), {}, o);
    s.set_timesteps(8);
    const auto sig = s.sigmas();
    const auto train = ddpm::sigmas::training_sigmas<double>(diffusers_linear());
    CHECK(sig[0] == Approx(train[999]).epsilon(1e-14));
    CHECK(sig[7] == Approx(train[0]).epsilon(1e-12));
    for (std::size_t i = 1; i < 8; ++i) CHECK(std::log(sig[i - 1] / sig[i]) == Approx(std::log(sig[0] / sig[7]) / 7).epsilon(1e-10));
    CHECK(s.timesteps()[0] == Approx(999.0).margin(1e-9));
    CHECK(s.timesteps()[7] == Approx(0.0).margin(1e-9));
}

TEST_CASE("Euler family errors", "[samplers][solvers][errors]") {
    const auto& sch = diffusers_linear();
    ddpm::euler_scheduler<float> s(sch);
    std::vector<float> x(8, 1.f), out(8, 0.f), prev(8, 5.f), x0(8, 5.f), small(7, 0.f);
    // before set_timesteps: the step names the missing call
    CHECK_THROWS_WITH(s.step(out, 999.f, x, prev, x0, 2), Catch::Contains("set_timesteps"));
    CHECK_THROWS_WITH(s.scale_model_input(x, 999.f, out), Catch::Contains("set_timesteps"));
    s.set_timesteps(4);
    CHECK_THROWS_WITH(s.step(out, 500.f, x, prev, x0, 2), Catch::Contains("timestep"));
    CHECK_THROWS_AS(s.step(small, 999.f, x, prev, x0, 2), ddpm::invalid_argument);
    CHECK_THROWS_AS(s.step(out, 999.f, x, prev, x0, 3), ddpm::invalid_argument);
    for (const float v : prev) CHECK(v == 5.f); // untouched
    // N = 0 for every spacing (diffusers: empty chain or a Python exception)
    for (const auto spacing : {ddpm::timestep_spacing::linspace, ddpm::timestep_spacing::leading,
                               ddpm::timestep_spacing::trailing}) {
        ddpm::euler_options o;
        o.spacing = spacing;
        ddpm::heun_scheduler<double> h(sch, {}, o);
        CHECK_THROWS_WITH(h.set_timesteps(0), Catch::Contains("num_inference_steps = 0"));
        CHECK_THROWS_AS(h.set_timesteps(-3), ddpm::invalid_argument);
    }
    ddpm::euler_options lead;
    lead.spacing = ddpm::timestep_spacing::leading;
    lead.steps_offset = 1;
    ddpm::euler_scheduler<float> e(sch, {}, lead);
    CHECK_THROWS_WITH(e.set_timesteps(1000), Catch::Contains("steps_offset")); // 999 + 1 = T
    e.set_timesteps(999);
    CHECK(e.timesteps()[0] == 999.f);
    lead.steps_offset = -1;
    CHECK_THROWS_WITH(ddpm::euler_scheduler<float>(sch, {}, lead), Catch::Contains("steps_offset"));
    ddpm::model_options dyn;
    dyn.clip = ddpm::clip_options::dynamic(0.995, 3.0);
    CHECK_THROWS_WITH(ddpm::euler_scheduler<float>(sch, dyn), Catch::Contains("options.clip"));
    ddpm::euler_options sigma_min;
    sigma_min.final_sigmas = ddpm::final_sigmas_type::sigma_min;
    CHECK_THROWS_WITH(ddpm::euler_ancestral_scheduler<float>(sch, {}, sigma_min), Catch::Contains("final_sigmas"));
    CHECK_THROWS_WITH(ddpm::heun_scheduler<float>(sch, {}, sigma_min), Catch::Contains("final_sigmas"));
    // the loop: before set_timesteps
    ddpm::euler_scheduler<float> fresh(sch);
    std::vector<float> buf(8, 2.f);
    ddpm::sampler_options opt;
    opt.batch = 2;
    CHECK_THROWS_WITH(ddpm::sample(fresh, toy<float>, ddpm::zero_noise{}, buf, opt),
                      Catch::Contains("num_inference_steps"));
    // a non-finite network output, with the real timestep in the message
    auto nan_net = [](std::span<const float>, std::span<const float>, std::span<float> o) {
        for (float& v : o) v = std::nanf("");
    };
    opt.check_finite = true;
    CHECK_THROWS_WITH(ddpm::sample(s, nan_net, ddpm::zero_noise{}, buf, opt), Catch::Contains("(t = 999)"));
    for (const float v : buf) CHECK(v == 2.f);
}

TEST_CASE("round_timesteps: the explicit opt-in for integer networks", "[samplers][solvers]") {
    ddpm::euler_scheduler<float> s(diffusers_linear());
    s.set_timesteps(10); // linspace: 999, 888, … (integers), N = 4: 999, 666, 333, 0
    s.set_timesteps(4);
    std::vector<ddpm::timestep_t> seen;
    auto int_net = [&](std::span<const float> x, std::span<const ddpm::timestep_t> t, std::span<float> o) {
        seen.push_back(t[0]);
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = 0.1f * x[i];
    };
    const std::vector<double> frac{998.6, 500.5, 499.5, 2.4};
    s.set_timesteps(frac);
    std::vector<float> x(4, 1.f);
    ddpm::sampler_options opt;
    opt.batch = 2;
    opt.start_from_input = true;
    ddpm::sample(s, ddpm::round_timesteps(int_net), ddpm::zero_noise{}, x, opt);
    CHECK(seen == std::vector<ddpm::timestep_t>{999, 500, 500, 2}); // nearest, halves to even
}
