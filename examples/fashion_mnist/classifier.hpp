// examples/fashion_mnist/classifier.hpp — a small Fashion-MNIST classifier
// (LibTorch) whose penultimate layer is the feature space of the example's
// FID, and the Fréchet distance between two sets of features.
//
//   x (B, 1, 28, 28) in [−1, 1]
//   conv3×3 1→16, ReLU, max-pool 2   (14×14)
//   conv3×3 16→32, ReLU, max-pool 2  (7×7)
//   flatten 1568 → Linear 64 → ReLU  = the 64 features
//   Linear 64 → 10 logits
//
// FID (Heusel et al. 2017) in this feature space:
//   d² = ‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a^½ Σ_b Σ_a^½)^½
// (tr (Σ_a Σ_b)^½ written with symmetric matrices, both square roots from
// eigen-decompositions, in float64).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fmnist {

struct ClassifierImpl : torch::nn::Module {
    static constexpr std::int64_t feature_dim = 64;

    ClassifierImpl()
        : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 16, 3).padding(1)))),
          conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)))),
          fc1(register_module("fc1", torch::nn::Linear(32 * 7 * 7, feature_dim))),
          fc2(register_module("fc2", torch::nn::Linear(feature_dim, 10))) {}

    /// The penultimate activations: (B, 64).
    at::Tensor features(const at::Tensor& x) {
        auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);
        h = torch::max_pool2d(torch::relu(conv2(h)), 2);
        return torch::relu(fc1(h.flatten(1)));
    }

    /// Class logits: (B, 10).
    at::Tensor forward(const at::Tensor& x) { return fc2(features(x)); }

    torch::nn::Conv2d conv1, conv2;
    torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(Classifier);

/// Mean and covariance (float64) of a set of feature rows (N, F).
struct feature_stats {
    at::Tensor mean, cov;
    std::int64_t n = 0;
};

inline feature_stats stats_of(const at::Tensor& features) {
    if (features.dim() != 2 || features.size(0) < 2)
        throw std::invalid_argument("fmnist::stats_of: need at least 2 feature rows, got " +
                                    std::to_string(features.dim() == 2 ? features.size(0) : 0));
    const at::Tensor f = features.to(torch::kDouble);
    const at::Tensor mean = f.mean(0);
    const at::Tensor centred = f - mean;
    return {mean, centred.t().matmul(centred) / static_cast<double>(f.size(0) - 1), f.size(0)};
}

/// Σ^½ of a symmetric positive semi-definite matrix (eigenvalues below 0,
/// rounding, clamped to 0).
inline at::Tensor psd_sqrt(const at::Tensor& s) {
    const auto [values, vectors] = torch::linalg::eigh(0.5 * (s + s.t()), "L");
    return vectors.matmul(torch::diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
}

/// The Fréchet distance between the Gaussians of two feature sets.
inline double frechet_distance(const feature_stats& a, const feature_stats& b) {
    const at::Tensor root_a = psd_sqrt(a.cov);
    const at::Tensor m = root_a.matmul(b.cov).matmul(root_a);
    const double cross = torch::linalg::eigvalsh(0.5 * (m + m.t()), "L").clamp_min(0).sqrt().sum().item<double>();
    const double dmean = (a.mean - b.mean).pow(2).sum().item<double>();
    return dmean + a.cov.trace().item<double>() + b.cov.trace().item<double>() - 2 * cross;
}

} // namespace fmnist
