// ddpm/schedule/noise_schedule.hpp — a schedule and every table derived from it.
//
// Tables are computed once in float64 (docs/math.md#derived-tables:
// derived quantities) and exposed as float64 or as a float32 rounding of the float64
// table. Index t runs over [0, T) — the code convention; t = 0 is the least
// noisy step and corresponds to the paper's t = 1.
#pragma once

#include "ddpm/error.hpp"
#include "ddpm/schedule/beta_schedule.hpp"
#include "ddpm/schedule/profile.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ddpm {

/// Every per-timestep table, each of length T, in precision T_.
/// Names follow improved-diffusion / diffusers.
template <class T_>
struct schedule_tables {
    std::vector<T_> betas;                          ///< β_t
    std::vector<T_> alphas;                         ///< α_t = 1 − β_t
    std::vector<T_> alphas_cumprod;                 ///< ᾱ_t = ∏_{s≤t} α_s
    std::vector<T_> alphas_cumprod_prev;            ///< ᾱ_{t−1}, with ᾱ_{−1} = 1
    std::vector<T_> alphas_cumprod_next;            ///< ᾱ_{t+1}, with ᾱ_T = 0
    std::vector<T_> sqrt_alphas_cumprod;            ///< √ᾱ_t
    std::vector<T_> sqrt_one_minus_alphas_cumprod;  ///< √(1 − ᾱ_t)
    std::vector<T_> log_one_minus_alphas_cumprod;   ///< log(1 − ᾱ_t)
    std::vector<T_> sqrt_recip_alphas_cumprod;      ///< 1/√ᾱ_t
    std::vector<T_> sqrt_recipm1_alphas_cumprod;    ///< √(1/ᾱ_t − 1)
    std::vector<T_> posterior_variance;             ///< β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)
    std::vector<T_> posterior_log_variance_clipped; ///< log β̃_t, with t = 0 replaced by log β̃_1
    std::vector<T_> posterior_mean_coef1;           ///< √ᾱ_{t−1} β_t / (1 − ᾱ_t)   (multiplies x_0)
    std::vector<T_> posterior_mean_coef2;           ///< √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) (multiplies x_t)
    std::vector<T_> snr;                            ///< ᾱ_t / (1 − ᾱ_t)

    /// Calls f(name, table) for every table, in the order declared above.
    template <class F>
    void for_each(F&& f) const {
        f("betas", betas);
        f("alphas", alphas);
        f("alphas_cumprod", alphas_cumprod);
        f("alphas_cumprod_prev", alphas_cumprod_prev);
        f("alphas_cumprod_next", alphas_cumprod_next);
        f("sqrt_alphas_cumprod", sqrt_alphas_cumprod);
        f("sqrt_one_minus_alphas_cumprod", sqrt_one_minus_alphas_cumprod);
        f("log_one_minus_alphas_cumprod", log_one_minus_alphas_cumprod);
        f("sqrt_recip_alphas_cumprod", sqrt_recip_alphas_cumprod);
        f("sqrt_recipm1_alphas_cumprod", sqrt_recipm1_alphas_cumprod);
        f("posterior_variance", posterior_variance);
        f("posterior_log_variance_clipped", posterior_log_variance_clipped);
        f("posterior_mean_coef1", posterior_mean_coef1);
        f("posterior_mean_coef2", posterior_mean_coef2);
        f("snr", snr);
    }
};

/// A noise schedule: β_1..β_T, the profile whose conventions apply, and the
/// derived tables in float64 and float32.
///
/// The float32 view is a rounding of the float64 tables, except in the
/// diffusers profile, where it is built as diffusers builds its float32
/// tensors (torch's float32 linspace, float32 α, cumprod accumulated in double
/// and rounded) and the float64 tables keep the float64 formula — so float
/// computations reproduce diffusers as shipped and double computations
/// reproduce diffusers run with float64 tables.
///
/// Construct from a named schedule (`schedule_config`), from user βs
/// (`from_betas`) or from a user ᾱ (`from_alphas_cumprod`). Invalid input
/// throws ddpm::invalid_argument naming the parameter and value.
class noise_schedule {
public:
    /// A named schedule under a profile. The improved_diffusion profile scales
    /// the linear schedule's endpoints by 1000/T; the diffusers profile builds
    /// β and ᾱ in float32 as torch does on the CPU.
    explicit noise_schedule(const schedule_config& config, ddpm::profile p = ddpm::profile::standard)
        : m_profile(p), m_config(config) {
        constexpr std::string_view where = "ddpm::noise_schedule";
        const ddpm::conventions conv = conventions_of(p);
        schedule_config c = config;
        detail::check_num_train_timesteps(where, "num_train_timesteps", c.num_train_timesteps);
        if (conv.scale_linear_by_T && c.schedule == beta_schedule::linear) {
            const double scale = 1000.0 / static_cast<double>(c.num_train_timesteps);
            c.beta_start = scale * c.beta_start;
            c.beta_end = scale * c.beta_end;
        }
        detail::guard_allocation(where, "the schedule tables", [&] {
            auto b = make_betas(c, where);
            validate_betas(std::span<const double>(b), where, c.rescale_betas_zero_snr);
            if (c.rescale_betas_zero_snr) b = rescale_zero_terminal_snr<double>(b);
            build(std::move(b), where);
            if (conv.float32_tables) {
                auto b32 = make_betas_torch_f32(c, where);
                validate_betas(std::span<const float>(b32), where, c.rescale_betas_zero_snr);
                if (c.rescale_betas_zero_snr) b32 = rescale_zero_terminal_snr<float>(b32);
                build_float32_view(b32, where);
            }
        });
    }

    /// User-supplied β_1..β_T, each in (0, 1].
    [[nodiscard]] static noise_schedule from_betas(std::span<const double> betas,
                                                   ddpm::profile p = ddpm::profile::standard) {
        constexpr std::string_view where = "ddpm::noise_schedule::from_betas";
        if (!betas.empty()) detail::check_num_train_timesteps(where, "betas.size()", betas.size());
        validate_betas(betas, where, false);
        noise_schedule s(p);
        s.m_config.num_train_timesteps = static_cast<std::int64_t>(betas.size());
        detail::guard_allocation(where, "the schedule tables", [&] {
            s.build(std::vector<double>(betas.begin(), betas.end()), where);
            if (conventions_of(p).float32_tables) {
                const std::vector<float> b32(betas.begin(), betas.end());
                s.build_float32_view(b32, where);
            }
        });
        return s;
    }

    /// User-supplied ᾱ_1..ᾱ_T: strictly decreasing, ᾱ_1 in (0, 1), the rest in
    /// [0, 1). β_t = 1 − ᾱ_t / ᾱ_{t−1}.
    [[nodiscard]] static noise_schedule from_alphas_cumprod(std::span<const double> alphas_cumprod,
                                                            ddpm::profile p = ddpm::profile::standard) {
        constexpr std::string_view where = "ddpm::noise_schedule::from_alphas_cumprod";
        const std::size_t n = alphas_cumprod.size();
        if (n < 1) detail::throw_invalid(where, "alphas_cumprod.size()", n, ">= 1");
        detail::check_num_train_timesteps(where, "alphas_cumprod.size()", n);
        for (std::size_t i = 0; i < n; ++i) {
            const double a = alphas_cumprod[i];
            if (!std::isfinite(a) || !(a >= 0.0 && a < 1.0) || (i == 0 && !(a > 0.0)))
                detail::throw_invalid(where, "alphas_cumprod[" + std::to_string(i) + "]", a,
                                      i == 0 ? "in (0, 1)" : "in [0, 1)");
            if (i > 0 && !(a < alphas_cumprod[i - 1]))
                detail::throw_invalid(where, "alphas_cumprod[" + std::to_string(i) + "]", a,
                                      "strictly less than alphas_cumprod[" + std::to_string(i - 1) + "] = " +
                                          std::to_string(alphas_cumprod[i - 1]) + " (strictly decreasing)");
        }
        std::vector<double> betas(n);
        for (std::size_t i = 0; i < n; ++i)
            betas[i] = 1.0 - alphas_cumprod[i] / (i == 0 ? 1.0 : alphas_cumprod[i - 1]);
        return from_betas(betas, p);
    }

    /// Number of training timesteps T.
    [[nodiscard]] std::int64_t size() const noexcept { return static_cast<std::int64_t>(m_f64.betas.size()); }
    [[nodiscard]] std::int64_t num_train_timesteps() const noexcept { return size(); }
    [[nodiscard]] ddpm::profile profile() const noexcept { return m_profile; }
    [[nodiscard]] ddpm::conventions conventions() const noexcept { return conventions_of(m_profile); }
    /// The configuration this schedule was built from (for from_betas /
    /// from_alphas_cumprod only num_train_timesteps is meaningful).
    [[nodiscard]] const schedule_config& config() const noexcept { return m_config; }

    /// The tables in precision T_ (double: computed; float: rounded from double).
    template <class T_>
    [[nodiscard]] const schedule_tables<T_>& tables() const noexcept {
        static_assert(std::is_same_v<T_, double> || std::is_same_v<T_, float>,
                      "ddpm::noise_schedule::tables<T>: T must be float or double");
        if constexpr (std::is_same_v<T_, double>) return m_f64;
        else return m_f32;
    }
    [[nodiscard]] const schedule_tables<double>& f64() const noexcept { return m_f64; }
    [[nodiscard]] const schedule_tables<float>& f32() const noexcept { return m_f32; }

    /// Throws ddpm::invalid_argument unless 0 <= t < T.
    void check_timestep(std::int64_t t, std::string_view where, std::string_view parameter = "t") const {
        if (t < 0 || t >= size())
            detail::throw_invalid(where, parameter, t, "in [0, " + std::to_string(size()) + ") (t is 0-based)");
    }

private:
    explicit noise_schedule(ddpm::profile p) : m_profile(p) {}

    template <class B>
    static void validate_betas(std::span<const B> betas, std::string_view where, bool rescale) {
        if (betas.empty()) detail::throw_invalid(where, "betas.size()", 0, ">= 1");
        for (std::size_t i = 0; i < betas.size(); ++i) {
            const double b = static_cast<double>(betas[i]);
            if (!std::isfinite(b) || !(b > 0.0 && b <= 1.0))
                detail::throw_invalid(where, "betas[" + std::to_string(i) + "]", b, "in (0, 1]");
        }
        if (rescale && betas.size() < 2)
            detail::throw_invalid(where, "num_train_timesteps", betas.size(), ">= 2 for rescale_betas_zero_snr");
        // β = 1 before the last step would make every later ᾱ zero.
        for (std::size_t i = 0; i + 1 < betas.size(); ++i)
            if (!rescale && static_cast<double>(betas[i]) == 1.0)
                detail::throw_invalid(where, "betas[" + std::to_string(i) + "]", 1.0,
                                      "< 1 (only the last beta may be 1)");
    }

    /// diffusers: α = 1 − β in float32, ᾱ = cumprod accumulated in double and
    /// rounded to float32 (torch's CPU cumprod). The float32 view holds these
    /// values exactly, and the rest derived from them; the float64 tables keep
    /// the float64 formula (diffusers run with float64 tables).
    void build_float32_view(const std::vector<float>& b32, std::string_view where) {
        const std::size_t n = b32.size();
        std::vector<double> betas(n), alphas(n), acp(n);
        double acc = 1.0;
        for (std::size_t i = 0; i < n; ++i) {
            const float a = 1.0f - b32[i];
            acc *= static_cast<double>(a);
            betas[i] = b32[i];
            alphas[i] = a;
            acp[i] = static_cast<double>(static_cast<float>(acc));
        }
        round_tables(derive(std::move(betas), std::move(alphas), std::move(acp), where, "float32"), m_f32);
        check_float32_view(where);
    }

    void build(std::vector<double> betas, std::string_view where) {
        const std::size_t n = betas.size();
        std::vector<double> alphas(n), acp(n);
        double acc = 1.0;
        for (std::size_t i = 0; i < n; ++i) {
            alphas[i] = 1.0 - betas[i];
            acc *= alphas[i];
            acp[i] = acc;
        }
        m_f64 = derive(std::move(betas), std::move(alphas), std::move(acp), where, "float64");
        round_tables(m_f64, m_f32);
        check_float32_view(where);
    }

    /// Every profile: the float32 view must be finite wherever the float64
    /// tables are (ᾱ_t below about 1e-38 underflows float32 to 0, and 1/√ᾱ_t
    /// overflows to +inf). The only intended infinity, 1/√ᾱ_T with ᾱ_T = 0
    /// (zero terminal SNR), is infinite in float64 too.
    void check_float32_view(std::string_view where) const {
        std::size_t first = m_f32.betas.size();
        std::string table;
        const auto scan = [&](std::string_view name, const auto& f32_table) {
            const auto& f64_table = table_named(m_f64, name);
            for (std::size_t i = 0; i < first && i < f32_table.size(); ++i)
                if (!std::isfinite(f32_table[i]) && std::isfinite(f64_table[i])) {
                    first = i;
                    table = std::string(name);
                    break;
                }
        };
        m_f32.for_each(scan);
        if (table.empty()) return;
        detail::throw_invalid(where, "alphas_cumprod[" + std::to_string(first) + "]", m_f64.alphas_cumprod[first],
                              "a schedule whose float32 tables stay finite: alphas_cumprod underflows float32 here "
                              "(" + table + "[" + std::to_string(first) +
                                  "] is not finite in float32); use fewer timesteps or smaller betas");
    }

    /// The float64 table called `name` (as schedule_tables::for_each names it).
    [[nodiscard]] static const std::vector<double>& table_named(const schedule_tables<double>& t,
                                                               std::string_view name) {
        const std::vector<double>* found = &t.betas;
        t.for_each([&](std::string_view n, const std::vector<double>& v) {
            if (n == name) found = &v;
        });
        return *found;
    }

    /// The derived tables, written as improved-diffusion's numpy code does.
    /// `precision` ("float64" / "float32") names the arithmetic in messages.
    [[nodiscard]] static schedule_tables<double> derive(std::vector<double> betas, std::vector<double> alphas,
                                                        std::vector<double> acp, std::string_view where,
                                                        std::string_view precision) {
        const std::size_t n = betas.size();
        // ᾱ_0 = 1 − β_1 must stay below 1: otherwise 1 − ᾱ_0 = 0 divides the
        // posterior and SNR tables (NaN / Inf everywhere downstream).
        if (n > 0 && !(acp[0] < 1.0))
            detail::throw_invalid(where, "betas[0]", betas[0],
                                  "a larger value: 1 - betas[0] rounds to 1 in " + std::string(precision) +
                                      ", so alphas_cumprod[0] = 1 and the tables divide by 1 - alphas_cumprod[0] = 0");
        for (std::size_t i = 1; i < n; ++i)
            if (!(acp[i] < acp[i - 1]))
                detail::throw_invalid(where, "alphas_cumprod[" + std::to_string(i) + "]", acp[i],
                                      "strictly decreasing (betas underflow in " + std::string(precision) + ")");
        schedule_tables<double> d;
        d.betas = std::move(betas);
        d.alphas = std::move(alphas);
        d.alphas_cumprod = std::move(acp);
        d.alphas_cumprod_prev.resize(n);
        d.alphas_cumprod_next.resize(n);
        d.sqrt_alphas_cumprod.resize(n);
        d.sqrt_one_minus_alphas_cumprod.resize(n);
        d.log_one_minus_alphas_cumprod.resize(n);
        d.sqrt_recip_alphas_cumprod.resize(n);
        d.sqrt_recipm1_alphas_cumprod.resize(n);
        d.posterior_variance.resize(n);
        d.posterior_log_variance_clipped.resize(n);
        d.posterior_mean_coef1.resize(n);
        d.posterior_mean_coef2.resize(n);
        d.snr.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const double ab = d.alphas_cumprod[i];
            const double ab_prev = (i == 0) ? 1.0 : d.alphas_cumprod[i - 1];
            const double b = d.betas[i];
            d.alphas_cumprod_prev[i] = ab_prev;
            d.alphas_cumprod_next[i] = (i + 1 < n) ? d.alphas_cumprod[i + 1] : 0.0;
            d.sqrt_alphas_cumprod[i] = std::sqrt(ab);
            d.sqrt_one_minus_alphas_cumprod[i] = std::sqrt(1.0 - ab);
            d.log_one_minus_alphas_cumprod[i] = std::log(1.0 - ab);
            d.sqrt_recip_alphas_cumprod[i] = std::sqrt(1.0 / ab);
            d.sqrt_recipm1_alphas_cumprod[i] = std::sqrt(1.0 / ab - 1.0);
            d.posterior_variance[i] = b * (1.0 - ab_prev) / (1.0 - ab);
            d.posterior_mean_coef1[i] = b * std::sqrt(ab_prev) / (1.0 - ab);
            d.posterior_mean_coef2[i] = (1.0 - ab_prev) * std::sqrt(d.alphas[i]) / (1.0 - ab);
            d.snr[i] = ab / (1.0 - ab);
        }
        // β̃ at t = 0 is 0; its log is "clipped" to log β̃ at t = 1. With T = 1
        // there is no β̃_1 and log β_0 is used instead.
        for (std::size_t i = 0; i < n; ++i) {
            const double v = (i == 0) ? (n > 1 ? d.posterior_variance[1] : d.betas[0]) : d.posterior_variance[i];
            d.posterior_log_variance_clipped[i] = std::log(v);
        }
        return d;
    }

    /// The float32 view: every table rounded once from float64.
    static void round_tables(const schedule_tables<double>& src, schedule_tables<float>& dst) {
        auto round = [](const std::vector<double>& from, std::vector<float>& to) { to.assign(from.begin(), from.end()); };
        round(src.betas, dst.betas);
        round(src.alphas, dst.alphas);
        round(src.alphas_cumprod, dst.alphas_cumprod);
        round(src.alphas_cumprod_prev, dst.alphas_cumprod_prev);
        round(src.alphas_cumprod_next, dst.alphas_cumprod_next);
        round(src.sqrt_alphas_cumprod, dst.sqrt_alphas_cumprod);
        round(src.sqrt_one_minus_alphas_cumprod, dst.sqrt_one_minus_alphas_cumprod);
        round(src.log_one_minus_alphas_cumprod, dst.log_one_minus_alphas_cumprod);
        round(src.sqrt_recip_alphas_cumprod, dst.sqrt_recip_alphas_cumprod);
        round(src.sqrt_recipm1_alphas_cumprod, dst.sqrt_recipm1_alphas_cumprod);
        round(src.posterior_variance, dst.posterior_variance);
        round(src.posterior_log_variance_clipped, dst.posterior_log_variance_clipped);
        round(src.posterior_mean_coef1, dst.posterior_mean_coef1);
        round(src.posterior_mean_coef2, dst.posterior_mean_coef2);
        round(src.snr, dst.snr);
    }

    ddpm::profile m_profile = ddpm::profile::standard;
    schedule_config m_config{};
    schedule_tables<double> m_f64;
    schedule_tables<float> m_f32;
};

} // namespace ddpm
