// Positive control: every kind of callable with the right signature is a
// ddpm::denoiser and runs through the public entry points.
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <random>
#include <span>
#include <vector>

namespace {
struct functor {
    void operator()(std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> out) {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
    }
};
void plain(std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> out) {
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
}
} // namespace

static_assert(ddpm::denoiser<functor, float>);
static_assert(ddpm::denoiser<decltype(&plain), float>);
static_assert(!ddpm::denoiser<functor, double>);

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<float> ddpm_s(s);
    ddpm::ddim_scheduler<float> ddim_s(s);
    ddim_s.set_timesteps(10);
    std::mt19937 gen(0);
    ddpm::urbg_normal_noise noise(gen);
    std::vector<float> out(4);
    auto lambda = [](std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = x[i];
    };
    ddpm::sample(ddpm_s, lambda, noise, out);
    ddpm::sample(ddpm_s, functor{}, noise, out);
    ddpm::ddim_sample(ddim_s, &plain, noise, out);
    ddpm::ddim_invert(ddim_s, lambda, out);
    return 0;
}
