// Must not compile: a double network handed to a float DDIM sampler.
#include <ddpm/samplers/ddim.hpp>

#include <random>
#include <span>
#include <vector>

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddim_scheduler<float> sched(s);
    sched.set_timesteps(10);
    std::mt19937 gen(0);
    ddpm::urbg_normal_noise noise(gen);
    std::vector<float> out(4);
    auto model = [](std::span<const double> x, std::span<const ddpm::timestep_t>, std::span<double> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = x[i];
    };
    ddpm::ddim_sample(sched, model, noise, out);
    return 0;
}
