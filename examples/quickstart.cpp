// quickstart — ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) from your own ε-network.
// The "network" here is the exact ε-predictor for data x_0 ~ N(m, s² I) (docs/math.md
// #analytic-denoisers), so the samples must come out with mean m and standard deviation s.
#include <ddpm/ddpm.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <span>
#include <vector>

int main() {
    const ddpm::noise_schedule schedule{ddpm::schedule_config{}}; // linear β: 1e-4 → 0.02, T = 1000
    const std::vector<double>& abar = schedule.f64().alphas_cumprod; // ᾱ_t for t = 0 … T−1
    const double m = 1.5, s = 0.5;                                   // the data: N(m, s² I)

    // Any callable (x_t, t, out) is a ddpm::denoiser: B·D inputs, B timesteps (0-based), B·D outputs.
    auto network = [&](std::span<const float> x_t, std::span<const ddpm::timestep_t> t, std::span<float> eps) {
        const std::size_t dim = x_t.size() / t.size();
        for (std::size_t i = 0; i < x_t.size(); ++i) {
            const double a = abar[static_cast<std::size_t>(t[i / dim])];
            eps[i] = static_cast<float>(std::sqrt(1 - a) * (x_t[i] - std::sqrt(a) * m) / (a * s * s + 1 - a));
        }
    };

    const std::size_t batch = 512, dim = 4;
    std::vector<float> x(batch * dim); // receives x_0, batch-first
    std::mt19937_64 rng(42);
    ddpm::sample(ddpm::ddpm_scheduler<float>(schedule), network, ddpm::urbg_normal_noise(rng), x,
                 ddpm::sampler_options{.batch = batch});

    double sum = 0, sum2 = 0;
    for (const float v : x) sum += v, sum2 += static_cast<double>(v) * v;
    const double n = static_cast<double>(x.size()), mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    std::printf("DDPM, %lld steps, %zu samples of dimension %zu\n", static_cast<long long>(schedule.size()), batch, dim);
    std::printf("sample mean %.4f (target %.4f)\nsample std  %.4f (target %.4f)\n", mean, m, sd, s);
}
