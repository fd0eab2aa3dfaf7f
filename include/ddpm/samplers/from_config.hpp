// ddpm/samplers/from_config.hpp — every scheduler from a diffusers
// `scheduler_config.json`, with diffusers' meaning for every key it holds and
// the class's defaults for every key it lacks; and any_scheduler<T>, the
// scheduler `_class_name` names, usable with the one-call ddpm::sample.
//
// Optional header: it needs nlohmann_json (through
// <ddpm/schedule/scheduler_config_json.hpp>) and is not part of the umbrella.
//
//   std::vector<std::string> warnings;
//   auto s = ddpm::load_scheduler<float>("model/scheduler", &warnings);   // _class_name decides
//   s.set_timesteps(25);                      // the config's spacing and steps_offset
//   ddpm::sample(s, net, noise, out, ddpm::sampler_options{.batch = B});
//
//   auto ddim = ddpm::scheduler_from_config<float, ddpm::ddim_scheduler>(json, &warnings);  // this class
//
// Key policy (docs/scheduler_config.md, "Schedulers from a config"):
// 1. The keys diffusers writes into every config (`_class_name`,
//    `_diffusers_version`, `_use_default_values`, `_name_or_path`) load
//    silently.
// 2. Keys the chosen class has are read with diffusers' meaning; keys it
//    lacks take the class's default (diffusers' `__init__`): e.g.
//    clip_sample = true for DDPM/DDIM, timestep_spacing = "linspace" and no
//    clipping for the Euler family and the multistep solvers, β from 0.00085
//    to 0.012 for Heun.
// 3. A value of a setting ddpm does not implement (use_beta_sigmas = true,
//    a finite lambda_min_clipped, flow sigmas, dynamic shifting, EDM
//    timestep_type "continuous", …) throws ddpm::invalid_argument naming
//    the key and value; nothing is silently approximated.
// 4. A key of another scheduler class adds one warning (diffusers logs
//    "config attributes … will be ignored" for it); an unknown key adds the
//    loader's `unknown key "X" ignored`.
#pragma once

#include "ddpm/pipelines.hpp"
#include "ddpm/samplers/chain.hpp"
#include "ddpm/samplers/ddim.hpp"
#include "ddpm/samplers/ddpm.hpp"
#include "ddpm/samplers/dpm_solver.hpp"
#include "ddpm/samplers/euler.hpp"
#include "ddpm/samplers/heun.hpp"
#include "ddpm/samplers/unipc.hpp"
#include "ddpm/schedule/scheduler_config_json.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace ddpm {

/// The diffusers scheduler classes ddpm builds from a config.
enum class scheduler_kind { ddpm, ddim, euler, euler_ancestral, heun, dpm_solver_multistep, unipc };

/// diffusers' class name of a kind ("DDPMScheduler", …).
[[nodiscard]] constexpr std::string_view class_name(scheduler_kind k) noexcept {
    switch (k) {
    case scheduler_kind::ddpm: return "DDPMScheduler";
    case scheduler_kind::ddim: return "DDIMScheduler";
    case scheduler_kind::euler: return "EulerDiscreteScheduler";
    case scheduler_kind::euler_ancestral: return "EulerAncestralDiscreteScheduler";
    case scheduler_kind::heun: return "HeunDiscreteScheduler";
    case scheduler_kind::dpm_solver_multistep: return "DPMSolverMultistepScheduler";
    case scheduler_kind::unipc: return "UniPCMultistepScheduler";
    }
    return "?";
}

/// The kind a diffusers `_class_name` names.
/// @throws ddpm::invalid_argument for any other class (PNDMScheduler, LMS, …).
[[nodiscard]] inline scheduler_kind scheduler_kind_from_class_name(std::string_view name) {
    for (const auto k : {scheduler_kind::ddpm, scheduler_kind::ddim, scheduler_kind::euler,
                         scheduler_kind::euler_ancestral, scheduler_kind::heun, scheduler_kind::dpm_solver_multistep,
                         scheduler_kind::unipc})
        if (class_name(k) == name) return k;
    detail::throw_invalid("ddpm::scheduler_kind_from_class_name", "_class_name", std::string(name),
                          "one of DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler, "
                          "EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, DPMSolverMultistepScheduler, "
                          "UniPCMultistepScheduler (pass the class explicitly to use this config's training "
                          "schedule with one of them)");
}

/// Everything a config says for one scheduler class, diffusers' class
/// defaults filled in: the input of every scheduler's constructor.
struct scheduler_settings {
    scheduler_kind kind = scheduler_kind::ddpm;
    /// The training schedule and the DDPM/DDIM keys (build the tables with make_schedule).
    scheduler_config config{};
    /// prediction_type, variance_type and clipping as the class reads them.
    model_options model{};
    ddim_options ddim{};
    euler_options euler{};
    dpm_solver_options dpm{};
    unipc_options unipc{};
};

namespace detail::from_config {

using detail::scheduler_json::read_bool;
using detail::scheduler_json::read_integer;
using detail::scheduler_json::read_string;
using detail::scheduler_json::show;

/// Metadata diffusers writes into every config and ignores itself.
inline constexpr std::string_view metadata_keys[] = {"_class_name", "_diffusers_version", "_use_default_values",
                                                     "_name_or_path"};

/// The keys of scheduler_config a class does NOT have (diffusers ignores
/// them for that class).
inline std::vector<std::string_view> absent_shared_keys(scheduler_kind k) {
    switch (k) {
    case scheduler_kind::ddpm: return {"set_alpha_to_one"};
    case scheduler_kind::ddim: return {"variance_type"};
    case scheduler_kind::euler:
    case scheduler_kind::euler_ancestral:
        return {"variance_type", "clip_sample", "clip_sample_range", "thresholding", "dynamic_thresholding_ratio",
                "sample_max_value", "set_alpha_to_one"};
    case scheduler_kind::heun:
        return {"variance_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
                "set_alpha_to_one", "rescale_betas_zero_snr"};
    case scheduler_kind::dpm_solver_multistep:
        return {"clip_sample", "clip_sample_range", "set_alpha_to_one"};
    case scheduler_kind::unipc: return {"variance_type", "clip_sample", "clip_sample_range", "set_alpha_to_one"};
    }
    return {};
}

/// The class's defaults for the shared keys where they differ from
/// scheduler_config's (which are DDPMScheduler's).
inline void class_defaults(scheduler_kind k, nlohmann::json& j) {
    const auto def = [&](const char* key, nlohmann::json v) {
        if (!j.contains(key) || j.at(key).is_null()) j[key] = std::move(v);
    };
    if (k == scheduler_kind::ddpm || k == scheduler_kind::ddim) return;
    def("timestep_spacing", "linspace");
    if (k == scheduler_kind::heun) {
        def("beta_start", 0.00085);
        def("beta_end", 0.012);
        def("clip_sample", false);
    }
}

/// Reads and removes the class's own keys from `j`.
class own_keys {
public:
    own_keys(nlohmann::json& j, std::string_view where) : m_j(j), m_where(where) {}

    /// The value of `key` (removed from j), or nullopt when absent or null.
    std::optional<nlohmann::json> take(const char* key) {
        if (!m_j.contains(key)) return std::nullopt;
        nlohmann::json v = std::move(m_j[key]);
        m_j.erase(key);
        if (v.is_null()) return std::nullopt;
        return v;
    }
    void boolean(const char* key, bool& out) {
        if (auto v = take(key)) out = read_bool(m_where, key, *v);
    }
    /// A setting ddpm implements only at one value.
    void only(const char* key, const nlohmann::json& supported, std::string_view what) {
        if (auto v = take(key); v && *v != supported)
            throw_invalid(m_where, key, show(*v), std::string(what) + " (ddpm does not implement other values)");
    }
    /// A key that has no effect under the settings ddpm implements.
    void drop(const char* key) { (void)take(key); }
    std::optional<std::string> string(const char* key, std::string_view accepted) {
        auto v = take(key);
        if (!v) return std::nullopt;
        return read_string(m_where, key, *v, accepted);
    }
    sigma_schedule sigmas() {
        bool karras = false, exponential = false;
        boolean("use_karras_sigmas", karras);
        boolean("use_exponential_sigmas", exponential);
        only("use_beta_sigmas", false, "false");
        if (karras && exponential)
            throw_invalid(m_where, "use_exponential_sigmas", "true",
                          "false when use_karras_sigmas is true (diffusers refuses both)");
        return karras ? sigma_schedule::karras : exponential ? sigma_schedule::exponential : sigma_schedule::discrete;
    }
    final_sigmas_type final_sigmas() {
        constexpr std::string_view accepted = "one of \"zero\", \"sigma_min\"";
        const auto s = string("final_sigmas_type", accepted);
        if (!s) return final_sigmas_type::zero;
        if (*s != "zero" && *s != "sigma_min") throw_invalid(m_where, "final_sigmas_type", show(*s), accepted);
        return final_sigmas_type_from_string(*s);
    }
    int order() {
        auto v = take("solver_order");
        if (!v) return 2;
        const auto o = read_integer(m_where, "solver_order", *v, 1);
        if (o > 3) throw_invalid(m_where, "solver_order", o, "1, 2 or 3");
        return static_cast<int>(o);
    }
    /// Flow-matching and dynamic-shifting keys: only their "off" values.
    void no_flow() {
        only("use_flow_sigmas", false, "false");
        only("use_dynamic_shifting", false, "false");
        drop("flow_shift");      // used only with flow sigmas
        drop("time_shift_type"); // used only with dynamic shifting
    }

private:
    nlohmann::json& m_j;
    std::string_view m_where;
};

/// A config's settings for `kind`; `j` is a copy the function consumes.
inline scheduler_settings settings(nlohmann::json j, scheduler_kind kind, std::vector<std::string>* warnings,
                                   const std::string& where) {
    const auto warn = [&](std::string message) {
        if (warnings) warnings->push_back(std::move(message));
    };
    scheduler_settings s;
    s.kind = kind;
    for (const auto key : metadata_keys) j.erase(std::string(key));
    const std::string cls(class_name(kind));
    for (const auto key : absent_shared_keys(kind)) {
        const std::string k(key);
        if (!j.contains(k)) continue;
        if (!j.at(k).is_null())
            warn("key \"" + k + "\" = " + show(j.at(k)) + " ignored (" + cls +
                 " has no such setting; diffusers ignores it too)");
        j.erase(k);
    }
    own_keys own(j, where);
    std::optional<variance_type> dpm_variance;
    switch (kind) {
    case scheduler_kind::ddpm:
    case scheduler_kind::ddim: break;
    case scheduler_kind::euler:
        s.euler.sigmas = own.sigmas();
        s.euler.final_sigmas = own.final_sigmas();
        own.only("interpolation_type", "linear", "\"linear\"");
        own.only("timestep_type", "discrete", "\"discrete\"");
        own.only("sigma_min", nullptr, "null");
        own.only("sigma_max", nullptr, "null");
        break;
    case scheduler_kind::euler_ancestral: break;
    case scheduler_kind::heun: s.euler.sigmas = own.sigmas(); break;
    case scheduler_kind::dpm_solver_multistep: {
        constexpr std::string_view algorithms = "one of \"dpmsolver++\", \"sde-dpmsolver++\", \"dpmsolver\"";
        if (const auto a = own.string("algorithm_type", algorithms)) {
            if (*a == "dpmsolver++") s.dpm.algorithm = dpm_algorithm::dpmsolver_pp;
            else if (*a == "sde-dpmsolver++") s.dpm.algorithm = dpm_algorithm::sde_dpmsolver_pp;
            else if (*a == "dpmsolver") s.dpm.algorithm = dpm_algorithm::dpmsolver;
            else throw_invalid(where, "algorithm_type", show(*a), algorithms);
        }
        s.dpm.solver_order = own.order();
        constexpr std::string_view types = "one of \"midpoint\", \"heun\"";
        if (const auto t = own.string("solver_type", types)) {
            if (*t != "midpoint" && *t != "heun") throw_invalid(where, "solver_type", show(*t), types);
            s.dpm.solver_type = *t == "heun" ? dpm_solver_type::heun : dpm_solver_type::midpoint;
        }
        own.boolean("lower_order_final", s.dpm.lower_order_final);
        own.boolean("euler_at_final", s.dpm.euler_at_final);
        s.dpm.final_sigmas = own.final_sigmas();
        s.dpm.sigmas = own.sigmas();
        own.boolean("use_lu_lambdas", s.dpm.use_lu_lambdas);
        if (auto v = own.take("lambda_min_clipped"); v && *v != "-Infinity")
            throw_invalid(where, "lambda_min_clipped", show(*v),
                          "-Infinity, diffusers' default (ddpm does not clip the log-SNR of inference timesteps)");
        own.no_flow();
        // DPMSolverMultistepScheduler's variance_type: null, or "learned" /
        // "learned_range" (the network's second half of channels is dropped).
        if (auto v = own.take("variance_type")) {
            constexpr std::string_view accepted = "null, \"learned\" or \"learned_range\"";
            const auto name = read_string(where, "variance_type", *v, accepted);
            if (name != "learned" && name != "learned_range") throw_invalid(where, "variance_type", show(*v), accepted);
            dpm_variance = variance_type_from_string(name);
        }
        break;
    }
    case scheduler_kind::unipc: {
        s.unipc.solver_order = own.order();
        constexpr std::string_view types = "one of \"bh1\", \"bh2\"";
        if (const auto t = own.string("solver_type", types)) {
            if (*t != "bh1" && *t != "bh2") throw_invalid(where, "solver_type", show(*t), types);
            s.unipc.solver_type = *t == "bh1" ? unipc_solver_type::bh1 : unipc_solver_type::bh2;
        }
        own.boolean("predict_x0", s.unipc.predict_x0);
        own.boolean("lower_order_final", s.unipc.lower_order_final);
        if (auto v = own.take("disable_corrector")) {
            if (!v->is_array()) detail::scheduler_json::wrong_type(where, "disable_corrector", *v, "a list of step indices");
            for (std::size_t i = 0; i < v->size(); ++i)
                s.unipc.disable_corrector.push_back(static_cast<std::size_t>(
                    read_integer(where, "disable_corrector[" + std::to_string(i) + "]", (*v)[i], 0)));
        }
        s.unipc.final_sigmas = own.final_sigmas();
        s.unipc.sigmas = own.sigmas();
        own.only("solver_p", nullptr, "null");
        own.only("sigma_min", nullptr, "null");
        own.only("sigma_max", nullptr, "null");
        own.only("shift_terminal", nullptr, "null");
        own.no_flow();
        break;
    }
    }
    class_defaults(kind, j);
    s.config = detail::scheduler_json::parse(j, warnings, where);

    const scheduler_config& c = s.config;
    s.model.prediction = c.prediction_type;
    if (kind == scheduler_kind::ddpm) s.model.variance = c.variance_type;
    if (dpm_variance) s.model.variance = *dpm_variance;
    const bool thresholds = kind == scheduler_kind::ddpm || kind == scheduler_kind::ddim ||
                            kind == scheduler_kind::dpm_solver_multistep || kind == scheduler_kind::unipc;
    const bool clips = kind == scheduler_kind::ddpm || kind == scheduler_kind::ddim || kind == scheduler_kind::heun;
    if (thresholds && c.thresholding) s.model.clip = clip_options::dynamic(c.dynamic_thresholding_ratio, c.sample_max_value);
    else if (clips && c.clip_sample) s.model.clip = clip_options::clip(c.clip_sample_range);
    s.ddim.set_alpha_to_one = c.set_alpha_to_one;
    s.ddim.previous = ddim_previous_rule::diffusers; // prev = t − T/N, as DDIMScheduler.step
    s.euler.spacing = s.dpm.spacing = s.unipc.spacing = c.timestep_spacing;
    s.euler.steps_offset = s.dpm.steps_offset = s.unipc.steps_offset = c.steps_offset;
    return s;
}

/// The kind: the caller's, else the config's `_class_name`.
inline scheduler_kind kind_of(const nlohmann::json& j, std::optional<scheduler_kind> kind, const std::string& where) {
    if (kind) return *kind;
    if (!j.is_object()) detail::scheduler_json::wrong_type(where, "scheduler_config", j, "a JSON object");
    if (!j.contains("_class_name") || j.at("_class_name").is_null())
        throw_invalid(where, "_class_name", "(absent)",
                      "the scheduler class, e.g. \"DDIMScheduler\" (or pass the class explicitly)");
    return scheduler_kind_from_class_name(read_string(where, "_class_name", j.at("_class_name"), "a string"));
}

} // namespace detail::from_config

/// The settings a config gives the class `kind` (or, when nullopt, the
/// class its `_class_name` names), with that class's defaults.
/// @throws ddpm::invalid_argument on a bad value (naming the key), an
///         unsupported class, or a setting ddpm does not implement.
[[nodiscard]] inline scheduler_settings scheduler_settings_from_json(const nlohmann::json& j,
                                                                     std::optional<scheduler_kind> kind = std::nullopt,
                                                                     std::vector<std::string>* warnings = nullptr) {
    const std::string where = "ddpm::scheduler_settings_from_json";
    const auto k = detail::from_config::kind_of(j, kind, where);
    if (!j.is_object()) detail::scheduler_json::wrong_type(where, "scheduler_config", j, "a JSON object");
    return detail::from_config::settings(j, k, warnings, where);
}

/// Which scheduler_kind a scheduler class template is.
template <template <class> class S>
inline constexpr scheduler_kind scheduler_kind_of = [] {
    if constexpr (std::is_same_v<S<float>, ddpm_scheduler<float>>) return scheduler_kind::ddpm;
    else if constexpr (std::is_same_v<S<float>, ddim_scheduler<float>>) return scheduler_kind::ddim;
    else if constexpr (std::is_same_v<S<float>, euler_scheduler<float>>) return scheduler_kind::euler;
    else if constexpr (std::is_same_v<S<float>, euler_ancestral_scheduler<float>>) return scheduler_kind::euler_ancestral;
    else if constexpr (std::is_same_v<S<float>, heun_scheduler<float>>) return scheduler_kind::heun;
    else if constexpr (std::is_same_v<S<float>, dpm_solver_multistep_scheduler<float>>)
        return scheduler_kind::dpm_solver_multistep;
    else return scheduler_kind::unipc;
}();

/// The scheduler object of class S<T> that settings describe (the schedule
/// tables built under profile `p`).
template <class T, template <class> class S>
[[nodiscard]] S<T> make_scheduler(const scheduler_settings& s, profile p = profile::diffusers) {
    noise_schedule sched = make_schedule(s.config, p);
    if constexpr (std::is_same_v<S<T>, ddpm_scheduler<T>>) return S<T>(std::move(sched), s.model);
    else if constexpr (std::is_same_v<S<T>, ddim_scheduler<T>>) return S<T>(std::move(sched), s.model, s.ddim);
    else if constexpr (std::is_same_v<S<T>, dpm_solver_multistep_scheduler<T>>)
        return S<T>(std::move(sched), s.model, s.dpm);
    else if constexpr (std::is_same_v<S<T>, unipc_scheduler<T>>) return S<T>(std::move(sched), s.model, s.unipc);
    else return S<T>(std::move(sched), s.model, s.euler);
}

/// The scheduler of class S (ddpm_scheduler, ddim_scheduler, euler_scheduler,
/// euler_ancestral_scheduler, heun_scheduler, dpm_solver_multistep_scheduler,
/// unipc_scheduler) that a loaded `scheduler_config.json` describes, whatever
/// its `_class_name` (diffusers' `S.from_config(other.config)`): the config's
/// training schedule and the keys S has; S's defaults for the rest.
/// DDPM/DDIM take timestep_spacing and steps_offset as set_timesteps
/// arguments: read them from scheduler_settings_from_json, or use
/// any_scheduler, which applies them.
template <class T, template <class> class S>
[[nodiscard]] S<T> scheduler_from_config(const nlohmann::json& j, std::vector<std::string>* warnings = nullptr,
                                         profile p = profile::diffusers) {
    return make_scheduler<T, S>(scheduler_settings_from_json(j, scheduler_kind_of<S>, warnings), p);
}

/// One of the schedulers, chosen at run time (by a config's `_class_name`).
/// set_timesteps(n) applies the config's timestep_spacing and steps_offset
/// to every class; ddpm::sample(any, …) runs the held scheduler. Reach the
/// scheduler itself with get<S<T>>() or visit().
template <std::floating_point T>
class any_scheduler {
public:
    using value_type = T;
    using variant_type = std::variant<ddpm_scheduler<T>, ddim_scheduler<T>, euler_scheduler<T>,
                                      euler_ancestral_scheduler<T>, heun_scheduler<T>,
                                      dpm_solver_multistep_scheduler<T>, unipc_scheduler<T>>;

    /// The scheduler of `settings.kind`.
    explicit any_scheduler(const scheduler_settings& settings, profile p = profile::diffusers)
        : m_v(make(settings, p)), m_spacing(settings.config.timestep_spacing),
          m_steps_offset(settings.config.steps_offset) {}

    [[nodiscard]] scheduler_kind kind() const noexcept { return static_cast<scheduler_kind>(m_v.index()); }
    /// diffusers' class name of the held scheduler.
    [[nodiscard]] std::string_view name() const noexcept { return class_name(kind()); }

    /// set_timesteps(num_inference_steps) with the config's spacing and offset.
    /// @throws ddpm::invalid_argument as the held scheduler's set_timesteps.
    void set_timesteps(std::int64_t num_inference_steps) {
        std::visit(
            [&](auto& s) {
                using S = std::remove_cvref_t<decltype(s)>;
                if constexpr (std::is_same_v<S, ddpm_scheduler<T>> || std::is_same_v<S, ddim_scheduler<T>>)
                    s.set_timesteps(num_inference_steps, m_spacing, m_steps_offset);
                else s.set_timesteps(num_inference_steps);
            },
            m_v);
    }
    /// Network calls of a run after set_timesteps.
    [[nodiscard]] std::size_t num_steps() const {
        return std::visit([](const auto& s) { return static_cast<std::size_t>(s.num_steps()); }, m_v);
    }

    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), m_v);
    }
    template <class F>
    decltype(auto) visit(F&& f) const {
        return std::visit(std::forward<F>(f), m_v);
    }
    template <class S>
    [[nodiscard]] S& get() {
        return std::get<S>(m_v);
    }
    template <class S>
    [[nodiscard]] const S& get() const {
        return std::get<S>(m_v);
    }
    template <class S>
    [[nodiscard]] bool holds() const noexcept {
        return std::holds_alternative<S>(m_v);
    }

private:
    static variant_type make(const scheduler_settings& s, profile p) {
        switch (s.kind) {
        case scheduler_kind::ddpm: return make_scheduler<T, ddpm_scheduler>(s, p);
        case scheduler_kind::ddim: return make_scheduler<T, ddim_scheduler>(s, p);
        case scheduler_kind::euler: return make_scheduler<T, euler_scheduler>(s, p);
        case scheduler_kind::euler_ancestral: return make_scheduler<T, euler_ancestral_scheduler>(s, p);
        case scheduler_kind::heun: return make_scheduler<T, heun_scheduler>(s, p);
        case scheduler_kind::dpm_solver_multistep: return make_scheduler<T, dpm_solver_multistep_scheduler>(s, p);
        case scheduler_kind::unipc: return make_scheduler<T, unipc_scheduler>(s, p);
        }
        return make_scheduler<T, ddpm_scheduler>(s, p);
    }

    variant_type m_v;
    timestep_spacing m_spacing;
    std::int64_t m_steps_offset;
};

/// The scheduler a config's `_class_name` names (or `kind`, when given).
template <std::floating_point T>
[[nodiscard]] any_scheduler<T> scheduler_from_config(const nlohmann::json& j,
                                                     std::vector<std::string>* warnings = nullptr,
                                                     std::optional<scheduler_kind> kind = std::nullopt,
                                                     profile p = profile::diffusers) {
    return any_scheduler<T>(scheduler_settings_from_json(j, kind, warnings), p);
}

/// load_scheduler_config()'s file rules (a file, or a pipeline folder), then
/// scheduler_from_config().
template <std::floating_point T>
[[nodiscard]] any_scheduler<T> load_scheduler(const std::string& path, std::vector<std::string>* warnings = nullptr,
                                              std::optional<scheduler_kind> kind = std::nullopt,
                                              profile p = profile::diffusers) {
    const auto f = detail::scheduler_json::read_config_file(path, "ddpm::load_scheduler");
    const std::string where = "ddpm::load_scheduler(" + f.file + ")";
    const nlohmann::json j = detail::scheduler_json::json_of_text(f.text, where);
    const auto k = detail::from_config::kind_of(j, kind, where);
    if (!j.is_object()) detail::scheduler_json::wrong_type(where, "scheduler_config", j, "a JSON object");
    return any_scheduler<T>(detail::from_config::settings(j, k, warnings, where), p);
}

/// ddpm::sample with the scheduler an any_scheduler holds. The network must
/// suit the held class: an integer-timestep ddpm::denoiser for DDPM, DDIM,
/// DPM-Solver and UniPC; a continuous_denoiser (or ddpm::round_timesteps(net),
/// or a generic `auto t` callable) for the Euler family. The observer gets
/// that class's timestep type (a generic lambda suits all).
/// @throws ddpm::invalid_argument when the network or the observer cannot be
///         called as the held class calls it; otherwise as ddpm::sample.
namespace detail::from_config {

/// Calls f(held scheduler) when the network suits the held class, else
/// throws naming the class (see ddpm::sample(any_scheduler, …)).
template <class T, class Model, class F>
std::size_t with_model(std::string_view where, const any_scheduler<T>& scheduler, F&& f) {
    return scheduler.visit([&](const auto& s) -> std::size_t {
        using S = std::remove_cvref_t<decltype(s)>;
        constexpr bool multistep =
            std::is_same_v<S, dpm_solver_multistep_scheduler<T>> || std::is_same_v<S, unipc_scheduler<T>>;
        constexpr bool continuous = detail::continuous_timesteps_v<S>;
        if constexpr (multistep ? denoiser<Model, T> : callable_with_timesteps_v<Model, T, continuous>) {
            return f(s);
        } else {
            throw_invalid(where, "model", std::string(scheduler.name()),
                          continuous ? "a network taking real-valued timesteps (this scheduler passes them; wrap an "
                                       "integer-timestep network in ddpm::round_timesteps(net))"
                                     : "a network taking ddpm::timestep_t timesteps");
        }
    });
}

} // namespace detail::from_config

/// ddpm::img2img with the scheduler an any_scheduler holds.
template <std::floating_point T, class Model, class Noise, input_buffer I, output_buffer O>
std::size_t img2img(const any_scheduler<T>& scheduler, double strength, Model&& model, Noise&& noise, const I& image,
                    O&& out, const sampler_options& options) {
    return detail::from_config::with_model<T, Model>("ddpm::img2img", scheduler, [&](const auto& s) {
        return img2img(s, strength, model, noise, image, out, options);
    });
}

/// ddpm::inpaint with the scheduler an any_scheduler holds.
template <std::floating_point T, class Model, class Noise, input_buffer K, input_buffer M, output_buffer O>
std::size_t inpaint(const any_scheduler<T>& scheduler, Model&& model, Noise&& noise, const K& known, const M& mask,
                    O&& out, const sampler_options& options, inpaint_options io = {}) {
    return detail::from_config::with_model<T, Model>("ddpm::inpaint", scheduler, [&](const auto& s) {
        return inpaint(s, model, noise, known, mask, out, options, io);
    });
}

template <std::floating_point T, class Model, class Noise, output_buffer O, class Observer = no_observer>
std::size_t sample(const any_scheduler<T>& scheduler, Model&& model, Noise&& noise, O&& out,
                   const sampler_options& options = {}, Observer&& observe = Observer{}) {
    detail::check_output_layout(out, options.batch, "out");
    return scheduler.visit([&](const auto& s) -> std::size_t {
        using S = std::remove_cvref_t<decltype(s)>;
        using Tv = detail::model_timestep_t<S>;
        constexpr bool continuous = detail::continuous_timesteps_v<S>;
        constexpr bool observer_ok =
            std::is_same_v<std::remove_cvref_t<Observer>, no_observer> || sampler_observer<Observer, T, Tv>;
        constexpr bool multistep =
            std::is_same_v<S, dpm_solver_multistep_scheduler<T>> || std::is_same_v<S, unipc_scheduler<T>>;
        constexpr bool model_ok = multistep ? denoiser<Model, T> : callable_with_timesteps_v<Model, T, continuous>;
        if constexpr (model_ok && observer_ok) {
            if constexpr (std::is_same_v<S, dpm_solver_multistep_scheduler<T>>)
                return dpm_solver_sample(s, model, noise, out, options, observe);
            else if constexpr (std::is_same_v<S, unipc_scheduler<T>>)
                return unipc_sample(s, model, noise, out, options, observe);
            else return detail::sample_with("ddpm::sample", s, model, noise, out, options, observe);
        } else {
            detail::throw_invalid("ddpm::sample", "model", std::string(scheduler.name()),
                                  continuous ? "a network (and observer) taking real-valued timesteps: this "
                                               "scheduler passes them; wrap an integer-timestep network in "
                                               "ddpm::round_timesteps(net)"
                                             : "a network (and observer) taking ddpm::timestep_t timesteps");
        }
    });
}

} // namespace ddpm
