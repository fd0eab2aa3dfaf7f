// A ColMajor B×D Eigen matrix passed as a sampler's output stores the samples
// interleaved: the samplers check the layout with the batch they know and
// throw, leaving the matrix untouched (issue 10 §4).
#include <catch2/catch.hpp>

#include <ddpm/adapters/eigen.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/pipelines.hpp>

#include <Eigen/Core>

namespace {

constexpr Eigen::Index B = 3, D = 5;

const auto net = [](std::span<const double> x, std::span<const ddpm::timestep_t>, std::span<double> out) {
    for (std::size_t k = 0; k < x.size(); ++k) out[k] = 0.1 * x[k];
};

} // namespace

TEST_CASE("samplers refuse a ColMajor BxD output", "[adapters][eigen][errors]") {
    ddpm::ddim_scheduler<double> s(ddpm::noise_schedule(ddpm::schedule_config{}));
    s.set_timesteps(5);
    const ddpm::sampler_options opt{.batch = static_cast<std::size_t>(B)};
    Eigen::MatrixXd bad = Eigen::MatrixXd::Constant(B, D, 7.0); // ColMajor, one row per sample
    CHECK_THROWS_AS(ddpm::sample(s, net, ddpm::counter_noise(1), bad, opt), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::sample(s, net, ddpm::counter_noise(1), bad, opt), Catch::Contains("interleaved"));
    CHECK((bad.array() == 7.0).all());
    ddpm::ddim_sampler<double> sampler(s);
    CHECK_THROWS_AS(sampler.sample(net, ddpm::counter_noise(1), bad, opt), ddpm::invalid_argument);
    Eigen::MatrixXd image = Eigen::MatrixXd::Zero(B, D);
    CHECK_THROWS_AS(ddpm::img2img(s, 0.5, net, ddpm::counter_noise(1), image, bad, opt), ddpm::invalid_argument);
    CHECK((bad.array() == 7.0).all());

    // batch-first layouts run: RowMajor BxD, ColMajor DxB
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> rows(B, D);
    CHECK(ddpm::sample(s, net, ddpm::counter_noise(1), rows, opt) == 5);
    Eigen::MatrixXd cols(D, B);
    CHECK(ddpm::sample(s, net, ddpm::counter_noise(1), cols, opt) == 5);
    for (Eigen::Index b = 0; b < B; ++b)
        for (Eigen::Index k = 0; k < D; ++k) CHECK(rows(b, k) == cols(k, b));
}
