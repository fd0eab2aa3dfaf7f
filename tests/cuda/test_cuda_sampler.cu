// The device sampling drivers against the CPU:
//   * ddpm::cuda::ddpm_sampler (with a CUDA version of the toy network) =
//     ddpm::sample on the CPU with the same counter noise, within float
//     rounding accumulated over the chain;
//   * ddpm::cuda::ddim_sampler = ddpm::ddim_sample on the CPU, same noise;
//   * a captured graph replays to exactly the uncaptured result, twice;
//   * the 16-bit storage types follow the float chain closely.
#include "device_util.cuh"

#include <ddpm/samplers/ddim.hpp>
#include <ddpm/samplers/ddpm.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace ddpm_cuda_test;
using ddpm::timestep_t;

namespace {

struct stream_guard {
    cudaStream_t s = nullptr;
    stream_guard() { DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
    ~stream_guard() { (void)cudaStreamDestroy(s); }
};

/// The CPU chain: ddpm::sample with the counter noise (the toy network in C).
template <class C>
std::vector<C> cpu_ddpm_chain(const ddpm::ddpm_scheduler<C>& sch, std::size_t batch, std::size_t dim,
                              std::uint64_t seed, std::uint32_t first) {
    std::vector<C> x(batch * dim);
    ddpm::sampler_options so;
    so.batch = batch;
    ddpm::sample(sch, toy_model<C>{sch.options().variance}, counter_noise<C>{seed, dim, first}, x, so);
    return x;
}

template <class T>
void check_ddpm_sampler(const ddpm::model_options& opt, std::int64_t steps, double tol) {
    using C = compute<T>;
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::ddpm_scheduler<C> sch(s, opt);
    if (steps > 0) sch.set_timesteps(steps);
    const std::size_t batch = 8, dim = 192;
    const std::uint64_t seed = 1234;
    const std::uint32_t first = 40;
    const auto ref = cpu_ddpm_chain<C>(sch, batch, dim, seed, first);

    stream_guard st;
    // Built with the copies on the user's non-blocking stream (waited for).
    ddpm::cuda::ddpm_sampler<T> gpu(sch, static_cast<std::int64_t>(batch), static_cast<std::int64_t>(dim), st.s);
    ddpm::cuda::device_buffer<T> x(batch * dim);
    poison(x, st.s);
    const toy_net<T> net{opt.variance};
    const ddpm::cuda::sampling_options so{seed, first, false};
    gpu.sample(net, x.data(), so, st.s);
    DDPM_CUDA_CHECK(cudaStreamSynchronize(st.s));
    const auto got = to_host(x);
    const double r = max_rel<double, double>(widen(to_compute(got)), widen(ref));
    const std::string what = std::string("ddpm chain ") + std::string(ddpm::to_string(opt.variance)) + " clip " +
                             std::to_string(static_cast<int>(opt.clip.kind)) + " steps " +
                             std::to_string(gpu.num_steps()) + " sizeof(T) " + std::to_string(sizeof(T));
    DDPM_EXPECT(r <= tol) << what << ": max relative difference " << r << " > " << tol;
    std::cout << "  " << what << ": max relative difference to the CPU chain " << r << "\n";

    // Graph capture: the replay gives the uncaptured result, bit for bit, every time.
    auto g = gpu.capture(net, x.data(), so, st.s);
    for (int rep = 0; rep < 2; ++rep) {
        poison(x, st.s);
        g.launch(st.s);
        DDPM_CUDA_CHECK(cudaStreamSynchronize(st.s));
        DDPM_EXPECT(bitwise_equal<T>(to_host(x), got)) << what << ": graph replay " << rep << " differs";
    }
}

} // namespace

DDPM_CUDA_TEST(ddpm_sampler_float_full_chain) {
    check_ddpm_sampler<float>({}, 0, 2e-3);
}
DDPM_CUDA_TEST(ddpm_sampler_float_strided_clipped) {
    ddpm::model_options o;
    o.clip = ddpm::clip_options::clip(1.0);
    check_ddpm_sampler<float>(o, 50, 1e-3);
    o.clip = ddpm::clip_options::dynamic(0.9, 2.0);
    o.variance = ddpm::variance_type::learned_range;
    check_ddpm_sampler<float>(o, 50, 1e-3);
    o.prediction = ddpm::prediction_type::v_prediction;
    o.variance = ddpm::variance_type::fixed_large;
    check_ddpm_sampler<float>(o, 50, 1e-3);
}
DDPM_CUDA_TEST(ddpm_sampler_double) {
    check_ddpm_sampler<double>({}, 0, 1e-9);
    ddpm::model_options o;
    o.clip = ddpm::clip_options::dynamic(0.9, 2.0);
    check_ddpm_sampler<double>(o, 50, 1e-9);
}
DDPM_CUDA_TEST(ddpm_sampler_half_and_bfloat16_track_float) {
    ddpm::model_options o;
    o.clip = ddpm::clip_options::clip(1.0);
    check_ddpm_sampler<__half>(o, 50, 5e-2);
    check_ddpm_sampler<__nv_bfloat16>(o, 50, 2e-1);
}

DDPM_CUDA_TEST(ddim_sampler_matches_the_cpu_chain) {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    for (const double eta : {0.0, 1.0}) {
        for (const auto& clip : {ddpm::clip_options::none(), ddpm::clip_options::dynamic(0.95, 2.0)}) {
            const ddpm::model_options opt{ddpm::prediction_type::epsilon, ddpm::variance_type::fixed_small, clip};
            ddpm::ddim_options d;
            d.eta = eta;
            ddpm::ddim_scheduler<float> sch(s, opt, d);
            sch.set_timesteps(50, ddpm::timestep_spacing::trailing);
            const std::size_t batch = 5, dim = 100;
            std::vector<float> ref(batch * dim);
            ddpm::sampler_options cpu;
            cpu.batch = batch;
            ddpm::ddim_sample(sch, toy_model<float>{}, counter_noise<float>{77, dim, 0}, ref, cpu);
            stream_guard st;
            ddpm::cuda::ddim_sampler<float> gpu(sch, static_cast<std::int64_t>(batch), static_cast<std::int64_t>(dim));
            ddpm::cuda::device_buffer<float> x(batch * dim), x0(batch * dim);
            const ddpm::cuda::sampling_options so{77, 0, false};
            gpu.sample(toy_net<float>{}, x.data(), so, st.s, x0.data());
            DDPM_CUDA_CHECK(cudaStreamSynchronize(st.s));
            const auto got = to_host(x);
            const double r = max_rel<float, float>(got, ref);
            DDPM_EXPECT(r <= 1e-3) << "ddim eta " << eta << " clip " << static_cast<int>(clip.kind) << ": " << r;
            std::cout << "  ddim eta " << eta << " clip " << static_cast<int>(clip.kind)
                      << ": max relative difference to the CPU chain " << r << "\n";
            auto g = gpu.capture(toy_net<float>{}, x.data(), so, st.s, x0.data());
            poison(x, st.s);
            g.launch(st.s);
            DDPM_CUDA_CHECK(cudaStreamSynchronize(st.s));
            DDPM_EXPECT(bitwise_equal<float>(to_host(x), got)) << "ddim graph replay differs";
        }
    }
}

DDPM_CUDA_TEST(start_from_input_and_bad_arguments) {
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::ddpm_scheduler<float> sch(s, {});
    sch.set_timesteps(10);
    ddpm::cuda::ddpm_sampler<float> gpu(sch, 4, 64);
    ddpm::cuda::device_buffer<float> x(4 * 64), y(4 * 64);
    // Drawing x_T is the same as filling it with step 0 and starting from it.
    ddpm::cuda::fill_normal<float>(y.data(), 4, 64, {9, 0, 0});
    gpu.sample(toy_net<float>{}, x.data(), {9, 0, false});
    gpu.sample(toy_net<float>{}, y.data(), {9, 0, true});
    DDPM_CUDA_CHECK(cudaDeviceSynchronize());
    DDPM_EXPECT(bitwise_equal<float>(to_host(x), to_host(y)));
    std::vector<float> host(4 * 64);
    DDPM_EXPECT_THROWS(gpu.sample(toy_net<float>{}, host.data()), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(gpu.sample(toy_net<float>{}, nullptr), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS((ddpm::cuda::ddpm_sampler<float>(sch, 0, 64)), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(gpu.capture(toy_net<float>{}, x.data(), {}, nullptr), ddpm::invalid_argument);
    const ddpm::ddim_scheduler<float> unset(s, {}); // no set_timesteps: no chain
    DDPM_EXPECT_THROWS((ddpm::cuda::ddim_sampler<float>(unset, 4, 64)), ddpm::invalid_argument);
}

namespace {
__global__ void never_launched(float*) {}
} // namespace

DDPM_CUDA_TEST(a_network_launch_failure_is_reported_as_the_networks) {
    // A network whose launch fails (2048 threads per block) and that does not check:
    // the step launched after it must name the error as pending from earlier work.
    const ddpm::noise_schedule s(ddpm::schedule_config{});
    ddpm::ddpm_scheduler<float> sch(s, {});
    sch.set_timesteps(5);
    stream_guard st;
    ddpm::cuda::ddpm_sampler<float> gpu(sch, 2, 64, st.s);
    ddpm::cuda::device_buffer<float> x(2 * 64);
    auto bad_net = [](const float*, const timestep_t*, float* out, int, int, cudaStream_t stream) {
        never_launched<<<1, 2048, 0, stream>>>(out);
    };
    bool named = false;
    try {
        gpu.sample(bad_net, x.data(), {}, st.s);
    } catch (const ddpm::cuda_error& e) {
        const std::string m = e.what();
        named = m.find("pending before ddpm's launch") != std::string::npos;
        DDPM_EXPECT(named) << m;
    }
    DDPM_EXPECT(named) << "the network's launch failure was not reported as pending before ddpm's launch";
    DDPM_CUDA_CHECK(cudaStreamSynchronize(st.s));
}

DDPM_CUDA_TEST_MAIN()
