// Must not compile: the timesteps are taken as a mutable span of float.
#include <ddpm/samplers/ddim.hpp>

#include <span>
#include <vector>

int main() {
    const ddpm::noise_schedule s{ddpm::schedule_config{}};
    ddpm::ddim_scheduler<double> sched(s);
    sched.set_timesteps(10);
    std::vector<double> out(4);
    auto model = [](std::span<const double> x, std::span<float> t, std::span<double> o) {
        for (std::size_t i = 0; i < x.size(); ++i) o[i] = x[i] * t[0];
    };
    ddpm::ddim_invert(sched, model, out);
    return 0;
}
