// examples/fashion_mnist/unet.hpp, class-conditional: the class embedding's
// initialisation (N(0, s²), or zeros), loading an unconditional checkpoint into
// the conditional network, and classifier-free guidance over
// ddpm::torch_denoiser's labels call.
#include <catch2/catch.hpp>

#include <ddpm/adapters/torch.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/guidance.hpp>

#include "fashion_mnist/unet.hpp"

// LibTorch brings glog, whose CHECK replaces Catch's: restore Catch2 v2's.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr fmnist::unet_config small_config(bool classes) {
    return {.channels = 8, .groups = 8, .attention = true, .classes = classes};
}

/// Random weights everywhere, conv_out included (it starts at zero).
void randomise(fmnist::UNet& net, std::uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.copy_(torch::randn_like(p) * 0.2);
}

at::Tensor inputs(std::int64_t B) { return torch::sin(torch::arange(B * 784, torch::kFloat) * 0.37).reshape({B, 1, 28, 28}); }

std::filesystem::path temp_file(const std::string& name) {
    return std::filesystem::temp_directory_path() / ("ddpm_test_cfg_" + name);
}

} // namespace

TEST_CASE("fashion_mnist UNet: the zero class embedding leaves the network unconditional", "[torch][cfg]") {
    fmnist::UNet net(small_config(true));
    randomise(net, 1);
    {
        torch::NoGradGuard no_grad;
        net->class_emb->weight.zero_();
    }
    net->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor x = inputs(3), t = torch::tensor(std::vector<std::int64_t>{0, 500, 999});
    const at::Tensor plain = net->forward(x, t);
    CHECK(plain.abs().max().item<double>() > 0);
    for (const std::int64_t y : {std::int64_t{0}, std::int64_t{7}, fmnist::null_label})
        CHECK(torch::equal(net->forward(x, t, torch::full({3}, y, torch::kLong)), plain));
    // A non-zero embedding makes the labels matter.
    torch::manual_seed(2);
    net->class_emb->weight.copy_(torch::randn_like(net->class_emb->weight));
    CHECK(!torch::allclose(net->forward(x, t, torch::full({3}, 1, torch::kLong)),
                           net->forward(x, t, torch::full({3}, 2, torch::kLong))));
    CHECK_THROWS_AS(net->forward(x, t, torch::full({3}, 11, torch::kLong)), std::invalid_argument);
    CHECK_THROWS_AS(net->forward(x, t, torch::full({3}, -1, torch::kLong)), std::invalid_argument);
    fmnist::UNet plain_net(small_config(false));
    CHECK_THROWS_AS(plain_net->forward(x, t, torch::full({3}, 0, torch::kLong)), std::invalid_argument);
}

TEST_CASE("fashion_mnist UNet: the class embedding starts as N(0, class_init_std^2)", "[torch][cfg]") {
    torch::manual_seed(8);
    fmnist::UNet normal(small_config(true)); // default: std 1, improved-diffusion's label embedding
    torch::NoGradGuard no_grad;
    const at::Tensor w = normal->class_emb->weight; // 11 x 32 values
    CHECK(w.size(0) == fmnist::null_label + 1);
    CHECK(w.mean().abs().item<double>() < 0.2);
    CHECK(w.std().item<double>() == Approx(1.0).margin(0.15));
    auto scaled = small_config(true);
    scaled.class_init_std = 0.25;
    torch::manual_seed(8);
    CHECK(torch::allclose(fmnist::UNet(scaled)->class_emb->weight, 0.25 * w, 1e-6, 1e-7)); // the same draw, scaled
    auto zero = small_config(true);
    zero.class_init_std = 0;
    CHECK(fmnist::UNet(zero)->class_emb->weight.abs().max().item<double>() == 0);
    for (const double bad : {-1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
        auto b = small_config(true);
        b.class_init_std = bad;
        CHECK_THROWS_AS(fmnist::UNet(b), std::invalid_argument);
    }
    // forward(x, t) of a conditional network is the null label's output.
    randomise(normal, 9); // conv_out starts at zero: every output would be 0
    normal->eval();
    const at::Tensor x = inputs(2), t = torch::tensor(std::vector<std::int64_t>{5, 700});
    const at::Tensor plain = normal->forward(x, t);
    CHECK(torch::allclose(plain, normal->forward(x, t, torch::full({2}, fmnist::null_label, torch::kLong)), 1e-6, 1e-6));
    CHECK(!torch::allclose(plain, normal->forward(x, t, torch::full({2}, 4, torch::kLong)), 1e-3, 1e-3));
}

TEST_CASE("fashion_mnist UNet: load_weights takes an unconditional checkpoint into the conditional network",
          "[torch][cfg]") {
    fmnist::UNet plain(small_config(false));
    randomise(plain, 3);
    const auto file = temp_file("plain.pt");
    torch::save(plain, file.string());

    fmnist::UNet cond(small_config(true));
    randomise(cond, 4); // every weight differs, the class embedding too
    fmnist::load_weights(cond, file.string());
    torch::NoGradGuard no_grad;
    plain->eval();
    cond->eval();
    const at::Tensor x = inputs(2), t = torch::tensor(std::vector<std::int64_t>{10, 900});
    const at::Tensor expected = plain->forward(x, t);
    CHECK(cond->class_emb->weight.abs().max().item<double>() > 0); // kept, not reset
    {
        torch::NoGradGuard ng;
        cond->class_emb->weight.zero_();
    }
    CHECK(torch::equal(cond->forward(x, t, torch::tensor(std::vector<std::int64_t>{3, fmnist::null_label})), expected));

    // A conditional checkpoint loads with its class embedding.
    fmnist::UNet trained(small_config(true));
    randomise(trained, 5);
    const auto cond_file = temp_file("cond.pt");
    torch::save(trained, cond_file.string());
    fmnist::UNet loaded(small_config(true));
    fmnist::load_weights(loaded, cond_file.string());
    CHECK(torch::equal(loaded->class_emb->weight, trained->class_emb->weight));
    CHECK(torch::equal(loaded->conv_in->weight, trained->conv_in->weight));
    std::filesystem::remove(file);
    std::filesystem::remove(cond_file);
}

TEST_CASE("fashion_mnist UNet: classifier-free guidance over torch_denoiser's labels call", "[torch][cfg]") {
    fmnist::UNet net(small_config(true));
    randomise(net, 6);
    net->eval();
    const ddpm::torch_denoiser_options real_t{.timesteps = ddpm::torch_timestep_type::float32};
    ddpm::torch_denoiser den(net, {1, 28, 28}, real_t);
    constexpr std::size_t B = 4, D = 784;
    const at::Tensor xt = inputs(B);
    const std::vector<float> x(xt.data_ptr<float>(), xt.data_ptr<float>() + B * D);
    const std::vector<ddpm::timestep_t> t{999, 600, 250, 1};
    const std::vector<std::int64_t> labels{0, 3, 5, 9};
    std::vector<float> cond(B * D), uncond(B * D), guided(B * D);
    den(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<const std::int64_t>(labels),
        std::span<float>(cond));
    const std::vector<std::int64_t> nulls(B, fmnist::null_label);
    den(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<const std::int64_t>(nulls),
        std::span<float>(uncond));
    CHECK(cond != uncond);

    const auto run = [&](double w, ddpm::guidance_batching batching) {
        ddpm::classifier_free_guidance cfg(den, labels, fmnist::null_label, w, {.batching = batching});
        cfg(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(guided));
        return guided;
    };
    for (const auto batching : {ddpm::guidance_batching::joint, ddpm::guidance_batching::separate}) {
        // w = 1: the conditional output; w = 0: the unconditional one (to float rounding of u + w (c − u)).
        const auto g1 = run(1, batching), g0 = run(0, batching), g3 = run(3, batching);
        for (std::size_t i = 0; i < B * D; i += 97) {
            CHECK(g1[i] == Approx(cond[i]).margin(1e-5));
            CHECK(g0[i] == Approx(uncond[i]).margin(1e-5));
            CHECK(g3[i] == Approx(uncond[i] + 3.0 * (cond[i] - uncond[i])).margin(1e-4));
        }
    }

    // Sampling end to end: DPM-Solver++ 4 steps with w = 1 gives the plain conditional sampler's images.
    const ddpm::noise_schedule schedule{ddpm::schedule_config{.num_train_timesteps = 1000}};
    ddpm::model_options mo;
    mo.clip = ddpm::clip_options::clip(1.0);
    std::vector<float> a(B * D), b(B * D);
    {
        ddpm::dpm_solver_multistep_scheduler<float> s(schedule, mo);
        s.set_timesteps(4);
        ddpm::classifier_free_guidance cfg(den, labels, fmnist::null_label, 1.0);
        ddpm::sample(s, cfg, ddpm::counter_noise(7, D), std::span<float>(a), {.batch = B, .check_finite = true});
    }
    {
        ddpm::dpm_solver_multistep_scheduler<float> s(schedule, mo);
        s.set_timesteps(4);
        ddpm::torch_denoiser labelled = den.with_labels(labels);
        ddpm::sample(s, labelled, ddpm::counter_noise(7, D), std::span<float>(b), {.batch = B, .check_finite = true});
    }
    for (std::size_t i = 0; i < B * D; i += 53) CHECK(a[i] == Approx(b[i]).margin(1e-4));
}
