// Must not compile: an integer-timestep network under a scheduler that passes
// fractional timesteps would be silently truncated; ddpm::round_timesteps is
// the explicit opt-in.
#include <ddpm/samplers/euler.hpp>

#include <span>
#include <vector>

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::euler_scheduler<float> sched(s);
    sched.set_timesteps(10);
    ddpm::zero_noise noise;
    std::vector<float> out(4);
    auto model = [](std::span<const float> x, std::span<const ddpm::timestep_t>, std::span<float> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = x[i];
    };
    ddpm::sample(sched, model, noise, out);
    return 0;
}
