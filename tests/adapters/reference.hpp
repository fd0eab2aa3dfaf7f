// tests/adapters/reference.hpp — the std::vector results every adapter must
// reproduce bit for bit, and a driver that runs the same calls through any
// adapter.
//
// The driver takes two factories, make_in(flat, B, D) and make_out(flat, B, D),
// which return an adapter object whose *storage* holds `flat` (so sample b is
// flat[b·D, (b+1)·D)). Per-sample outputs (the posterior variance) are made
// with D = 1, and learned-range model outputs with 2·D.
#pragma once

#include <catch2/catch.hpp>

#include <ddpm/buffer.hpp>
#include <ddpm/core/forward.hpp>
#include <ddpm/core/p_mean_variance.hpp>
#include <ddpm/core/posterior.hpp>

#include <cstdint>
#include <list>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace adapters_test {

inline constexpr std::size_t batch = 3; ///< B
inline constexpr std::size_t dim = 7;   ///< D (odd: no SIMD-friendly sizes)

template <class T>
std::vector<T> gaussian(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d;
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(d(g));
    return v;
}

/// Keeps the memory that Maps / adaptors / views point into alive, at stable
/// addresses, for the length of a test.
template <class T>
class pool {
public:
    std::vector<T>& keep(std::vector<T> v) { return m_store.emplace_back(std::move(v)); }

private:
    std::list<std::vector<T>> m_store;
};

/// The three operations computed on std::vector.
template <class T>
struct reference {
    ddpm::noise_schedule schedule{ddpm::schedule_config{}};
    // Learned-range variance (model output B × 2D) and dynamic thresholding
    // (per sample), so that a buffer whose samples are in the wrong place
    // cannot give the right answer.
    ddpm::model_options options{ddpm::prediction_type::epsilon, ddpm::variance_type::learned_range,
                                ddpm::clip_options::dynamic(0.9, 1.5)};
    std::vector<std::int64_t> timesteps{0, 420, 999};

    std::vector<T> x0 = gaussian<T>(batch * dim, 1);
    std::vector<T> noise = gaussian<T>(batch * dim, 2);
    std::vector<T> model_output = gaussian<T>(batch * 2 * dim, 3);

    std::vector<T> xt = std::vector<T>(batch * dim);
    std::vector<T> post_mean = std::vector<T>(batch * dim);
    std::vector<T> post_var = std::vector<T>(batch);
    std::vector<T> post_log_var = std::vector<T>(batch);
    std::vector<T> mean = std::vector<T>(batch * dim);
    std::vector<T> var = std::vector<T>(batch * dim);
    std::vector<T> log_var = std::vector<T>(batch * dim);
    std::vector<T> pred_x0 = std::vector<T>(batch * dim);

    reference() {
        ddpm::q_sample(schedule, x0, noise, timesteps, xt);
        ddpm::q_posterior_mean_variance(schedule, x0, xt, timesteps, post_mean, post_var, post_log_var);
        ddpm::p_mean_variance(schedule, options, model_output, xt, timesteps, mean, var, log_var, pred_x0);
    }
};

/// Number of elements of `got`'s storage that differ from `want` in any bit
/// (0 ULP); a size mismatch counts as every element.
template <class B, class T>
std::size_t differences(const B& got, const std::vector<T>& want) {
    const auto g = ddpm::as_span(got);
    if (g.size() != want.size()) return want.size() + g.size();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
        if (!Catch::Matchers::WithinULP(want[i], 0).match(g[i])) ++bad;
    return bad;
}

/// q_sample, q_posterior_mean_variance and p_mean_variance through the
/// adapter objects made by make_in (inputs) and make_out (outputs), compared
/// with the std::vector reference.
template <class T, class MakeIn, class MakeOut>
void check_all_operations(MakeIn make_in, MakeOut make_out) {
    const reference<T> ref;
    const std::vector<T> zeros(batch * dim), zeros_b(batch);
    const auto x0 = make_in(ref.x0, batch, dim);
    const auto noise = make_in(ref.noise, batch, dim);
    const auto model_output = make_in(ref.model_output, batch, 2 * dim);

    auto xt = make_out(zeros, batch, dim);
    ddpm::q_sample(ref.schedule, x0, noise, ref.timesteps, xt);
    CHECK(differences(xt, ref.xt) == 0);

    const auto xt_in = make_in(ref.xt, batch, dim);
    auto post_mean = make_out(zeros, batch, dim);
    auto post_var = make_out(zeros_b, batch, 1);
    auto post_log_var = make_out(zeros_b, batch, 1);
    ddpm::q_posterior_mean_variance(ref.schedule, x0, xt_in, ref.timesteps, post_mean, post_var, post_log_var);
    CHECK(differences(post_mean, ref.post_mean) == 0);
    CHECK(differences(post_var, ref.post_var) == 0);
    CHECK(differences(post_log_var, ref.post_log_var) == 0);

    auto mean = make_out(zeros, batch, dim);
    auto var = make_out(zeros, batch, dim);
    auto log_var = make_out(zeros, batch, dim);
    auto pred_x0 = make_out(zeros, batch, dim);
    ddpm::p_mean_variance(ref.schedule, ref.options, model_output, xt_in, ref.timesteps, mean, var, log_var,
                          pred_x0);
    CHECK(differences(mean, ref.mean) == 0);
    CHECK(differences(var, ref.var) == 0);
    CHECK(differences(log_var, ref.log_var) == 0);
    CHECK(differences(pred_x0, ref.pred_x0) == 0);
}

/// True once ddpm::as_span lets an adapter's ddpm::invalid_argument through
/// (it is conditionally noexcept); while as_span is unconditionally noexcept a
/// run-time stride error would reach std::terminate instead, so the end-to-end
/// throw checks are skipped with a warning.
template <class B>
inline constexpr bool as_span_propagates = !noexcept(ddpm::as_span(std::declval<const B&>()));

} // namespace adapters_test
