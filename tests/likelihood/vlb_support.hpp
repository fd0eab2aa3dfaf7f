// tests/likelihood/vlb_support.hpp — shared pieces of the likelihood tests:
// the toy model of tests/data/vlb.json, the golden navigation, and a table of
// the worst differences reached (printed for the lead to quote).
#pragma once

#include <ddpm/core/likelihood.hpp>
#include <support/golden.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace ddpm_test {

/// vlb.json: x has shape (2, 3, 4, 4): B = 2 samples of D = 48 elements.
inline constexpr std::size_t vlb_batch = 2;
inline constexpr std::size_t vlb_dim = 48;

/// The toy ε-model of vlb.json: tanh(0.7 x)·(0.5 + t/1000) + 0.05 x, and for
/// learned variances 0.3 sin(x) as the second half of the channels (per sample:
/// D predictions, then D variance values).
template <class T>
std::vector<T> toy_model(const std::vector<T>& x, std::int64_t t, bool learned) {
    const std::size_t B = x.size() / vlb_dim;
    const std::size_t stride = (learned ? 2 : 1) * vlb_dim;
    std::vector<T> out(B * stride);
    const T scale = T(0.5) + static_cast<T>(static_cast<double>(t) / 1000.0);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t i = 0; i < vlb_dim; ++i) {
            const T v = x[b * vlb_dim + i];
            out[b * stride + i] = std::tanh(T(0.7) * v) * scale + T(0.05) * v;
            if (learned) out[b * stride + vlb_dim + i] = T(0.3) * std::sin(v);
        }
    return out;
}

/// improved-diffusion's schedule for vlb.json: linear, T = 1000 or 50, with the
/// endpoints scaled by 1000/T (improved_diffusion profile).
inline ddpm::noise_schedule vlb_schedule(std::int64_t T, ddpm::profile p = ddpm::profile::improved_diffusion) {
    ddpm::schedule_config c;
    c.num_train_timesteps = T;
    c.schedule = ddpm::beta_schedule::linear;
    c.beta_start = 0.0001;
    c.beta_end = 0.02;
    return ddpm::noise_schedule(c, p);
}

inline ddpm::variance_type variance_from_golden(const std::string& name) {
    if (name == "FIXED_SMALL") return ddpm::variance_type::fixed_small;
    if (name == "FIXED_LARGE") return ddpm::variance_type::fixed_large;
    if (name == "LEARNED_RANGE") return ddpm::variance_type::learned_range;
    throw std::runtime_error("unexpected variance type " + name);
}

/// The worst difference reached per quantity, printed at the end of a test.
class worst_table {
public:
    explicit worst_table(std::string title) : m_title(std::move(title)) {}
    /// Records `d` under `name`; returns d.
    double record(const std::string& name, double d) {
        auto& w = m_worst[name];
        w = std::max(w, d);
        return d;
    }
    [[nodiscard]] double operator[](const std::string& name) const {
        const auto it = m_worst.find(name);
        return it == m_worst.end() ? 0.0 : it->second;
    }
    void print() const {
        std::cout << "[" << m_title << "] worst differences reached:\n";
        for (const auto& [name, d] : m_worst)
            std::cout << "  " << std::left << std::setw(58) << name << std::setprecision(3) << std::scientific << d
                      << std::defaultfloat << "\n";
    }

private:
    std::string m_title;
    std::map<std::string, double> m_worst;
};

} // namespace ddpm_test
