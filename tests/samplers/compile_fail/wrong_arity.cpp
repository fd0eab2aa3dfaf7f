// Must not compile: the network forgets the output buffer.
#include <ddpm/samplers/ddpm.hpp>

#include <random>
#include <span>
#include <vector>

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddpm_scheduler<float> sched(s);
    std::mt19937 gen(0);
    ddpm::urbg_normal_noise noise(gen);
    std::vector<float> out(4);
    auto model = [](std::span<const float> x, std::span<const ddpm::timestep_t>) { return x[0]; };
    ddpm::sample(sched, model, noise, out);
    return 0;
}
