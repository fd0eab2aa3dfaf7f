// examples/cuda_sampling.cu — sampling on the GPU with a hand-written CUDA
// ε-network: the exact ε-predictor of a 2-D Gaussian mixture (docs/math.md
// #analytic-denoisers), run through ddpm::cuda::ddpm_sampler (1000-step
// ancestral DDPM) and ddpm::cuda::ddim_sampler (50 steps, η = 0), timed per
// step with CUDA events, plain and replayed from a captured CUDA graph. The
// mixture weights recovered from the samples are compared with the true ones.
//
//   cuda_sampling [--small] [--samples N] [--no-device-exit-code=K]
//
// With no CUDA device it says so and exits with K (default 0).
// Built by tests/cuda/CMakeLists.txt when CUDA is enabled (target cuda_sampling).
#include <ddpm/cuda.cuh>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

constexpr int max_components = 4;

/// Σ_k π_k N(m_k, s_k² I) in 2-D.
struct mixture {
    int k = 3;
    float weight[max_components] = {0.5f, 0.3f, 0.2f, 0.0f};
    float mean_x[max_components] = {-2.0f, 2.0f, 0.0f, 0.0f};
    float mean_y[max_components] = {0.0f, 1.0f, -2.5f, 0.0f};
    float stddev[max_components] = {0.3f, 0.5f, 0.4f, 1.0f};
};

/// The exact ε-predictor (docs/math.md#analytic-denoisers): q(x_t) = Σ_k π_k N(√ᾱ m_k, v_k I),
/// v_k = ᾱ s_k² + 1 − ᾱ; ε* = Σ_k r_k(x_t) √(1 − ᾱ)(x_t − √ᾱ m_k)/v_k with the
/// responsibilities r_k ∝ π_k N(x_t; √ᾱ m_k, v_k I). One thread per sample.
__global__ void mixture_eps_kernel(const float* x, const ddpm::timestep_t* t, float* out, int batch,
                                   const float* alphas_cumprod, mixture m) {
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < batch; b += gridDim.x * blockDim.x) {
        const float a = alphas_cumprod[t[b]];
        const float sa = sqrtf(a);
        const float s1 = sqrtf(1.0f - a);
        const float px = x[2 * b], py = x[2 * b + 1];
        float logp[max_components];
        float best = -INFINITY;
        for (int k = 0; k < m.k; ++k) {
            const float v = a * m.stddev[k] * m.stddev[k] + (1.0f - a);
            const float dx = px - sa * m.mean_x[k], dy = py - sa * m.mean_y[k];
            logp[k] = logf(m.weight[k]) - (dx * dx + dy * dy) / (2.0f * v) - logf(v); // 2-D: −(D/2) log v
            best = fmaxf(best, logp[k]);
        }
        float total = 0.0f, ex = 0.0f, ey = 0.0f;
        for (int k = 0; k < m.k; ++k) {
            const float r = expf(logp[k] - best);
            const float v = a * m.stddev[k] * m.stddev[k] + (1.0f - a);
            total += r;
            ex += r * s1 * (px - sa * m.mean_x[k]) / v;
            ey += r * s1 * (py - sa * m.mean_y[k]) / v;
        }
        out[2 * b] = ex / total;
        out[2 * b + 1] = ey / total;
    }
}

struct mixture_net {
    const float* alphas_cumprod;
    mixture m;
    void operator()(const float* x, const ddpm::timestep_t* t, float* out, int batch, int dim, cudaStream_t s) const {
        (void)dim; // 2
        const int blocks = (batch + 255) / 256;
        mixture_eps_kernel<<<blocks < 1 ? 1 : blocks, 256, 0, s>>>(x, t, out, batch, alphas_cumprod, m);
        DDPM_CUDA_CHECK(cudaGetLastError());
    }
};

/// Fractions of samples nearest (by posterior responsibility) to each component.
std::vector<double> recovered_weights(const std::vector<float>& x, const mixture& m) {
    std::vector<double> count(static_cast<std::size_t>(m.k), 0.0);
    const std::size_t n = x.size() / 2;
    for (std::size_t i = 0; i < n; ++i) {
        int best = 0;
        double best_lp = -1e300;
        for (int k = 0; k < m.k; ++k) {
            const double v = double(m.stddev[k]) * m.stddev[k];
            const double dx = x[2 * i] - m.mean_x[k], dy = x[2 * i + 1] - m.mean_y[k];
            const double lp = std::log(m.weight[k]) - (dx * dx + dy * dy) / (2 * v) - std::log(v);
            if (lp > best_lp) {
                best_lp = lp;
                best = k;
            }
        }
        count[static_cast<std::size_t>(best)] += 1.0;
    }
    for (auto& c : count) c /= static_cast<double>(n);
    return count;
}

struct event_timer {
    cudaEvent_t start = nullptr, stop = nullptr;
    event_timer() {
        DDPM_CUDA_CHECK(cudaEventCreate(&start));
        DDPM_CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~event_timer() {
        (void)cudaEventDestroy(start);
        (void)cudaEventDestroy(stop);
    }
    template <class F>
    float time_ms(cudaStream_t s, F&& f) {
        DDPM_CUDA_CHECK(cudaEventRecord(start, s));
        f();
        DDPM_CUDA_CHECK(cudaEventRecord(stop, s));
        DDPM_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        DDPM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        return ms;
    }
};

/// Runs a sampler plain and from a graph; prints time per step and the weights.
template <class Sampler>
bool run(const char* name, Sampler& sampler, const mixture_net& net, float* x, std::int64_t batch, cudaStream_t s,
         const mixture& m, double tolerance) {
    const ddpm::cuda::sampling_options opts{2024, 0, false};
    event_timer timer;
    sampler.sample(net, x, opts, s); // warm-up: module load, first launches
    DDPM_CUDA_CHECK(cudaStreamSynchronize(s));
    const float plain_ms = timer.time_ms(s, [&] { sampler.sample(net, x, opts, s); });
    auto graph = sampler.capture(net, x, opts, s);
    graph.launch(s); // warm-up
    DDPM_CUDA_CHECK(cudaStreamSynchronize(s));
    const float graph_ms = timer.time_ms(s, [&] { graph.launch(s); });
    std::vector<float> host(static_cast<std::size_t>(batch * 2));
    DDPM_CUDA_CHECK(cudaMemcpy(host.data(), x, host.size() * sizeof(float), cudaMemcpyDeviceToHost));
    const auto w = recovered_weights(host, m);
    const double steps = static_cast<double>(sampler.num_steps());
    std::printf("%s: %zu steps, %lld samples\n", name, sampler.num_steps(), static_cast<long long>(batch));
    std::printf("  time per step: %.2f us (stream), %.2f us (CUDA graph replay)\n", 1000.0 * plain_ms / steps,
                1000.0 * graph_ms / steps);
    bool ok = true;
    for (int k = 0; k < m.k; ++k) {
        const double d = std::abs(w[static_cast<std::size_t>(k)] - m.weight[k]);
        std::printf("  component %d: weight %.3f, recovered %.3f (|diff| %.3f)\n", k, m.weight[k],
                    w[static_cast<std::size_t>(k)], d);
        ok = ok && d <= tolerance;
    }
    std::printf("  %s (tolerance %.3f)\n", ok ? "weights recovered" : "WEIGHTS NOT RECOVERED", tolerance);
    return ok;
}

} // namespace

int main(int argc, char** argv) {
    bool small = false;
    long long samples = 65536;
    int no_device_code = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--small") == 0) small = true;
        else if (std::strcmp(argv[i], "--samples") == 0 && i + 1 < argc) samples = std::atoll(argv[++i]);
        else if (std::strncmp(argv[i], "--no-device-exit-code=", 22) == 0) no_device_code = std::atoi(argv[i] + 22);
        else {
            std::fprintf(stderr, "usage: %s [--small] [--samples N] [--no-device-exit-code=K]\n", argv[0]);
            return 2;
        }
    }
    if (small) samples = 8192;

    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        std::printf("no CUDA device — nothing to run (%s)\n",
                    e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount() = 0");
        return no_device_code;
    }

    try {
        cudaDeviceProp prop{};
        DDPM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        std::printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

        const ddpm::noise_schedule schedule(ddpm::schedule_config{}); // linear 1e-4 → 0.02, T = 1000
        const ddpm::cuda::device_schedule tables(schedule);
        const mixture m;
        const mixture_net net{tables.tables<float>().alphas_cumprod, m};
        // 1/√N sampling error of a weight, with margin for the discretisation.
        const double tolerance = 4.0 / std::sqrt(static_cast<double>(samples)) + 0.01;

        cudaStream_t stream = nullptr;
        DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        ddpm::cuda::device_buffer<float> x(static_cast<std::size_t>(samples * 2));

        const ddpm::ddpm_scheduler<float> full(schedule, {});
        ddpm::cuda::ddpm_sampler<float> ddpm_gpu(full, samples, 2, stream); // setup copies on `stream`
        const bool ok1 = run("DDPM (ancestral, fixed_small)", ddpm_gpu, net, x.data(), samples, stream, m, tolerance);

        ddpm::ddim_scheduler<float> ddim(schedule, {}); // η = 0
        ddim.set_timesteps(50);                          // diffusers' "leading": 980, 960, …, 0
        ddpm::cuda::ddim_sampler<float> ddim_gpu(ddim, samples, 2, stream);
        const bool ok2 = run("DDIM (50 steps, eta = 0)", ddim_gpu, net, x.data(), samples, stream, m, tolerance);

        DDPM_CUDA_CHECK(cudaStreamDestroy(stream));
        return ok1 && ok2 ? 0 : 1;
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: %s\n", ex.what());
        return 1;
    }
}
