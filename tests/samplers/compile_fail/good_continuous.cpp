// Positive control: networks taking real-valued timesteps run under every
// scheduler (σ-based ones hand them fractional values, DDPM/DDIM exact
// integers); an integer-timestep network runs under a σ-based scheduler only
// through the explicit ddpm::round_timesteps opt-in; a generic callable
// satisfies both signatures.
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>
#include <ddpm/samplers/euler.hpp>
#include <ddpm/samplers/heun.hpp>

#include <span>
#include <vector>

namespace {
struct continuous_net {
    void operator()(std::span<const float> x, std::span<const float> t, std::span<float> out) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * (t[0] / 1000.0f);
    }
};
struct integer_net {
    void operator()(std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> out) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
    }
};
} // namespace

static_assert(ddpm::continuous_denoiser<continuous_net, float>);
static_assert(!ddpm::denoiser<continuous_net, float>);
static_assert(!ddpm::continuous_denoiser<integer_net, float>);

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<float> ddpm_s(s);
    ddpm::euler_scheduler<float> euler(s);
    euler.set_timesteps(10);
    ddpm::heun_scheduler<float> heun(s);
    heun.set_timesteps(5);
    ddpm::counter_noise noise(7);
    std::vector<float> out(4);
    ddpm::sample(euler, continuous_net{}, noise, out);
    ddpm::sample(heun, continuous_net{}, noise, out);
    ddpm::sample(ddpm_s, continuous_net{}, noise, out);
    integer_net in;
    ddpm::sample(euler, ddpm::round_timesteps(in), noise, out);
    auto generic = [](std::span<const float> x, auto, std::span<float> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = x[i];
    };
    ddpm::sample(euler, generic, noise, out, {},
                 [](std::size_t, float, std::span<const float>, std::span<const float>) {});
    ddpm::sample(ddpm_s, generic, noise, out);
    return 0;
}
