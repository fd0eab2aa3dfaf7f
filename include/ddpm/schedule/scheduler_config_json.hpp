// ddpm/schedule/scheduler_config_json.hpp — load a diffusers
// `scheduler_config.json` (the file saved beside trained weights) into a
// ddpm::scheduler_config.
//
// Optional header: it needs nlohmann_json (>= 3.2) and is not part of the
// umbrella <ddpm/ddpm.hpp>. Include it explicitly and link
// nlohmann_json::nlohmann_json.
//
//   std::vector<std::string> warnings;
//   const ddpm::scheduler_config cfg = ddpm::load_scheduler_config("model/scheduler", &warnings);
//   const ddpm::noise_schedule schedule = ddpm::make_schedule(cfg, ddpm::profile::diffusers);
//
// Key policy (docs/scheduler_config.md has the key-by-key table):
//
// 1. Maths keys are read into the struct: num_train_timesteps, beta_start,
//    beta_end, beta_schedule, trained_betas, rescale_betas_zero_snr,
//    prediction_type, variance_type, clip_sample, clip_sample_range,
//    thresholding, dynamic_thresholding_ratio, sample_max_value,
//    timestep_spacing, steps_offset, set_alpha_to_one. A value of the wrong
//    JSON type, out of range, or an enum string ddpm does not implement throws
//    ddpm::invalid_argument; the message names the key, the value (as JSON)
//    and what is accepted. `null` means "the default" (diffusers writes
//    `"trained_betas": null`); `"variance_type": null` (DPM-Solver configs)
//    also adds a warning.
// 2. Keys known not to change the DDPM/DDIM maths — metadata (`_class_name`,
//    `_diffusers_version`, `_use_default_values`) and settings of other
//    diffusers schedulers (`skip_prk_steps`, `lambda_min_clipped`,
//    `solver_order`, `use_karras_sigmas`, …) — are accepted and each adds one
//    warning. Their values are not checked. `_class_name` and
//    `_diffusers_version` are also recorded in the struct.
// 3. Any other key adds the warning `unknown key "X" ignored`; it is not an
//    error (newer diffusers versions add keys).
// 4. Flow-matching configurations (`_class_name` FlowMatch…, or
//    `prediction_type` "flow_prediction") describe a different model and throw.
//
// Warnings go to `*warnings` when the pointer is not null, in the order of the
// keys in the object (nlohmann sorts them), and are dropped otherwise.
//
// Hostile input is bounded: load_scheduler_config() refuses files over
// max_scheduler_config_bytes (16 MiB; it reads no further than that, so
// /dev/stdin or a FIFO cannot make it read gigabytes first) and JSON nested
// deeper than max_scheduler_config_depth (32; diffusers' configurations are 2
// deep), and a value quoted in a message or warning is cut to a short prefix.
//
// load_scheduler_config() also reads Python's non-standard JSON tokens NaN,
// Infinity and -Infinity (diffusers saves DPM-Solver's default
// `"lambda_min_clipped": -Infinity` that way) as the strings "NaN",
// "Infinity", "-Infinity"; a maths key with such a value is an error.
#pragma once

#include "ddpm/core/clipping.hpp"
#include "ddpm/error.hpp"
#include "ddpm/schedule/scheduler_config.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ddpm {

/// The largest `scheduler_config.json` load_scheduler_config() reads (16 MiB;
/// real files are under a few KB, a trained_betas list of 10^5 values ~2 MB).
inline constexpr std::size_t max_scheduler_config_bytes = std::size_t{16} << 20;
/// The deepest JSON nesting load_scheduler_config() accepts (the top-level
/// object is depth 1; diffusers' files are 2 deep: `trained_betas` is a list).
inline constexpr int max_scheduler_config_depth = 32;

namespace detail::scheduler_json {

/// Keys that do not change the DDPM/DDIM maths, with the reason given in the
/// warning. Sorted by the scheduler they belong to.
struct ignored_key {
    std::string_view key;
    std::string_view reason;
};

inline constexpr ignored_key ignored_keys[] = {
    {"_use_default_values", "diffusers bookkeeping"},
    {"_name_or_path", "metadata"},
    // PNDMScheduler
    {"skip_prk_steps", "PNDMScheduler setting"},
    // DPMSolver*, DEIS, UniPC, SA-Solver
    {"solver_order", "multistep-solver setting"},
    {"algorithm_type", "multistep-solver setting"},
    {"solver_type", "multistep-solver setting"},
    {"lower_order_final", "multistep-solver setting"},
    {"euler_at_final", "multistep-solver setting"},
    {"final_sigmas_type", "multistep-solver setting"},
    {"lambda_min_clipped", "DPM-Solver setting that clips the log-SNR of inference timesteps"},
    {"use_lu_lambdas", "DPM-Solver setting"},
    {"predict_x0", "UniPC setting"},
    {"solver_p", "UniPC setting"},
    {"disable_corrector", "UniPC setting"},
    {"noise_sampler_seed", "DPMSolverSDE setting"},
    {"predictor_order", "SA-Solver setting"},
    {"corrector_order", "SA-Solver setting"},
    {"tau_func", "SA-Solver setting"},
    // Euler / Heun / LMS / Karras-sigma schedulers
    {"use_karras_sigmas", "sigma-schedule setting of Euler-type schedulers"},
    {"use_exponential_sigmas", "sigma-schedule setting of Euler-type schedulers"},
    {"use_beta_sigmas", "sigma-schedule setting of Euler-type schedulers"},
    {"interpolation_type", "Euler-type scheduler setting"},
    {"timestep_type", "Euler-type scheduler setting"},
    {"sigma_min", "Euler-type scheduler setting"},
    {"sigma_max", "Euler-type scheduler setting"},
    {"sigma_data", "EDM scheduler setting"},
    {"rho", "Karras-sigma setting"},
    {"use_flow_sigmas", "flow-sigma setting of other schedulers"},
    {"flow_shift", "flow-sigma setting of other schedulers"},
    // LCM / TCD
    {"original_inference_steps", "LCM/TCD setting"},
    {"timestep_scaling", "LCM/TCD setting"},
    // KarrasVe / ScoreSDE
    {"s_noise", "stochastic-sampler setting"},
    {"s_churn", "stochastic-sampler setting"},
    {"s_min", "stochastic-sampler setting"},
    {"s_max", "stochastic-sampler setting"},
};

/// Python's json module writes the non-standard tokens NaN, Infinity and
/// -Infinity (diffusers' DPMSolverMultistepScheduler saves
/// `"lambda_min_clipped": -Infinity`). Outside string literals, wrap them in
/// quotes so that a strict JSON parser reads them as the strings "NaN",
/// "Infinity", "-Infinity" (ddpm's golden-data convention).
[[nodiscard]] inline std::string quote_python_nonfinite(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char ch = text[i];
        if (in_string) {
            out += ch;
            if (ch == '\\' && i + 1 < text.size()) out += text[++i];
            else if (ch == '"') in_string = false;
            continue;
        }
        if (ch == '"') {
            in_string = true;
            out += ch;
            continue;
        }
        bool replaced = false;
        for (const std::string_view token : {"-Infinity", "Infinity", "NaN"}) {
            if (text.substr(i, token.size()) == token) {
                out += '"';
                out += token;
                out += '"';
                i += token.size() - 1;
                replaced = true;
                break;
            }
        }
        if (!replaced) out += ch;
    }
    return out;
}

/// Longest quotation of a value or key in a message or warning.
inline constexpr std::size_t show_limit = 120;

/// Cuts `text` to show_limit characters, marking the cut.
[[nodiscard]] inline std::string shorten(std::string text) {
    if (text.size() > show_limit) {
        text.resize(show_limit);
        text += "... (truncated)";
    }
    return text;
}

/// Writes v as JSON text to `out`, containers only to depth 3 ("[...]"
/// below) and stopping once `out` is longer than show_limit: bounded time
/// and stack for any value, unlike nlohmann's recursive dump().
inline void show_into(std::string& out, const nlohmann::json& v, int depth) {
    const auto scalar = [](const nlohmann::json& x) {
        return x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    };
    if (!v.is_structured()) {
        out += scalar(v);
        return;
    }
    const bool object = v.is_object();
    if (depth >= 3 && !v.empty()) {
        out += object ? "{...}" : "[...]";
        return;
    }
    out += object ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (out.size() > show_limit) break;
        if (!first) out += ", ";
        first = false;
        if (object) out += scalar(nlohmann::json(it.key())) + ": ";
        show_into(out, it.value(), depth + 1);
    }
    out += object ? '}' : ']';
}

/// The value as (shortened) JSON text, for messages.
[[nodiscard]] inline std::string show(const nlohmann::json& v) {
    std::string out;
    show_into(out, v, 0);
    return shorten(std::move(out));
}

[[noreturn]] inline void wrong_type(std::string_view where, std::string_view key, const nlohmann::json& v,
                                    std::string_view expected) {
    throw_invalid(where, key, show(v), std::string(expected) + " (got a JSON " + v.type_name() + ")");
}

[[nodiscard]] inline bool read_bool(std::string_view where, std::string_view key, const nlohmann::json& v) {
    if (!v.is_boolean()) wrong_type(where, key, v, "true or false");
    return v.get<bool>();
}

[[nodiscard]] inline double read_number(std::string_view where, std::string_view key, const nlohmann::json& v) {
    if (v.is_string() && (v == "NaN" || v == "Infinity" || v == "-Infinity"))
        throw_invalid(where, key, show(v), "a finite number");
    if (!v.is_number()) wrong_type(where, key, v, "a number");
    const double d = v.get<double>();
    if (!std::isfinite(d)) throw_invalid(where, key, show(v), "a finite number");
    return d;
}

[[nodiscard]] inline std::int64_t read_integer(std::string_view where, std::string_view key, const nlohmann::json& v,
                                               std::int64_t min) {
    const std::string expected = "an integer >= " + std::to_string(min);
    if (!v.is_number_integer()) wrong_type(where, key, v, expected);
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw_invalid(where, key, show(v), expected + " that fits in 64 bits");
    const auto i = v.get<std::int64_t>();
    if (i < min) throw_invalid(where, key, show(v), expected);
    return i;
}

[[nodiscard]] inline std::string read_string(std::string_view where, std::string_view key, const nlohmann::json& v,
                                             std::string_view expected) {
    if (!v.is_string()) wrong_type(where, key, v, expected);
    return v.get<std::string>();
}

/// The parser behind scheduler_config_from_json / load_scheduler_config;
/// `where` names the caller (and the file) in messages.
[[nodiscard]] inline scheduler_config parse(const nlohmann::json& j, std::vector<std::string>* warnings,
                                            std::string_view where) {
    if (!j.is_object()) wrong_type(where, "scheduler_config", j, "a JSON object");
    const auto warn = [&](std::string message) {
        if (warnings) warnings->push_back(std::move(message));
    };

    scheduler_config c;
    bool has_num_train_timesteps = false;
    std::string beta_schedule_name; // validated after trained_betas is known
    nlohmann::json beta_schedule_value;

    for (const auto& [key, v] : j.items()) {
        const std::string_view k = key;
        // --- metadata that is recorded ---------------------------------------
        if (k == "_class_name") {
            if (v.is_null()) continue;
            c.class_name = read_string(where, k, v, "a string");
            if (c.class_name.find("FlowMatch") != std::string::npos)
                throw_invalid(where, k, show(v),
                              "a DDPM-family scheduler (DDPMScheduler, DDIMScheduler, PNDMScheduler, ...): "
                              "flow-matching models are not diffusion models with a beta schedule");
            if (c.class_name == "DDPMScheduler" || c.class_name == "DDIMScheduler")
                warn("key \"_class_name\" = " + show(v) + " recorded (informational; no effect on the maths)");
            else
                warn("key \"_class_name\" = " + show(v) +
                     " recorded; ddpm reads only its training schedule and DDPM/DDIM settings");
            continue;
        }
        if (k == "_diffusers_version") {
            if (v.is_null()) continue;
            c.diffusers_version = read_string(where, k, v, "a string");
            warn("key \"_diffusers_version\" = " + show(v) + " recorded (informational; no effect on the maths)");
            continue;
        }
        // --- the training schedule --------------------------------------------
        if (k == "num_train_timesteps") {
            if (v.is_null()) continue;
            c.schedule.num_train_timesteps = read_integer(where, k, v, 1);
            detail::check_num_train_timesteps(where, k, c.schedule.num_train_timesteps);
            has_num_train_timesteps = true;
            continue;
        }
        if (k == "beta_start") {
            if (!v.is_null()) c.schedule.beta_start = read_number(where, k, v);
            continue;
        }
        if (k == "beta_end") {
            if (!v.is_null()) c.schedule.beta_end = read_number(where, k, v);
            continue;
        }
        if (k == "beta_schedule") {
            if (v.is_null()) continue;
            beta_schedule_name = read_string(where, k, v, "a string naming the schedule");
            beta_schedule_value = v;
            continue;
        }
        if (k == "trained_betas") {
            if (v.is_null()) continue;
            if (!v.is_array()) wrong_type(where, k, v, "null or an array of numbers");
            if (v.empty()) throw_invalid(where, k, "[]", "null or a non-empty array of numbers");
            std::vector<double> betas;
            betas.reserve(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                const std::string name = "trained_betas[" + std::to_string(i) + "]";
                const double b = read_number(where, name, v[i]);
                if (!(b > 0.0 && b <= 1.0)) throw_invalid(where, name, show(v[i]), "in (0, 1]");
                betas.push_back(b);
            }
            c.trained_betas = std::move(betas);
            continue;
        }
        if (k == "rescale_betas_zero_snr") {
            if (!v.is_null()) c.schedule.rescale_betas_zero_snr = read_bool(where, k, v);
            continue;
        }
        // --- the network and the step -----------------------------------------
        if (k == "prediction_type") {
            if (v.is_null()) continue;
            const auto s = read_string(where, k, v, "one of \"epsilon\", \"sample\", \"v_prediction\"");
            if (s != "epsilon" && s != "sample" && s != "v_prediction")
                throw_invalid(where, k, show(v), "one of \"epsilon\", \"sample\", \"v_prediction\"");
            c.prediction_type = prediction_type_from_string(s);
            continue;
        }
        if (k == "variance_type") {
            if (v.is_null()) {
                warn("key \"variance_type\" = null (the model predicts no variance): using fixed_small");
                continue;
            }
            constexpr std::string_view accepted = "null or one of \"fixed_small\", \"fixed_small_log\", "
                                                  "\"fixed_large\", \"fixed_large_log\", \"learned\", "
                                                  "\"learned_range\"";
            const auto s = read_string(where, k, v, accepted);
            if (s != "fixed_small" && s != "fixed_small_log" && s != "fixed_large" && s != "fixed_large_log" &&
                s != "learned" && s != "learned_range")
                throw_invalid(where, k, show(v), accepted);
            c.variance_type = variance_type_from_string(s);
            continue;
        }
        if (k == "clip_sample") {
            if (!v.is_null()) c.clip_sample = read_bool(where, k, v);
            continue;
        }
        if (k == "clip_sample_range") {
            if (v.is_null()) continue;
            c.clip_sample_range = read_number(where, k, v);
            if (!(c.clip_sample_range > 0.0)) throw_invalid(where, k, show(v), "a number > 0");
            continue;
        }
        if (k == "thresholding") {
            if (!v.is_null()) c.thresholding = read_bool(where, k, v);
            continue;
        }
        if (k == "dynamic_thresholding_ratio") {
            if (v.is_null()) continue;
            c.dynamic_thresholding_ratio = read_number(where, k, v);
            // The scheduler's own check (clip_options::validate: in (0, 1)),
            // so that what loads also constructs.
            clip_options::dynamic(c.dynamic_thresholding_ratio, 1.0).validate(where);
            continue;
        }
        if (k == "sample_max_value") {
            if (v.is_null()) continue;
            c.sample_max_value = read_number(where, k, v);
            clip_options::dynamic(0.5, c.sample_max_value).validate(where);
            continue;
        }
        // --- inference timesteps ----------------------------------------------
        if (k == "timestep_spacing") {
            if (v.is_null()) continue;
            constexpr std::string_view accepted = "one of \"linspace\", \"leading\", \"trailing\"";
            const auto s = read_string(where, k, v, accepted);
            if (s != "linspace" && s != "leading" && s != "trailing") throw_invalid(where, k, show(v), accepted);
            c.timestep_spacing = timestep_spacing_from_string(s);
            continue;
        }
        if (k == "steps_offset") {
            if (!v.is_null()) c.steps_offset = read_integer(where, k, v, 0);
            continue;
        }
        if (k == "set_alpha_to_one") {
            if (!v.is_null()) c.set_alpha_to_one = read_bool(where, k, v);
            continue;
        }
        // --- keys of other schedulers, and unknown keys -----------------------
        bool known = false;
        for (const auto& ig : ignored_keys) {
            if (ig.key == k) {
                warn("key \"" + key + "\" = " + show(v) + " ignored (" + std::string(ig.reason) +
                     "; no effect on the DDPM/DDIM maths)");
                known = true;
                break;
            }
        }
        if (!known) warn("unknown key " + show(nlohmann::json(key)) + " ignored");
    }

    // beta_schedule: diffusers ignores it when trained_betas is given.
    if (!beta_schedule_name.empty() || beta_schedule_value.is_string()) {
        const std::string& s = beta_schedule_name;
        const bool supported = s == "linear" || s == "scaled_linear" || s == "squaredcos_cap_v2" || s == "sigmoid" ||
                               s == "quad" || s == "cosine" || s == "const" || s == "jsd" || s == "warmup10" ||
                               s == "warmup50";
        if (supported) {
            c.schedule.schedule = beta_schedule_from_string(s);
        } else if (c.trained_betas) {
            warn("key \"beta_schedule\" = " + show(beta_schedule_value) +
                 " ignored: trained_betas is given (as in diffusers)");
        } else {
            throw_invalid(where, "beta_schedule", show(beta_schedule_value),
                          "one of \"linear\", \"scaled_linear\", \"squaredcos_cap_v2\", \"sigmoid\" "
                          "(or ddpm's \"quad\", \"cosine\", \"const\", \"jsd\", \"warmup10\", \"warmup50\")");
        }
    }

    if (c.trained_betas) {
        const auto n = static_cast<std::int64_t>(c.trained_betas->size());
        if (!has_num_train_timesteps) {
            c.schedule.num_train_timesteps = n;
        } else if (n != c.schedule.num_train_timesteps) {
            throw_invalid(where, "trained_betas.size()", n,
                          "num_train_timesteps = " + std::to_string(c.schedule.num_train_timesteps));
        }
    }
    return c;
}

/// The JSON of a scheduler_config.json's text: size cap, Python's
/// NaN/Infinity, bounded nesting. `where` names the caller.
[[nodiscard]] inline nlohmann::json json_of_text(std::string_view text, const std::string& where) {
    if (text.size() > max_scheduler_config_bytes)
        throw_invalid(where, "size", std::to_string(text.size()) + " bytes",
                      "at most " + std::to_string(max_scheduler_config_bytes) +
                          " bytes (16 MiB; a scheduler_config.json is a few KB)");
    // Refuse deep nesting while parsing (nlohmann's parser is iterative, but
    // building, copying and printing a deep value recurse).
    const auto depth_limit = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
        if (depth >= max_scheduler_config_depth && (event == nlohmann::json::parse_event_t::object_start ||
                                                   event == nlohmann::json::parse_event_t::array_start))
            throw_invalid(where, "nesting depth", "> " + std::to_string(max_scheduler_config_depth),
                          "JSON nested at most " + std::to_string(max_scheduler_config_depth) +
                              " levels deep (a scheduler_config.json is 2 deep)");
        return true;
    };
    nlohmann::json j = nlohmann::json::parse(quote_python_nonfinite(text), depth_limit,
                                             /*allow_exceptions=*/false);
    if (j.is_discarded()) throw_invalid(where, "text", shorten(std::string(text)), "valid JSON");
    return j;
}

/// The text of a scheduler_config.json: json_of_text(), then parse().
[[nodiscard]] inline scheduler_config parse_text(std::string_view text, std::vector<std::string>* warnings,
                                                 const std::string& where) {
    return parse(json_of_text(text, where), warnings, where);
}

/// The file a path names (a scheduler_config.json, or a pipeline folder
/// holding one) and its text, read no further than the size cap.
struct config_file {
    std::string file, text;
};

[[nodiscard]] inline config_file read_config_file(const std::string& path, std::string_view where) {
    namespace fs = std::filesystem;
    std::string file = path;
    std::error_code ec;
    if (fs::is_directory(fs::path(path), ec)) {
        const fs::path candidates[] = {fs::path(path) / "scheduler_config.json",
                                       fs::path(path) / "scheduler" / "scheduler_config.json"};
        file.clear();
        for (const auto& candidate : candidates)
            if (fs::is_regular_file(candidate, ec)) {
                file = candidate.string();
                break;
            }
        if (file.empty())
            throw_invalid(where, "path", path,
                          "a scheduler_config.json file, or a directory holding scheduler_config.json "
                          "or scheduler/scheduler_config.json");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) throw_invalid(where, "path", file, "a readable scheduler_config.json");
    // Read in chunks and stop one byte past the cap: a pipe or /dev/stdin has
    // no size to ask for, and must not be read to its end first.
    std::string text;
    constexpr std::size_t chunk = 64 * 1024;
    while (in && text.size() <= max_scheduler_config_bytes) {
        const std::size_t old_size = text.size();
        text.resize(old_size + chunk);
        in.read(text.data() + old_size, static_cast<std::streamsize>(chunk));
        text.resize(old_size + static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) throw_invalid(where, "path", file, "a readable scheduler_config.json");
    if (text.size() > max_scheduler_config_bytes)
        throw_invalid(where, "path", file,
                      "a file of at most " + std::to_string(max_scheduler_config_bytes) +
                          " bytes (16 MiB; a scheduler_config.json is a few KB): this one is larger");
    return {std::move(file), std::move(text)};
}

} // namespace detail::scheduler_json

/// Reads a diffusers scheduler configuration (the parsed contents of a
/// `scheduler_config.json`).
///
/// @param[in]  j         a JSON object with diffusers' keys.
/// @param[out] warnings  if not null, receives one message per key that was
///                       accepted but has no effect on the maths, and per
///                       unknown key (`unknown key "X" ignored`).
/// @return the configuration; missing and `null` keys take diffusers' defaults.
/// @throws ddpm::invalid_argument if `j` is not an object, a maths key has the
///         wrong JSON type, an out-of-range value or an unsupported string
///         (the message names the key, the value and what is accepted), or
///         trained_betas disagrees with num_train_timesteps.
[[nodiscard]] inline scheduler_config scheduler_config_from_json(const nlohmann::json& j,
                                                                 std::vector<std::string>* warnings = nullptr) {
    return detail::scheduler_json::parse(j, warnings, "ddpm::scheduler_config_from_json");
}

/// Reads the text of a diffusers `scheduler_config.json` (as
/// load_scheduler_config() does after reading the file).
///
/// @throws ddpm::invalid_argument if the text is larger than
///         max_scheduler_config_bytes, is not valid JSON, nests deeper than
///         max_scheduler_config_depth, or scheduler_config_from_json()
///         rejects it.
[[nodiscard]] inline scheduler_config parse_scheduler_config(std::string_view text,
                                                             std::vector<std::string>* warnings = nullptr) {
    return detail::scheduler_json::parse_text(text, warnings, "ddpm::parse_scheduler_config");
}

/// Reads a diffusers `scheduler_config.json` file.
///
/// @param[in]  path      the file, or a directory holding `scheduler_config.json`
///                       or `scheduler/scheduler_config.json` (a diffusers
///                       pipeline folder).
/// @param[out] warnings  as for scheduler_config_from_json().
/// @throws ddpm::invalid_argument if the file cannot be read, is larger than
///         max_scheduler_config_bytes, is not valid JSON, nests deeper than
///         max_scheduler_config_depth, or scheduler_config_from_json() rejects
///         it; the message names the file.
[[nodiscard]] inline scheduler_config load_scheduler_config(const std::string& path,
                                                            std::vector<std::string>* warnings = nullptr) {
    const auto f = detail::scheduler_json::read_config_file(path, "ddpm::load_scheduler_config");
    return detail::scheduler_json::parse_text(f.text, warnings, "ddpm::load_scheduler_config(" + f.file + ")");
}

} // namespace ddpm
