// ddpm/samplers/heun.hpp — Heun's second-order method in σ form (Karras et
// al. 2022, Algorithm 1 without churn; diffusers' HeunDiscreteScheduler),
// over the Euler family's chain (samplers/euler.hpp).
//
// Two network calls per step, interleaved as diffusers does: σ =
// [s0, s1, s1, …, s(N−1), s(N−1), 0], timesteps [t0, t1, t1, …] (2N − 1
// calls). An even call i is the Euler predictor from σ_i to σ_{i+1}:
//
//   d_1 = (x − x̂_0(x, σ_i))/σ_i;   x' = x + d_1·(σ_{i+1} − σ_i)
//
// and the odd call i + 1, on x', the trapezoidal corrector
//
//   d_2 = (x' − x̂_0(x', σ_{i+1}))/σ_{i+1};   x ← x + (d_1 + d_2)/2 · (σ_{i+1} − σ_i).
//
// The last call (to σ = 0) is a plain Euler step. d_1, the step's start x and
// dt are the per-run state (heun_scheduler::state_type) of the loop; the
// stateful step() keeps them in the scheduler, as diffusers does.
#pragma once

#include "ddpm/samplers/euler.hpp"

#include <algorithm>
#include <vector>

namespace ddpm {

/// diffusers' HeunDiscreteScheduler (clip_sample through model_options.clip).
template <std::floating_point T>
class heun_scheduler : public detail::euler_family_base<T> {
    using base = detail::euler_family_base<T>;

public:
    /// The first stage's derivative, start state and step (per run).
    struct state_type {
        std::vector<T> derivative, sample;
        T dt = 0;
    };

    /// @throws ddpm::invalid_argument for bad clip options or steps_offset < 0;
    /// euler.final_sigmas must be zero (diffusers' Heun always ends at σ = 0).
    explicit heun_scheduler(noise_schedule schedule, model_options options = {}, euler_options euler = {})
        : base(std::move(schedule), options, euler, detail::euler_family::heun, "ddpm::heun_scheduler") {
        if (euler.final_sigmas != final_sigmas_type::zero)
            detail::throw_invalid("ddpm::heun_scheduler", "final_sigmas", to_string(euler.final_sigmas),
                                  "zero (HeunDiscreteScheduler always ends at sigma 0)");
    }

    /// N steps, 2N − 1 network calls.
    void set_timesteps(std::int64_t num_inference_steps) {
        this->set_spaced(num_inference_steps, "ddpm::heun_scheduler::set_timesteps");
        m_state = {};
    }
    void set_timesteps(std::span<const double> timesteps) {
        this->set_custom_timesteps(timesteps, "ddpm::heun_scheduler::set_timesteps");
        m_state = {};
    }
    void set_sigmas(std::span<const double> sigmas) {
        this->set_custom_sigmas(sigmas, "ddpm::heun_scheduler::set_sigmas");
        m_state = {};
    }

    /// diffusers: is the next step() a first (Euler) stage?
    [[nodiscard]] bool state_in_first_order() const noexcept {
        return !this->m_step_index || *this->m_step_index % 2 == 0;
    }

    /// diffusers' step: a predictor at even step indices (prev_sample is the
    /// intermediate x'), the corrector at odd ones; advances step_index().
    /// @throws ddpm::invalid_argument as euler_scheduler::step, or when the
    ///         corrector's batch differs from its predictor's.
    template <input_buffer MO, input_buffer X, output_buffer P, output_buffer X0>
    void step(const MO& model_output, T timestep, const X& sample, P&& prev_sample, X0&& pred_original_sample,
              std::size_t batch = 1) {
        constexpr std::string_view where = "ddpm::heun_scheduler::step";
        const auto c =
            this->begin_step(where, model_output, timestep, sample, prev_sample, pred_original_sample, batch);
        const std::size_t i = *this->m_step_index;
        if (i % 2 == 0) {
            m_state.derivative.resize(c.x.size());
            m_state.sample.resize(c.x.size());
        } else if (m_state.sample.size() != c.x.size()) {
            detail::check_size(where, "sample", c.x.size(), m_state.sample.size(),
                               "elements (the predictor step's B x D)");
        }
        detail::step_scratch<T> scratch;
        step_at(i, c.out, c.x, kernels::step_noise<T>::none(), c.prev, c.x0, c.shape.dim, scratch, {}, m_state);
        this->m_step_index = i + 1;
    }

    // ----- the loop interface
    [[nodiscard]] state_type make_state(std::size_t batch, std::size_t dim) const {
        return {std::vector<T>(batch * dim), std::vector<T>(batch * dim), T(0)};
    }
    [[nodiscard]] bool adds_noise(std::size_t) const noexcept { return false; }
    void step_at(std::size_t i, std::span<const T> model_out, std::span<const T> x, const kernels::step_noise<T>&,
                 std::span<T> x_next, std::span<T> x0, std::size_t dim, detail::step_scratch<T>& scratch,
                 const execution& exec, state_type& st) const {
        const auto& sig = this->m_chain.sigmas;
        kernels::sigma_step_coefficients<T> c;
        const std::size_t batch = x.size() / dim;
        if (i % 2 == 0) {
            // 1st order: from σ_i to σ_{i+1}; keep d_1, x and dt for the corrector
            const T sigma = sig[i], next = sig[i + 1];
            this->x0_coefficients(c, sigma);
            c.s = sigma;
            c.dt = next - sigma;
            st.dt = c.dt;
            std::copy(x.begin(), x.end(), st.sample.begin());
            this->run_sigma_step(c, {model_out, x, {}, {}, x_next, x0, std::span<T>(st.derivative)},
                                 kernels::step_noise<T>::none(), batch, scratch, exec);
        } else {
            // 2nd order: the derivative at σ_{i} (= the predictor's σ_next), averaged
            const T next = sig[i];
            this->x0_coefficients(c, next);
            c.s = next;
            c.dt = st.dt;
            c.average = true;
            this->run_sigma_step(c,
                                 {model_out, x, std::span<const T>(st.sample), std::span<const T>(st.derivative),
                                  x_next, x0, {}},
                                 kernels::step_noise<T>::none(), batch, scratch, exec);
        }
    }

private:
    state_type m_state;
};

} // namespace ddpm
