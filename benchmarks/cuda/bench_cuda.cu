// benchmarks/cuda/bench_cuda.cu — timings of the CUDA kernels (docs/cuda.md,
// "Benchmark plan"). Nothing here has been run yet: no numbers are recorded
// anywhere until a session with a GPU runs benchmarks/cuda/run_gpu_checks.sh.
//
// Measured (CUDA events around each repetition, after a warm-up; median and
// minimum of --reps repetitions):
//   copy        cudaMemcpyAsync device→device of N elements: the bandwidth
//               ceiling (bytes read + written)
//   fill_normal the counter noise alone (writes N)
//   forward_noise fused x_t and ε with on-device noise (reads x_0, writes x_t, ε)
//   q_sample    x_t with caller noise (reads x_0 and ε, writes x_t)
//   ddpm_step / ddim_step  one fused reverse step (reads x_t and the output, writes x_prev),
//               also with dynamic thresholding (+ the selection kernel)
//   chain       a 1000-step DDPM chain with an element-wise toy network, enqueued
//               on a stream and replayed from a CUDA graph (per-step time), for a
//               large and a tiny problem (the tiny one shows launch overhead)
// Each kernel's effective bandwidth is reported as a fraction of the copy's.
//
//   bench_cuda [--elements N] [--reps R] [--csv FILE]     N defaults to 2^26
#include <ddpm/cuda.cuh>
#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace {

struct result {
    std::string name;
    std::string type;
    long long elements;
    double bytes;     // bytes moved per repetition (the fewest the operation needs)
    double median_ms;
    double min_ms;
};

struct timer {
    cudaEvent_t a = nullptr, b = nullptr;
    timer() {
        DDPM_CUDA_CHECK(cudaEventCreate(&a));
        DDPM_CUDA_CHECK(cudaEventCreate(&b));
    }
    ~timer() {
        (void)cudaEventDestroy(a);
        (void)cudaEventDestroy(b);
    }
    /// Median and minimum over `reps` timed repetitions, after 3 warm-ups.
    std::pair<double, double> run(cudaStream_t s, int reps, const std::function<void()>& f) {
        for (int i = 0; i < 3; ++i) f();
        DDPM_CUDA_CHECK(cudaStreamSynchronize(s));
        std::vector<double> ms;
        for (int i = 0; i < reps; ++i) {
            DDPM_CUDA_CHECK(cudaEventRecord(a, s));
            f();
            DDPM_CUDA_CHECK(cudaEventRecord(b, s));
            DDPM_CUDA_CHECK(cudaEventSynchronize(b));
            float t = 0;
            DDPM_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
            ms.push_back(t);
        }
        std::sort(ms.begin(), ms.end());
        return {ms[ms.size() / 2], ms.front()};
    }
};

template <class T>
const char* type_name() {
    if constexpr (std::is_same_v<T, float>) return "float";
    else if constexpr (std::is_same_v<T, double>) return "double";
    else if constexpr (std::is_same_v<T, __half>) return "half";
    else return "bfloat16";
}

/// An element-wise stand-in network: out = 0.9·x (one read, one write).
template <class T>
__global__ void scale_kernel(const T* x, T* out, std::int64_t n) {
    using S = ddpm::kernels::grid::storage_traits<T>;
    for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
        out[i] = S::store(S::load(x[i]) * 0.9f);
}

template <class T>
struct scale_net {
    void operator()(const T* x, const ddpm::timestep_t*, T* out, int B, int D, cudaStream_t s) const {
        const std::int64_t n = static_cast<std::int64_t>(B) * D;
        const int blocks = static_cast<int>(std::min<std::int64_t>((n + 255) / 256, 1 << 16));
        scale_kernel<T><<<blocks, 256, 0, s>>>(x, out, n);
    }
};

template <class T>
void bench_type(std::vector<result>& out, long long n, int reps, cudaStream_t s) {
    using C = ddpm::kernels::grid::compute_t<T>;
    const double e = static_cast<double>(sizeof(T));
    const std::int64_t dim = 1 << 20;
    const std::int64_t batch = std::max<std::int64_t>(1, n / dim);
    const long long N = batch * dim;
    const ddpm::noise_schedule sched(ddpm::schedule_config{});
    const ddpm::cuda::device_schedule ds(sched);
    ddpm::cuda::device_buffer<T> x(N), y(N), z(N), w(N);
    ddpm::cuda::device_buffer<ddpm::timestep_t> t(batch);
    std::vector<ddpm::timestep_t> ht(batch);
    for (std::int64_t b = 0; b < batch; ++b) ht[b] = (b * 37) % 1000;
    ddpm::cuda::upload_timesteps(ds, ht, t.data(), s);
    ddpm::cuda::fill_normal<T>(x.data(), batch, dim, {1, 1, 0}, s);
    ddpm::cuda::fill_normal<T>(z.data(), batch, dim, {1, 2, 0}, s);
    timer tm;
    auto add = [&](const char* name, double bytes, const std::function<void()>& f) {
        const auto [med, mn] = tm.run(s, reps, f);
        out.push_back({name, type_name<T>(), N, bytes, med, mn});
    };

    add("copy", 2 * e * N, [&] {
        DDPM_CUDA_CHECK(cudaMemcpyAsync(y.data(), x.data(), N * sizeof(T), cudaMemcpyDeviceToDevice, s));
    });
    add("fill_normal", e * N, [&] { ddpm::cuda::fill_normal<T>(y.data(), batch, dim, {3, 4, 0}, s); });
    add("forward_noise", 3 * e * N, [&] {
        ddpm::cuda::forward_noise<T>(ds, x.data(), t.data(), batch, dim, {5, 6, 0}, y.data(), w.data(), s);
    });
    add("q_sample", 3 * e * N, [&] { ddpm::cuda::q_sample<T>(ds, x.data(), z.data(), t.data(), batch, dim, y.data(), s); });

    // Reverse steps, one record for the batch (t = 500).
    for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::dynamic(0.995, 1.0)}) {
        const bool dyn = clip.kind == ddpm::clip_options::mode::dynamic_threshold;
        const ddpm::model_options opt{ddpm::prediction_type::epsilon, ddpm::variance_type::fixed_small, clip};
        ddpm::ddpm_scheduler<C> sch(sched, opt);
        const auto rec = ddpm::cuda::ddpm_step_records<T>(sch, std::vector<ddpm::timestep_t>{500});
        const ddpm::cuda::device_buffer<ddpm::cuda::ddpm_record<T>> drec(rec);
        ddpm::cuda::device_buffer<C> th(batch);
        ddpm::cuda::step_buffers<T> buf;
        buf.model_output = z.data();
        buf.xt = x.data();
        buf.x_prev = y.data();
        buf.thresholds = th.data();
        // Dynamic thresholding reads x_t and the output again for the selection
        // (from L2 when a sample fits, else from memory): bytes counted for one pass.
        add(dyn ? "ddpm_step+threshold" : "ddpm_step", 3 * e * N, [&] {
            ddpm::cuda::ddpm_step<T>(drec.data(), 0, buf, batch, dim, opt, ddpm::cuda::sigma_mode::fixed, {7, 0}, s);
        });
        ddpm::ddim_options dopt;
        dopt.eta = 1.0;
        ddpm::ddim_scheduler<C> dsch(sched, opt, dopt);
        dsch.set_timesteps(50); // 980, 960, …: t = 500 is not one, 480 is
        const auto drec2v = ddpm::cuda::ddim_step_records<T>(dsch, std::vector<ddpm::timestep_t>{480});
        const ddpm::cuda::device_buffer<ddpm::cuda::ddim_record<T>> drec2(drec2v);
        add(dyn ? "ddim_step+threshold" : "ddim_step", 3 * e * N, [&] {
            ddpm::cuda::ddim_step<T>(drec2.data(), 0, buf, batch, dim, opt, {7, 0}, s);
        });
    }
}

/// 1000-step chain: per-step time on a stream and from a graph.
template <class T>
void bench_chain(std::vector<result>& out, std::int64_t batch, std::int64_t dim, int reps, cudaStream_t s) {
    using C = ddpm::kernels::grid::compute_t<T>;
    const ddpm::noise_schedule sched(ddpm::schedule_config{});
    const ddpm::ddpm_scheduler<C> sch(sched, {});
    ddpm::cuda::ddpm_sampler<T> gpu(sch, batch, dim);
    ddpm::cuda::device_buffer<T> x(static_cast<std::size_t>(batch * dim));
    const scale_net<T> net;
    const ddpm::cuda::sampling_options so{11, 0, false};
    timer tm;
    const double steps = static_cast<double>(gpu.num_steps());
    const long long N = batch * dim;
    const double e = static_cast<double>(sizeof(T));
    // Per step: the network reads x and writes out; the step reads x and out and writes x.
    const double bytes = steps * 5 * e * N;
    const std::string shape = " B=" + std::to_string(batch) + " D=" + std::to_string(dim);
    const int chain_reps = std::max(3, reps / 10);
    {
        const auto [med, mn] = tm.run(s, chain_reps, [&] { gpu.sample(net, x.data(), so, s); });
        out.push_back({"chain1000 stream" + shape, type_name<T>(), N, bytes, med, mn});
    }
    auto g = gpu.capture(net, x.data(), so, s);
    {
        const auto [med, mn] = tm.run(s, chain_reps, [&] { g.launch(s); });
        out.push_back({"chain1000 graph" + shape, type_name<T>(), N, bytes, med, mn});
    }
}

} // namespace

int main(int argc, char** argv) {
    long long n = 1ll << 26;
    int reps = 50;
    const char* csv = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--elements") == 0 && i + 1 < argc) n = std::atoll(argv[++i]);
        else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (std::strcmp(argv[i], "--csv") == 0 && i + 1 < argc) csv = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s [--elements N] [--reps R] [--csv FILE]\n", argv[0]);
            return 2;
        }
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        std::printf("no CUDA device — nothing to benchmark\n");
        return 77;
    }
    try {
        cudaDeviceProp prop{};
        DDPM_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        std::printf("device: %s (sm_%d%d), %d SMs, L2 %d MiB\n", prop.name, prop.major, prop.minor,
                    prop.multiProcessorCount, prop.l2CacheSize >> 20);
        cudaStream_t s = nullptr;
        DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        std::vector<result> r;
        bench_type<float>(r, n, reps, s);
        bench_type<__half>(r, n, reps, s);
        bench_type<__nv_bfloat16>(r, n, reps, s);
        bench_type<double>(r, n / 2, reps, s);
        bench_chain<float>(r, 64, 3 * 64 * 64, reps, s);
        bench_chain<float>(r, 1024, 2, reps, s);
        DDPM_CUDA_CHECK(cudaStreamDestroy(s));

        // Bandwidth, and its fraction of the copy of the same type.
        std::FILE* f = csv ? std::fopen(csv, "w") : nullptr;
        if (f) std::fprintf(f, "name,type,elements,bytes,median_ms,min_ms,GBps,fraction_of_copy\n");
        std::printf("%-34s %-9s %12s %11s %11s %9s %8s\n", "kernel", "type", "elements", "median ms", "min ms",
                    "GB/s", "of copy");
        for (const auto& x : r) {
            double copy_gbps = 0;
            for (const auto& c : r)
                if (c.name == "copy" && c.type == x.type) copy_gbps = c.bytes / c.median_ms / 1e6;
            const double gbps = x.bytes / x.median_ms / 1e6;
            const double frac = copy_gbps > 0 ? gbps / copy_gbps : 0;
            std::printf("%-34s %-9s %12lld %11.4f %11.4f %9.1f %8.3f\n", x.name.c_str(), x.type.c_str(), x.elements,
                        x.median_ms, x.min_ms, gbps, frac);
            if (f)
                std::fprintf(f, "%s,%s,%lld,%.0f,%.6f,%.6f,%.3f,%.4f\n", x.name.c_str(), x.type.c_str(), x.elements,
                             x.bytes, x.median_ms, x.min_ms, gbps, frac);
        }
        if (f) std::fclose(f);
        std::printf("chain rows: time per step = median ms / 1000\n");
        return 0;
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: %s\n", ex.what());
        return 1;
    }
}
