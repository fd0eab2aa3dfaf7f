// The counter noise on the device equals the CPU scalar generator bit for
// bit (random::fill_normal_scalar / fill_uniform_scalar in stream v1,
// random::normal_at_v2 element by element in stream v2), for several
// (seed, sample, step, offset, length), in every storage type (the float
// value, widened for double, rounded to nearest even for the 16-bit types).
#include "device_util.cuh"

#include <ddpm/random/counter_noise.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace ddpm_cuda_test;

namespace {

struct noise_case {
    std::uint64_t seed;
    std::uint32_t first_sample;
    std::uint32_t step;
    std::uint64_t offset;
    std::int64_t dim;
};

const noise_case cases[] = {
    {0, 0, 0, 0, 1},
    {1, 3, 7, 0, 64},
    {0x123456789abcdefull, 0, 1, 5, 100},
    {42, 1000, 999, 63, 2},
    {7, 0xFFFFFFF0u, 5, 64, 129},
    {99, 2, 0, (1ull << 40) + 17, 300},
    {0xFFFFFFFFFFFFFFFFull, 11, 0xFFFFFFFFu, 1, 4097},
    {2024, 0, 3, 0, 1 << 20},
};

template <class T>
void check_noise(bool uniform, ddpm::random::noise_version version) {
    const std::int64_t batch = 3;
    for (const auto& c : cases) {
        ddpm::cuda::device_buffer<T> out(static_cast<std::size_t>(batch * c.dim));
        poison(out);
        const ddpm::cuda::noise_stream ns{c.seed, c.step, c.first_sample, version};
        if (uniform) ddpm::cuda::fill_uniform<T>(out.data(), batch, c.dim, ns, nullptr, c.offset);
        else ddpm::cuda::fill_normal<T>(out.data(), batch, c.dim, ns, nullptr, c.offset);
        const auto got = to_host(out);
        for (std::int64_t b = 0; b < batch; ++b) {
            const auto sample = static_cast<std::uint32_t>(c.first_sample + static_cast<std::uint64_t>(b));
            const auto ref = fill_reference(c.seed, sample, c.step, c.offset, static_cast<std::size_t>(c.dim), uniform,
                                            version);
            const auto expect = to_storage<T>(ref);
            const std::span<const T> row(got.data() + b * c.dim, static_cast<std::size_t>(c.dim));
            DDPM_EXPECT(bitwise_equal<T>(row, expect))
                << "seed " << c.seed << " sample " << sample << " step " << c.step << " offset " << c.offset
                << " dim " << c.dim << " uniform " << uniform << " sizeof(T) " << sizeof(T) << " version "
                << unsigned(version);
        }
    }
}

template <class T>
void check_noise(bool uniform) {
    check_noise<T>(uniform, ddpm::random::noise_version::v1);
    check_noise<T>(uniform, ddpm::random::noise_version::v2);
}

} // namespace

DDPM_CUDA_TEST(normal_float_bit_identical) { check_noise<float>(false); }
DDPM_CUDA_TEST(uniform_float_bit_identical) { check_noise<float>(true); }
DDPM_CUDA_TEST(normal_double_is_the_widened_float) { check_noise<double>(false); }
DDPM_CUDA_TEST(normal_half_is_the_rounded_float) { check_noise<__half>(false); }
DDPM_CUDA_TEST(normal_bfloat16_is_the_rounded_float) { check_noise<__nv_bfloat16>(false); }

DDPM_CUDA_TEST(normal_at_spot_checks_on_a_large_batch) {
    // 2^26 elements in 64 rows: spot-check rows and positions against normal_at.
    const std::int64_t batch = 64, dim = 1 << 20;
    ddpm::cuda::device_buffer<float> out(static_cast<std::size_t>(batch * dim));
    ddpm::cuda::fill_normal<float>(out.data(), batch, dim, {5, 9, 17});
    const auto got = to_host(out);
    for (std::int64_t k = 0; k < batch * dim; k += 99991) {
        const auto b = static_cast<std::uint32_t>(17 + k / dim);
        const float ref = ddpm::random::normal_at(5, b, 9, static_cast<std::uint64_t>(k % dim));
        DDPM_EXPECT(std::memcmp(&ref, &got[static_cast<std::size_t>(k)], sizeof(float)) == 0) << "element " << k;
    }
}

DDPM_CUDA_TEST(bad_arguments_throw_before_any_launch) {
    ddpm::cuda::device_buffer<float> out(16);
    std::vector<float> host(16);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(nullptr, 1, 16, {}), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(host.data(), 1, 16, {}), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(out.data(), 0, 16, {}), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(out.data(), 1, 0, {}), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(out.data(), 2, 8, {0, 0, 0xFFFFFFFFu}), ddpm::invalid_argument);
    DDPM_EXPECT_THROWS(ddpm::cuda::fill_normal<float>(out.data(), 1, 8, {0, 0, 0, ddpm::random::noise_version{3}}),
                       ddpm::invalid_argument);
    // The noexcept launcher reports the same as a status.
    ddpm::kernels::grid::fill_args<float> a;
    a.out = out.data();
    a.batch = 1;
    a.dim = 0;
    const auto st = ddpm::cuda::launch_fill(a, nullptr);
    DDPM_EXPECT(!st.ok() && st.bad_argument() && std::string(st.parameter) == "dim");
}

namespace {
__global__ void empty_kernel() {}
} // namespace

DDPM_CUDA_TEST(an_error_pending_before_the_launch_is_named_as_such) {
    // Earlier work fails to launch (2048 threads per block: an invalid, non-sticky
    // configuration) and nobody checks; ddpm's next launch must not claim the error.
    ddpm::cuda::device_buffer<float> out(64);
    empty_kernel<<<1, 2048>>>();
    bool named = false;
    try {
        ddpm::cuda::fill_normal<float>(out.data(), 1, 64, {});
    } catch (const ddpm::cuda_error& e) {
        const std::string m = e.what();
        named = m.find("pending before ddpm's launch") != std::string::npos &&
                m.find("cudaErrorInvalidConfiguration") != std::string::npos;
        DDPM_EXPECT(named) << m;
    }
    DDPM_EXPECT(named) << "fill_normal after a failed user launch did not report a pending error";
    // Taken and reported once: the next launch runs.
    ddpm::cuda::fill_normal<float>(out.data(), 1, 64, {});
    DDPM_CUDA_CHECK(cudaDeviceSynchronize());
    // The noexcept launcher says the same through its status.
    empty_kernel<<<1, 2048>>>();
    ddpm::kernels::grid::fill_args<float> a;
    a.out = out.data();
    a.batch = 1;
    a.dim = 64;
    const auto st = ddpm::cuda::launch_fill(a, nullptr);
    DDPM_EXPECT(!st.ok() && st.pending_before && st.error == cudaErrorInvalidConfiguration);
}

DDPM_CUDA_TEST_MAIN()
