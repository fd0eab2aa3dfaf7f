// ddpm_inspect — print what ddpm computes as JSON, to diff against Python peers.
//
//   ddpm_inspect schedule --schedule linear --timesteps 1000 --profile diffusers
//   ddpm_inspect schedule --config path/to/scheduler_config.json
//   ddpm_inspect timesteps --schedule linear --timesteps 1000 --steps 50 --spacing trailing
//   ddpm_inspect timesteps --scheduler euler --schedule linear --timesteps 1000 --steps 10
//                          --spacing linspace --sigmas karras
//
// Output is one JSON object on stdout; numbers are printed with 17
// significant digits (they parse back to the identical double) and
// non-finite values as the strings "NaN", "Infinity", "-Infinity".
// docs/inspect.md shows how to compare with diffusers.
//
// Exit codes: 0 success, 1 bad input file (unreadable, invalid
// scheduler_config.json), 2 bad command line (usage on stderr).
//
// Adding a subcommand: write `int run_NAME(args, out, err)` and its usage
// text, and add one row to `subcommands` (see "EXTENSION POINT" below). The
// option parser (`parse_options`), the value parsers (`parse_int`,
// `parse_double`, `parse_profile`) and the JSON writer (`json_writer`) are
// shared by every subcommand.
#include <ddpm/samplers/dpm_solver.hpp>
#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>
#include <ddpm/samplers/timesteps.hpp>
#include <ddpm/samplers/unipc.hpp>
#include <ddpm/schedule/noise_schedule.hpp>
#include <ddpm/schedule/profile.hpp>
#include <ddpm/schedule/scheduler_config.hpp>
#include <ddpm/schedule/scheduler_config_json.hpp>
#include <ddpm/version.hpp>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace {

// ---------------------------------------------------------------------------
// Errors: a usage_error prints the subcommand's usage and exits 2; an
// input_error (a file that cannot be used) prints the message and exits 1.

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct input_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr int exit_ok = 0;
constexpr int exit_input = 1;
constexpr int exit_usage = 2;

// ---------------------------------------------------------------------------
// Option parsing, shared by every subcommand.
//
// Options are "--name value", "--name=value" or, for flags, "--name".
// Positional arguments, unknown options, repeated options and missing values
// are usage errors.

struct option_spec {
    std::string_view name; ///< without the leading "--"
    bool takes_value;
};

class parsed_options {
public:
    [[nodiscard]] bool has(std::string_view name) const { return m_values.count(std::string(name)) != 0; }
    [[nodiscard]] std::optional<std::string> value(std::string_view name) const {
        const auto it = m_values.find(std::string(name));
        if (it == m_values.end()) return std::nullopt;
        return it->second;
    }
    /// The value of a required option.
    [[nodiscard]] std::string require(std::string_view name) const {
        auto v = value(name);
        if (!v) throw usage_error("missing required option --" + std::string(name));
        return *v;
    }
    void set(std::string name, std::string value) { m_values.emplace(std::move(name), std::move(value)); }

private:
    std::map<std::string, std::string> m_values;
};

[[nodiscard]] parsed_options parse_options(std::span<const std::string_view> args,
                                           std::span<const option_spec> specs) {
    parsed_options out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (arg.size() < 3 || arg.substr(0, 2) != "--")
            throw usage_error("unexpected argument '" + std::string(arg) + "'");
        std::string_view name = arg.substr(2);
        std::optional<std::string> inline_value;
        if (const auto eq = name.find('='); eq != std::string_view::npos) {
            inline_value = std::string(name.substr(eq + 1));
            name = name.substr(0, eq);
        }
        const option_spec* spec = nullptr;
        for (const auto& s : specs)
            if (s.name == name) spec = &s;
        if (!spec) throw usage_error("unknown option --" + std::string(name));
        if (out.has(name)) throw usage_error("option --" + std::string(name) + " given twice");
        if (!spec->takes_value) {
            if (inline_value) throw usage_error("option --" + std::string(name) + " takes no value");
            out.set(std::string(name), "");
            continue;
        }
        if (inline_value) {
            out.set(std::string(name), *inline_value);
            continue;
        }
        if (i + 1 >= args.size() || args[i + 1].substr(0, 2) == "--")
            throw usage_error("option --" + std::string(name) + " needs a value");
        out.set(std::string(name), std::string(args[++i]));
    }
    return out;
}

[[nodiscard]] std::int64_t parse_int(std::string_view option, const std::string& text) {
    std::int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty())
        throw usage_error("--" + std::string(option) + " = '" + text + "': expected an integer");
    return v;
}

[[nodiscard]] double parse_double(std::string_view option, const std::string& text) {
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty() || !std::isfinite(v))
        throw usage_error("--" + std::string(option) + " = '" + text + "': expected a finite number");
    return v;
}

[[nodiscard]] ddpm::profile parse_profile(const std::string& text) {
    try {
        return ddpm::profile_from_string(text);
    } catch (const ddpm::invalid_argument&) {
        throw usage_error("--profile = '" + text +
                          "': expected one of default, ho2020, improved_diffusion, diffusers");
    }
}

// ---------------------------------------------------------------------------
// JSON output, shared by every subcommand: one object, one key per line.
// Numbers use 17 significant digits (round-trip); non-finite numbers are the
// strings "NaN", "Infinity", "-Infinity" (the golden-data convention).

class json_writer {
public:
    json_writer() { m_text = "{"; }

    /// `"key": <value>` where value is any nlohmann JSON (metadata).
    void value(std::string_view key, const nlohmann::json& v) {
        begin(key);
        m_text += v.dump();
    }

    void number_array(std::string_view key, std::span<const double> values) {
        begin(key);
        m_text += '[';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i) m_text += ", ";
            append_number(values[i]);
        }
        m_text += ']';
    }

    void integer_array(std::string_view key, std::span<const std::int64_t> values) {
        begin(key);
        m_text += '[';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i) m_text += ", ";
            m_text += std::to_string(values[i]);
        }
        m_text += ']';
    }

    /// Closes the object and writes it to `out`.
    void finish(std::ostream& out) {
        m_text += "\n}\n";
        out << m_text;
        out.flush();
    }

    void append_number(double v) {
        if (std::isnan(v)) {
            m_text += "\"NaN\"";
        } else if (std::isinf(v)) {
            m_text += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
        } else {
            char buf[32];
            const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 17);
            m_text.append(buf, r.ptr);
        }
    }

private:
    void begin(std::string_view key) {
        m_text += m_first ? "\n  " : ",\n  ";
        m_first = false;
        m_text += nlohmann::json(std::string(key)).dump();
        m_text += ": ";
    }

    std::string m_text;
    bool m_first = true;
};

// ---------------------------------------------------------------------------
// Subcommand: schedule

constexpr std::string_view schedule_usage = R"(usage:
  ddpm_inspect schedule --schedule NAME --timesteps T [--beta-start X] [--beta-end Y]
                        [--rescale-zero-snr] [--profile P] [--precision float32|float64]
  ddpm_inspect schedule --config scheduler_config.json [--profile P] [--precision ...]

Prints one JSON object: "meta" (profile, precision, schedule, T, ...) and the
per-timestep tables, each an array of T numbers indexed t = 0..T-1 (t = 0 is
the least noisy step):
  betas, alphas, alphas_cumprod, alphas_cumprod_prev, alphas_cumprod_next,
  sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod,
  log_one_minus_alphas_cumprod, sqrt_recip_alphas_cumprod,
  sqrt_recipm1_alphas_cumprod, posterior_variance,
  posterior_log_variance_clipped, posterior_mean_coef1, posterior_mean_coef2, snr
Numbers have 17 significant digits, so they parse back to the identical
double; non-finite values are the strings "NaN", "Infinity", "-Infinity".

options:
  --schedule NAME      linear, scaled_linear, squaredcos_cap_v2, sigmoid (diffusers'
                       names), or quad (= scaled_linear), cosine (= squaredcos_cap_v2),
                       const, jsd, warmup10, warmup50 (the original DDPM code's)
  --timesteps T        number of training timesteps, T >= 1
  --beta-start X       default 0.0001
  --beta-end Y         default 0.02
  --rescale-zero-snr   rescale to zero terminal SNR (Lin et al. 2023)
  --config FILE        a diffusers scheduler_config.json, or a folder holding
                       scheduler_config.json or scheduler/scheduler_config.json;
                       replaces the five options above (warnings about keys that
                       do not affect the maths go to stderr)
  --profile P          default (the default), ho2020, improved_diffusion, diffusers.
                       improved_diffusion scales the linear schedule's endpoints by
                       1000/T; diffusers builds betas and alphas_cumprod in float32
                       exactly as diffusers does with torch on the CPU.
  --precision P        float32 or float64. Default: float32 in the diffusers
                       profile, float64 otherwise.
                       float32 prints the float32 view widened exactly to double
                       (in the diffusers profile: the betas / alphas /
                       alphas_cumprod tensors diffusers holds, bit for bit, and
                       the other tables derived from them and rounded to
                       float32); float64 prints the float64 tables (in the
                       diffusers profile: diffusers run with float64 tables).
  -h, --help           this text

exit status: 0 success, 1 unusable --config file, 2 bad command line.
)";

int run_schedule(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
    static constexpr option_spec specs[] = {
        {"schedule", true},   {"timesteps", true}, {"beta-start", true}, {"beta-end", true},
        {"rescale-zero-snr", false}, {"config", true},  {"profile", true},    {"precision", true},
    };
    const parsed_options opt = parse_options(args, specs);

    const ddpm::profile profile = parse_profile(opt.value("profile").value_or("default"));
    const std::string precision =
        opt.value("precision").value_or(profile == ddpm::profile::diffusers ? "float32" : "float64");
    if (precision != "float32" && precision != "float64")
        throw usage_error("--precision = '" + precision + "': expected float32 or float64");

    nlohmann::json meta = nlohmann::json::object();
    meta["tool"] = "ddpm_inspect schedule";
    meta["ddpm_version"] = std::to_string(ddpm::version_major) + "." + std::to_string(ddpm::version_minor) + "." +
                           std::to_string(ddpm::version_patch);
    meta["profile"] = std::string(ddpm::to_string(profile));
    meta["precision"] = precision;

    std::optional<ddpm::noise_schedule> schedule;
    if (const auto path = opt.value("config")) {
        for (std::string_view conflicting : {"schedule", "timesteps", "beta-start", "beta-end", "rescale-zero-snr"})
            if (opt.has(conflicting))
                throw usage_error("--config cannot be combined with --" + std::string(conflicting));
        std::vector<std::string> warnings;
        ddpm::scheduler_config config;
        try {
            config = ddpm::load_scheduler_config(*path, &warnings);
            schedule.emplace(ddpm::make_schedule(config, profile));
        } catch (const ddpm::invalid_argument& e) {
            throw input_error(e.what());
        }
        for (const auto& w : warnings) err << "ddpm_inspect: warning: " << *path << ": " << w << '\n';
        meta["source"] = "config";
        meta["config"] = *path;
        if (!config.class_name.empty()) meta["class_name"] = config.class_name;
        meta["beta_schedule"] =
            config.trained_betas ? std::string("trained_betas") : std::string(ddpm::to_string(config.schedule.schedule));
        meta["num_train_timesteps"] = config.schedule.num_train_timesteps;
        if (!config.trained_betas) {
            meta["beta_start"] = config.schedule.beta_start;
            meta["beta_end"] = config.schedule.beta_end;
        }
        meta["rescale_betas_zero_snr"] = config.schedule.rescale_betas_zero_snr;
        // How ddpm read the rest of the file (the sampler settings).
        meta["scheduler_config"] = {
            {"prediction_type", std::string(ddpm::to_string(config.prediction_type))},
            {"variance_type", std::string(ddpm::to_string(config.variance_type))},
            {"clip_sample", config.clip_sample},
            {"clip_sample_range", config.clip_sample_range},
            {"thresholding", config.thresholding},
            {"dynamic_thresholding_ratio", config.dynamic_thresholding_ratio},
            {"sample_max_value", config.sample_max_value},
            {"timestep_spacing", std::string(ddpm::to_string(config.timestep_spacing))},
            {"steps_offset", config.steps_offset},
            {"set_alpha_to_one", config.set_alpha_to_one},
        };
    } else {
        ddpm::schedule_config c;
        const std::string name = opt.require("schedule");
        try {
            c.schedule = ddpm::beta_schedule_from_string(name);
        } catch (const ddpm::invalid_argument&) {
            throw usage_error("--schedule = '" + name +
                              "': expected one of linear, scaled_linear, squaredcos_cap_v2, sigmoid, quad, cosine, "
                              "const, jsd, warmup10, warmup50");
        }
        c.num_train_timesteps = parse_int("timesteps", opt.require("timesteps"));
        if (c.num_train_timesteps < 1)
            throw usage_error("--timesteps = " + std::to_string(c.num_train_timesteps) + ": expected T >= 1");
        if (const auto v = opt.value("beta-start")) c.beta_start = parse_double("beta-start", *v);
        if (const auto v = opt.value("beta-end")) c.beta_end = parse_double("beta-end", *v);
        c.rescale_betas_zero_snr = opt.has("rescale-zero-snr");
        try {
            schedule.emplace(c, profile);
        } catch (const ddpm::invalid_argument& e) {
            throw usage_error(e.what()); // the values came from the command line
        }
        meta["source"] = "flags";
        meta["beta_schedule"] = std::string(ddpm::to_string(c.schedule));
        meta["num_train_timesteps"] = c.num_train_timesteps;
        meta["beta_start"] = c.beta_start;
        meta["beta_end"] = c.beta_end;
        meta["rescale_betas_zero_snr"] = c.rescale_betas_zero_snr;
    }

    json_writer w;
    w.value("meta", meta);
    if (precision == "float32") {
        std::vector<double> widened;
        schedule->f32().for_each([&](std::string_view name, const std::vector<float>& table) {
            widened.assign(table.begin(), table.end()); // exact
            w.number_array(name, widened);
        });
    } else {
        schedule->f64().for_each(
            [&](std::string_view name, const std::vector<double>& table) { w.number_array(name, table); });
    }
    w.finish(out);
    return exit_ok;
}

// ---------------------------------------------------------------------------
// Subcommand: timesteps

constexpr std::string_view timesteps_usage = R"(usage:
  ddpm_inspect timesteps --schedule NAME --timesteps T --steps N
                         --spacing linspace|leading|trailing [--steps-offset K]
                         [--scheduler NAME] [σ-scheduler options]
  ddpm_inspect timesteps --config scheduler_config.json --steps N [--scheduler NAME]

Prints one JSON object: "meta" (scheduler, T, N, spacing, steps_offset, ...)
and "timesteps".

--scheduler ddpm (default) or ddim: the N inference timesteps of diffusers'
DDPMScheduler / DDIMScheduler.set_timesteps(N), descending, as 0-based
indices into the training schedule (ddpm::make_timesteps):
  linspace  round(linspace(0, T-1, N)) reversed (round half to even); no offset
  leading   arange(N) * (T // N) reversed, + steps_offset
  trailing  round(arange(T, 0, -T/N)) - 1; no offset

--scheduler euler, euler_ancestral, heun, dpm or unipc (the σ-based
schedulers): the arrays of diffusers' EulerDiscreteScheduler /
EulerAncestralDiscreteScheduler / HeunDiscreteScheduler /
DPMSolverMultistepScheduler / UniPCMultistepScheduler.set_timesteps(N) as ddpm
computes them: "timesteps" (the values the network gets: real for the Euler
family, Heun's 2N-1 interleaved ones; integers for dpm and unipc), "sigmas"
(one more) and "init_noise_sigma", in --precision (float32 values are printed
widened to double, exactly). The training schedule matters here: it is built
from --schedule/--beta-start/--beta-end (or --config) under --profile.

options:
  --schedule NAME      the training schedule's name (linear, scaled_linear,
                       squaredcos_cap_v2, sigmoid, quad, cosine, const, jsd,
                       warmup10, warmup50); for ddpm/ddim it is only checked and
                       recorded in meta
  --timesteps T        number of training timesteps, T >= 1
  --steps N            number of inference steps, 1 <= N <= T (σ-based
                       schedulers of the Euler family accept N > T, as diffusers
                       does; dpm and unipc reject it)
  --spacing S          linspace, leading or trailing (diffusers' timestep_spacing)
  --steps-offset K     added by the leading spacing, K >= 0 (default 0)
  --config FILE        a diffusers scheduler_config.json, or a folder holding
                       scheduler_config.json or scheduler/scheduler_config.json:
                       num_train_timesteps, timestep_spacing and steps_offset (and
                       the betas) come from it (replaces --schedule, --timesteps,
                       --spacing and --steps-offset)
  --scheduler S        ddpm (default), ddim, euler, euler_ancestral, heun, dpm, unipc
  -h, --help           this text

σ-scheduler options (euler, euler_ancestral, heun, dpm, unipc):
  --beta-start X       default 0.0001
  --beta-end Y         default 0.02
  --sigmas S           discrete (default), karras or exponential
  --final-sigmas F     zero (default) or sigma_min (euler, dpm, unipc)
  --profile P          default, ho2020, improved_diffusion or diffusers (the
                       default here: float32 tables as diffusers ships them)
  --precision P        float32 (default) or float64

exit status: 0 success, 1 unusable --config file, 2 bad command line (including
N < 1, N > T for ddpm/ddim/dpm/unipc, an unknown spacing or scheduler, or an offset that
pushes a timestep to T).
)";

// The σ-based schedulers: one row each. A row's function builds the
// scheduler for the request and returns its arrays as doubles.
struct sigma_request {
    ddpm::noise_schedule schedule;
    std::int64_t steps = 0;
    ddpm::timestep_spacing spacing = ddpm::timestep_spacing::linspace;
    std::int64_t steps_offset = 0;
    ddpm::sigma_schedule sigmas = ddpm::sigma_schedule::discrete;
    ddpm::final_sigmas_type final_sigmas = ddpm::final_sigmas_type::zero;
    bool float32 = true;
};

struct sigma_arrays {
    std::vector<double> timesteps, sigmas;
    double init_noise_sigma = 1;
};

/// The arrays of one σ-based scheduler class, built with its options struct
/// (each has spacing, steps_offset, sigmas and final_sigmas).
template <template <std::floating_point> class Scheduler, class Options>
sigma_arrays scheduler_arrays(const sigma_request& r) {
    auto run = [&]<class T>() {
        Options o;
        o.spacing = r.spacing;
        o.steps_offset = r.steps_offset;
        o.sigmas = r.sigmas;
        o.final_sigmas = r.final_sigmas;
        Scheduler<T> s(r.schedule, {}, o);
        s.set_timesteps(r.steps);
        return sigma_arrays{{s.timesteps().begin(), s.timesteps().end()},
                            {s.sigmas().begin(), s.sigmas().end()},
                            static_cast<double>(s.init_noise_sigma())};
    };
    return r.float32 ? run.template operator()<float>() : run.template operator()<double>();
}

struct sigma_scheduler_row {
    std::string_view name;
    sigma_arrays (*arrays)(const sigma_request&);
};

constexpr sigma_scheduler_row sigma_schedulers[] = {
    {"euler", scheduler_arrays<ddpm::euler_scheduler, ddpm::euler_options>},
    {"euler_ancestral", scheduler_arrays<ddpm::euler_ancestral_scheduler, ddpm::euler_options>},
    {"heun", scheduler_arrays<ddpm::heun_scheduler, ddpm::euler_options>},
    {"dpm", scheduler_arrays<ddpm::dpm_solver_multistep_scheduler, ddpm::dpm_solver_options>},
    {"unipc", scheduler_arrays<ddpm::unipc_scheduler, ddpm::unipc_options>},
};

int print_sigma_timesteps(const sigma_scheduler_row& row, const parsed_options& opt,
                          const ddpm::schedule_config& cfg, std::int64_t steps, ddpm::timestep_spacing spacing,
                          std::int64_t offset, nlohmann::json& meta, std::ostream& out) {
    if (steps < 1) throw usage_error("--steps = " + std::to_string(steps) + ": expected N >= 1");
    const std::string precision = opt.value("precision").value_or("float32");
    if (precision != "float32" && precision != "float64")
        throw usage_error("--precision = '" + precision + "': expected float32 or float64");
    const ddpm::profile profile = parse_profile(opt.value("profile").value_or("diffusers"));
    sigma_arrays a;
    try {
        sigma_request r{ddpm::noise_schedule(cfg, profile), steps, spacing, offset};
        r.sigmas = ddpm::sigma_schedule_from_string(opt.value("sigmas").value_or("discrete"));
        r.final_sigmas = ddpm::final_sigmas_type_from_string(opt.value("final-sigmas").value_or("zero"));
        r.float32 = precision == "float32";
        a = row.arrays(r);
        meta["sigma_schedule"] = std::string(ddpm::to_string(r.sigmas));
        meta["final_sigmas_type"] = std::string(ddpm::to_string(r.final_sigmas));
    } catch (const ddpm::invalid_argument& e) {
        throw usage_error(e.what()); // every value came from the command line or was checked in the config
    }
    meta["num_train_timesteps"] = cfg.num_train_timesteps;
    meta["num_inference_steps"] = steps;
    meta["timestep_spacing"] = std::string(ddpm::to_string(spacing));
    meta["steps_offset"] = offset;
    meta["profile"] = std::string(ddpm::to_string(profile));
    meta["precision"] = precision;
    json_writer w;
    w.value("meta", meta);
    w.number_array("timesteps", a.timesteps);
    w.number_array("sigmas", a.sigmas);
    w.value("init_noise_sigma", nlohmann::json(a.init_noise_sigma));
    w.finish(out);
    return exit_ok;
}

int run_timesteps(std::span<const std::string_view> args, std::ostream& out, std::ostream& err) {
    static constexpr option_spec specs[] = {
        {"schedule", true},   {"timesteps", true}, {"steps", true},        {"spacing", true},
        {"steps-offset", true}, {"config", true},  {"scheduler", true},    {"beta-start", true},
        {"beta-end", true},   {"sigmas", true},    {"final-sigmas", true}, {"profile", true},
        {"precision", true},
    };
    const parsed_options opt = parse_options(args, specs);

    const std::string scheduler = opt.value("scheduler").value_or("ddpm");
    const sigma_scheduler_row* sigma_row = nullptr;
    for (const auto& row : sigma_schedulers)
        if (row.name == scheduler) sigma_row = &row;
    if (scheduler != "ddpm" && scheduler != "ddim" && !sigma_row) {
        std::string names = "ddpm, ddim";
        for (const auto& row : sigma_schedulers) names += ", " + std::string(row.name);
        throw usage_error("--scheduler = '" + scheduler + "': expected one of " + names);
    }
    if (!sigma_row)
        for (std::string_view only : {"beta-start", "beta-end", "sigmas", "final-sigmas", "profile", "precision"})
            if (opt.has(only))
                throw usage_error("--" + std::string(only) + " applies to the σ-based schedulers only, not --scheduler " +
                                  scheduler);
    ddpm::schedule_config schedule_cfg;

    nlohmann::json meta = nlohmann::json::object();
    meta["tool"] = "ddpm_inspect timesteps";
    meta["ddpm_version"] = std::to_string(ddpm::version_major) + "." + std::to_string(ddpm::version_minor) + "." +
                           std::to_string(ddpm::version_patch);
    meta["scheduler"] = scheduler;

    std::int64_t num_train = 0;
    std::int64_t offset = 0;
    ddpm::timestep_spacing spacing = ddpm::timestep_spacing::leading;
    if (const auto path = opt.value("config")) {
        for (std::string_view conflicting : {"schedule", "timesteps", "spacing", "steps-offset"})
            if (opt.has(conflicting))
                throw usage_error("--config cannot be combined with --" + std::string(conflicting));
        std::vector<std::string> warnings;
        ddpm::scheduler_config config;
        try {
            config = ddpm::load_scheduler_config(*path, &warnings);
        } catch (const ddpm::invalid_argument& e) {
            throw input_error(e.what());
        }
        for (const auto& w : warnings) err << "ddpm_inspect: warning: " << *path << ": " << w << '\n';
        num_train = config.schedule.num_train_timesteps;
        schedule_cfg = config.schedule;
        if (sigma_row && config.trained_betas)
            throw input_error("--config with trained_betas is not supported for --scheduler " + scheduler);
        spacing = config.timestep_spacing;
        offset = config.steps_offset;
        meta["source"] = "config";
        meta["config"] = *path;
        if (!config.class_name.empty()) meta["class_name"] = config.class_name;
        meta["beta_schedule"] =
            config.trained_betas ? std::string("trained_betas") : std::string(ddpm::to_string(config.schedule.schedule));
    } else {
        const std::string name = opt.require("schedule");
        ddpm::beta_schedule schedule{};
        try {
            schedule = ddpm::beta_schedule_from_string(name);
        } catch (const ddpm::invalid_argument&) {
            throw usage_error("--schedule = '" + name +
                              "': expected one of linear, scaled_linear, squaredcos_cap_v2, sigmoid, quad, cosine, "
                              "const, jsd, warmup10, warmup50");
        }
        num_train = parse_int("timesteps", opt.require("timesteps"));
        if (num_train < 1) throw usage_error("--timesteps = " + std::to_string(num_train) + ": expected T >= 1");
        schedule_cfg.schedule = schedule;
        schedule_cfg.num_train_timesteps = num_train;
        if (const auto v = opt.value("beta-start")) schedule_cfg.beta_start = parse_double("beta-start", *v);
        if (const auto v = opt.value("beta-end")) schedule_cfg.beta_end = parse_double("beta-end", *v);
        const std::string spacing_name = opt.require("spacing");
        try {
            spacing = ddpm::timestep_spacing_from_string(spacing_name);
        } catch (const ddpm::invalid_argument&) {
            throw usage_error("--spacing = '" + spacing_name + "': expected linspace, leading or trailing");
        }
        if (const auto v = opt.value("steps-offset")) {
            offset = parse_int("steps-offset", *v);
            if (offset < 0) throw usage_error("--steps-offset = " + std::to_string(offset) + ": expected K >= 0");
        }
        meta["source"] = "flags";
        meta["beta_schedule"] = std::string(ddpm::to_string(schedule));
    }
    const std::int64_t steps = parse_int("steps", opt.require("steps"));
    if (sigma_row) return print_sigma_timesteps(*sigma_row, opt, schedule_cfg, steps, spacing, offset, meta, out);
    if (steps < 1 || steps > num_train)
        throw usage_error("--steps = " + std::to_string(steps) + ": expected 1 <= N <= T = " +
                          std::to_string(num_train));

    std::vector<ddpm::timestep_t> timesteps;
    try {
        timesteps = ddpm::make_timesteps(num_train, steps, spacing, offset);
    } catch (const ddpm::invalid_argument& e) {
        throw usage_error(e.what()); // e.g. an offset that pushes a timestep to T
    }
    meta["num_train_timesteps"] = num_train;
    meta["num_inference_steps"] = steps;
    meta["timestep_spacing"] = std::string(ddpm::to_string(spacing));
    meta["steps_offset"] = offset;

    json_writer w;
    w.value("meta", meta);
    w.integer_array("timesteps", timesteps);
    w.finish(out);
    return exit_ok;
}

// ---------------------------------------------------------------------------
// The subcommand table.

struct subcommand {
    std::string_view name;
    std::string_view summary; ///< one line for the top-level usage
    std::string_view usage;   ///< full text for `ddpm_inspect NAME --help`
    int (*run)(std::span<const std::string_view> args, std::ostream& out, std::ostream& err);
};

constexpr subcommand subcommands[] = {
    {"schedule", "a noise schedule and every table derived from it", schedule_usage, run_schedule},
    {"timesteps", "the inference timesteps (and σ) of a scheduler's set_timesteps(N)", timesteps_usage, run_timesteps},
    // EXTENSION POINT: one row per subcommand: {name, one-line summary, usage
    // text, run function}. The run function parses its options with
    // parse_options(), throws usage_error for a bad command line and
    // input_error for an unusable file, and prints with json_writer.
};

[[nodiscard]] std::string top_usage() {
    std::string s = "usage: ddpm_inspect <command> [options]\n"
                    "       ddpm_inspect <command> --help\n\n"
                    "Prints what ddpm computes as one JSON object on stdout, to diff against\n"
                    "Python implementations (see docs/inspect.md).\n\ncommands:\n";
    for (const auto& c : subcommands) {
        std::string name(c.name);
        name.resize(std::max<std::size_t>(name.size() + 2, 12), ' ');
        s += "  " + name + std::string(c.summary) + "\n";
    }
    s += "\noptions:\n  -h, --help  this text\n  --version   print the ddpm version\n";
    s += "\nexit status: 0 success, 1 unusable input file, 2 bad command line.\n";
    return s;
}

int run_main(std::span<const std::string_view> args) {
    if (args.empty()) {
        std::cerr << "ddpm_inspect: error: missing command\n\n" << top_usage();
        return exit_usage;
    }
    const std::string_view command = args[0];
    if (command == "-h" || command == "--help" || command == "help") {
        std::cout << top_usage();
        return exit_ok;
    }
    if (command == "--version") {
        std::cout << "ddpm_inspect (ddpm " << ddpm::version_major << '.' << ddpm::version_minor << '.'
                  << ddpm::version_patch << ")\n";
        return exit_ok;
    }
    const subcommand* sub = nullptr;
    for (const auto& c : subcommands)
        if (c.name == command) sub = &c;
    if (!sub) {
        std::cerr << "ddpm_inspect: error: unknown command '" << command << "'\n\n" << top_usage();
        return exit_usage;
    }
    const auto rest = args.subspan(1);
    for (const auto a : rest)
        if (a == "-h" || a == "--help") {
            std::cout << sub->usage;
            return exit_ok;
        }
    try {
        return sub->run(rest, std::cout, std::cerr);
    } catch (const usage_error& e) {
        std::cerr << "ddpm_inspect " << sub->name << ": error: " << e.what() << "\n\n" << sub->usage;
        return exit_usage;
    } catch (const input_error& e) {
        std::cerr << "ddpm_inspect " << sub->name << ": error: " << e.what() << '\n';
        return exit_input;
    }
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    try {
        return run_main(args);
    } catch (const std::exception& e) {
        std::cerr << "ddpm_inspect: error: " << e.what() << '\n';
        return exit_input;
    }
}
