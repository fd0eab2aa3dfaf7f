// examples/fashion_mnist/classifier.hpp: the feature statistics and the
// Fréchet distance behind the example's FID table, against closed forms.
#include <catch2/catch.hpp>

#include "fashion_mnist/classifier.hpp"

// LibTorch brings glog, whose CHECK replaces Catch's: restore Catch2 v2's.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

#include <cmath>
#include <stdexcept>
#include <vector>

namespace {

at::Tensor vec(std::initializer_list<double> v) { return torch::tensor(std::vector<double>(v), torch::kDouble); }

/// A random symmetric positive definite matrix X Xᵀ + I.
at::Tensor random_spd(std::int64_t n) {
    const at::Tensor x = torch::randn({n, n}, torch::kDouble);
    return x.matmul(x.t()) + torch::eye(n, torch::kDouble);
}

} // namespace

TEST_CASE("fashion_mnist FID: stats_of is the mean and the unbiased covariance", "[torch][fid]") {
    const at::Tensor f = torch::tensor({1.0, 2.0, 3.0, 6.0, 5.0, 10.0}, torch::kDouble).reshape({3, 2});
    const auto s = fmnist::stats_of(f);
    CHECK(s.n == 3);
    CHECK(s.mean[0].item<double>() == Approx(3.0));
    CHECK(s.mean[1].item<double>() == Approx(6.0));
    // x: 1, 3, 5 (variance 4); y: 2, 6, 10 (variance 16); covariance 8.
    CHECK(s.cov[0][0].item<double>() == Approx(4.0));
    CHECK(s.cov[1][1].item<double>() == Approx(16.0));
    CHECK(s.cov[0][1].item<double>() == Approx(8.0));
    CHECK_THROWS_AS(fmnist::stats_of(f.slice(0, 0, 1)), std::invalid_argument);
}

TEST_CASE("fashion_mnist FID: the Frechet distance equals its closed forms", "[torch][fid]") {
    SECTION("diagonal covariances: |dmu|^2 + sum (sqrt a - sqrt b)^2") {
        const fmnist::feature_stats a{vec({1, 2, 3}), torch::diag(vec({4, 1, 9})), 10};
        const fmnist::feature_stats b{vec({0, 2, 5}), torch::diag(vec({1, 1, 16})), 10};
        // 1 + 0 + 4 for the means, (2 - 1)^2 + 0 + (3 - 4)^2 for the covariances.
        CHECK(fmnist::frechet_distance(a, b) == Approx(7.0).epsilon(1e-12));
    }
    SECTION("full covariances that do not commute: tr (Sa Sb)^1/2 from the eigenvalues of Sa Sb") {
        torch::manual_seed(3);
        const std::int64_t n = 6;
        const fmnist::feature_stats a{torch::randn({n}, torch::kDouble), random_spd(n), 100};
        const fmnist::feature_stats b{torch::randn({n}, torch::kDouble), random_spd(n), 100};
        REQUIRE(a.cov.matmul(b.cov).sub(b.cov.matmul(a.cov)).abs().max().item<double>() > 1e-3);
        // Sa Sb is similar to Sa^1/2 Sb Sa^1/2: real positive eigenvalues.
        const double cross = torch::real(torch::linalg::eigvals(a.cov.matmul(b.cov))).sqrt().sum().item<double>();
        const double expected = (a.mean - b.mean).pow(2).sum().item<double>() + a.cov.trace().item<double>() +
                                b.cov.trace().item<double>() - 2 * cross;
        CHECK(fmnist::frechet_distance(a, b) == Approx(expected).epsilon(1e-9));
        CHECK(fmnist::frechet_distance(b, a) == Approx(expected).epsilon(1e-9));
        CHECK(std::abs(fmnist::frechet_distance(a, a)) < 1e-9 * a.cov.trace().item<double>());
    }
}
