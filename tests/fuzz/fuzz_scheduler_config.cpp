// libFuzzer target for the scheduler_config.json loader (issue 11): the text
// goes through ddpm::parse_scheduler_config (size cap, nesting limit, key
// policy), then, when it loads, through make_schedule under every profile,
// make_timesteps and the schedulers' constructors. Bad input must end in a
// ddpm::invalid_argument; anything else is a finding:
//   - another exception escapes (libFuzzer reports the abort),
//   - a sanitizer fires (built with -fsanitize=fuzzer,address,undefined),
//   - a schedule that loads has a non-finite table entry (other than the
//     1/sqrt(alphas_cumprod) infinity of zero terminal SNR): __builtin_trap.
//
// Built by tests/fuzz/CMakeLists.txt when clang++ is available; ctest runs it
// briefly and deterministically over tests/fuzz/corpus and
// tests/data/reliability (label `fuzz`). To fuzz for longer:
//   build/tests/fuzz/fuzz_scheduler_config_libfuzzer -max_total_time=600 NEW_DIR tests/fuzz/corpus
#include <ddpm/ddpm.hpp>
#include <ddpm/schedule/scheduler_config_json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

/// Schedules beyond this many steps are only loaded, not built, so that the
/// fuzzer keeps its pace (T up to ddpm's maximum is covered by the unit tests).
constexpr std::int64_t max_built_T = 20000;

template <class Tables>
void require_finite(const Tables& t, bool zero_snr) {
    const std::size_t last = t.betas.size() - 1;
    t.for_each([&](std::string_view name, const auto& table) {
        for (std::size_t i = 0; i < table.size(); ++i) {
            if (std::isfinite(table[i])) continue;
            const bool intended = zero_snr && i == last &&
                                  (name == "sqrt_recip_alphas_cumprod" || name == "sqrt_recipm1_alphas_cumprod");
            if (!intended) __builtin_trap();
        }
    });
}

void exercise(const ddpm::scheduler_config& c) {
    if (c.schedule.num_train_timesteps > max_built_T) return;
    for (const auto p : {ddpm::profile::standard, ddpm::profile::ho2020, ddpm::profile::improved_diffusion,
                         ddpm::profile::diffusers}) {
        try {
            const ddpm::noise_schedule s = ddpm::make_schedule(c, p);
            const bool zero_snr = s.f64().alphas_cumprod.back() == 0.0;
            require_finite(s.f64(), zero_snr);
            require_finite(s.f32(), zero_snr);
            const std::int64_t steps = std::min<std::int64_t>(s.size(), 50);
            (void)ddpm::make_timesteps(s.size(), steps, c.timestep_spacing, c.steps_offset);
            ddpm::clip_options clip = ddpm::clip_options::none();
            if (c.thresholding) clip = ddpm::clip_options::dynamic(c.dynamic_thresholding_ratio, c.sample_max_value);
            else if (c.clip_sample) clip = ddpm::clip_options::clip(c.clip_sample_range);
            const ddpm::model_options opt{c.prediction_type, c.variance_type, clip};
            const ddpm::ddpm_scheduler<float> ddpm_s(s, opt);
            const ddpm::ddim_scheduler<double> ddim_s(s, opt);
            (void)ddpm_s;
            (void)ddim_s;
        } catch (const ddpm::invalid_argument&) {
            // refused with a message: fine
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> warnings;
    ddpm::scheduler_config config;
    try {
        config = ddpm::parse_scheduler_config(text, &warnings);
    } catch (const ddpm::invalid_argument&) {
        return 0;
    }
    exercise(config);
    return 0;
}
