// ddpm/adapters/torch.hpp: tensors are zero-copy ddpm buffers with checked
// dtype/device/layout; torch_denoiser calls C++ and TorchScript modules with
// views of the sampler's buffers and equals calling the module by hand.
#include <catch2/catch.hpp>

#include <ddpm/adapters/torch.hpp>
#include <ddpm/ddpm.hpp>
#include <ddpm/guidance.hpp>

#include <torch/torch.h> // torch::nn::Module for the C++ modules below

// LibTorch brings glog, whose CHECK(condition) replaces Catch's CHECK (and
// aborts on failure): restore Catch2 v2's definition.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

using Catch::Matchers::Contains;

const ddpm::noise_schedule& schedule() {
    static const ddpm::noise_schedule s{ddpm::schedule_config{.num_train_timesteps = 50}};
    return s;
}

/// A C++ module that records what it was called with (to see that the
/// wrapper passes views, not copies) and returns a fixed function of (x, t).
struct recording_module : torch::nn::Module {
    const void* x_data = nullptr;
    const void* t_data = nullptr;
    at::Tensor last_x, last_t;
    std::vector<std::int64_t> output_sizes; // empty: the input's sizes

    at::Tensor forward(const at::Tensor& x, const at::Tensor& t) {
        x_data = x.data_ptr();
        t_data = t.data_ptr();
        last_x = x;
        last_t = t;
        std::vector<std::int64_t> view(static_cast<std::size_t>(x.dim()), 1);
        view[0] = x.size(0);
        at::Tensor y = 0.5 * x + 0.01 * t.to(x.scalar_type()).view(view);
        if (!output_sizes.empty()) y = torch::zeros(output_sizes, x.options());
        return y;
    }
};

/// A module with one conditioning input: adds label / 10 per sample.
struct conditioned_module : torch::nn::Module {
    at::Tensor forward(const at::Tensor& x, const at::Tensor&) { return x; }
    at::Tensor forward(const at::Tensor& x, const at::Tensor&, const at::Tensor& labels) {
        return x + 0.1 * labels.to(x.scalar_type()).view({-1, 1, 1, 1});
    }
};

std::vector<float> ramp(std::size_t n, float scale = 0.01f) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(static_cast<int>(i % 37) - 18);
    return v;
}

#ifdef DDPM_TORCH_SCRIPTED_DIR
torch::jit::Module load_scripted(const std::string& name) {
    auto m = torch::jit::load(std::string(DDPM_TORCH_SCRIPTED_DIR) + "/" + name);
    m.eval();
    return m;
}
#endif

} // namespace

static_assert(ddpm::input_buffer<at::Tensor> && ddpm::output_buffer<at::Tensor&>);
static_assert(!ddpm::output_buffer<const at::Tensor&>, "a const tensor is an input only");
static_assert(ddpm::output_buffer<ddpm::tensor_buffer<double>> &&
              !ddpm::output_buffer<ddpm::tensor_buffer<const float>>);
static_assert(!noexcept(ddpm::as_span(std::declval<const at::Tensor&>())), "a bare tensor is checked on each view");
static_assert(ddpm::denoiser<ddpm::torch_denoiser, float> && ddpm::denoiser<ddpm::torch_denoiser, double>);
static_assert(ddpm::continuous_denoiser<ddpm::torch_denoiser, float> &&
                  ddpm::continuous_denoiser<ddpm::torch_denoiser, double>,
              "real-valued timesteps have a call operator too");

TEST_CASE("a float32 tensor is a zero-copy ddpm buffer", "[torch][buffer]") {
    const std::int64_t B = 3, C = 2, H = 4, W = 5;
    const at::Tensor x0 = torch::linspace(-1, 1, B * C * H * W).view({B, C, H, W});
    const at::Tensor eps = torch::linspace(1, -0.5, B * C * H * W).view({B, C, H, W});
    at::Tensor xt = torch::full({B, C, H, W}, 7.0f);
    const std::vector<ddpm::timestep_t> t{0, 17, 49};

    CHECK(ddpm::as_span(x0).data() == x0.data_ptr());
    CHECK(ddpm::as_span(x0).size() == static_cast<std::size_t>(x0.numel()));
    CHECK(ddpm::as_mutable_span(xt).data() == xt.data_ptr());

    ddpm::q_sample(schedule(), x0, eps, t, xt);
    // The same with std::vector copies of the tensors.
    const std::vector<float> x0v(x0.data_ptr<float>(), x0.data_ptr<float>() + x0.numel());
    const std::vector<float> epsv(eps.data_ptr<float>(), eps.data_ptr<float>() + eps.numel());
    std::vector<float> expected(x0v.size());
    ddpm::q_sample(schedule(), x0v, epsv, t, expected);
    const std::vector<float> got(xt.data_ptr<float>(), xt.data_ptr<float>() + xt.numel());
    CHECK(got == expected);

    SECTION("float64 through as_buffer<double>, also zero-copy") {
        const at::Tensor x0d = x0.to(torch::kDouble), epsd = eps.to(torch::kDouble);
        at::Tensor xtd = torch::empty_like(x0d);
        auto out = ddpm::as_buffer<double>(xtd, "xt");
        CHECK(out.data() == xtd.data_ptr());
        ddpm::q_sample(schedule(), ddpm::as_buffer<const double>(x0d, "x0"), ddpm::as_buffer<const double>(epsd),
                       t, out);
        CHECK(torch::allclose(xtd.to(torch::kFloat), xt, 1e-6, 1e-6));
    }
    SECTION("tensor_timesteps and as_tensor are views too") {
        const at::Tensor ts = torch::tensor(std::vector<std::int64_t>{0, 17, 49});
        const auto span = ddpm::tensor_timesteps(ts);
        CHECK(static_cast<const void*>(span.data()) == ts.data_ptr());
        CHECK(std::vector<ddpm::timestep_t>(span.begin(), span.end()) == t);
        std::vector<float> v = ramp(24);
        const at::Tensor view = ddpm::as_tensor(v, {2, 3, 4});
        CHECK(view.data_ptr() == static_cast<void*>(v.data()));
        CHECK(view.sizes() == c10::IntArrayRef({2, 3, 4}));
        CHECK_THROWS_WITH(ddpm::as_tensor(v, {5, 5}), Contains("shape = [5, 5]") && Contains("24"));
    }
}

TEST_CASE("a tensor of the wrong dtype, device or layout throws naming it", "[torch][buffer][errors]") {
    const std::vector<ddpm::timestep_t> t{3, 4};
    const at::Tensor x0 = torch::ones({2, 6});
    const at::Tensor eps = torch::ones({2, 6});
    at::Tensor out = torch::full({2, 6}, 5.0f);
    const auto untouched = [&] { return torch::equal(out, torch::full({2, 6}, 5.0f)); };

    const at::Tensor as_double = torch::ones({2, 6}, torch::kDouble);
    CHECK_THROWS_AS(ddpm::q_sample(schedule(), as_double, eps, t, out), ddpm::invalid_argument);
    CHECK_THROWS_WITH(ddpm::q_sample(schedule(), as_double, eps, t, out),
                      Contains("tensor.dtype() = Double") && Contains("Float (float32)"));
    CHECK_THROWS_WITH(ddpm::as_buffer<float>(as_double, "x0"), Contains("x0.dtype() = Double"));
    CHECK_THROWS_WITH(ddpm::as_buffer<double>(x0, "x0"), Contains("x0.dtype() = Float") && Contains("Double"));

    const at::Tensor on_meta = torch::empty({2, 6}, torch::TensorOptions().device(torch::kMeta));
    CHECK_THROWS_WITH(ddpm::q_sample(schedule(), on_meta, eps, t, out), Contains("tensor.device() = meta"));
    CHECK_THROWS_WITH(ddpm::as_buffer<const float>(on_meta, "x0"), Contains("x0.device() = meta") && Contains("cpu"));

    const at::Tensor transposed = torch::ones({6, 2}).t();
    CHECK_THROWS_WITH(ddpm::q_sample(schedule(), transposed, eps, t, out),
                      Contains("tensor.strides() = [1, 2] for sizes [2, 6]") && Contains(".contiguous()"));
    at::Tensor strided_out = torch::zeros({6, 2}).t();
    CHECK_THROWS_AS(ddpm::q_sample(schedule(), x0, eps, t, strided_out), ddpm::invalid_argument);
    CHECK(torch::equal(strided_out, torch::zeros({2, 6})));

    CHECK_THROWS_WITH(ddpm::q_sample(schedule(), at::Tensor(), eps, t, out),
                      Contains("tensor = an undefined tensor"));
    const at::Tensor sparse = torch::ones({2, 6}).to_sparse();
    CHECK_THROWS_WITH(ddpm::as_buffer<float>(sparse, "x0"), Contains("x0.layout() = Sparse"));

    // A size mismatch is ddpm's own check, as for any buffer.
    const at::Tensor short_x0 = torch::ones({2, 5});
    CHECK_THROWS_WITH(ddpm::q_sample(schedule(), short_x0, eps, t, out), Contains("size"));
    CHECK(untouched());

    CHECK_THROWS_WITH(ddpm::tensor_timesteps(torch::ones({2}, torch::kInt)), Contains("timesteps.dtype() = Int"));
    CHECK_THROWS_WITH(ddpm::tensor_timesteps(torch::ones({2, 2}, torch::kLong), "t"), Contains("t.sizes() = [2, 2]"));
}

TEST_CASE("torch_denoiser passes views of the sampler's buffers to a C++ module", "[torch][denoiser]") {
    auto module = std::make_shared<recording_module>();
    ddpm::torch_denoiser net(module, {2, 3, 4});
    const std::size_t B = 3, D = 24;
    const std::vector<float> x = ramp(B * D);
    const std::vector<ddpm::timestep_t> t{1, 20, 49};
    std::vector<float> out(B * D, -1.0f);

    net(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
    CHECK(module->x_data == static_cast<const void*>(x.data())); // zero-copy in
    CHECK(module->t_data == static_cast<const void*>(t.data()));
    CHECK(module->last_x.sizes() == c10::IntArrayRef({3, 2, 3, 4}));
    CHECK(module->last_t.scalar_type() == torch::kLong);
    CHECK_FALSE(module->last_x.requires_grad());
    // The output equals calling the module by hand.
    const at::Tensor by_hand = module->forward(torch::tensor(x).view({3, 2, 3, 4}), torch::tensor(t));
    CHECK(std::equal(out.begin(), out.end(), by_hand.data_ptr<float>()));

    SECTION("double samplers call it with double tensors") {
        const std::vector<double> xd(x.begin(), x.end());
        std::vector<double> outd(B * D);
        net(std::span<const double>(xd), std::span<const ddpm::timestep_t>(t), std::span<double>(outd));
        CHECK(module->last_x.scalar_type() == torch::kDouble);
        for (std::size_t i = 0; i < outd.size(); ++i) CHECK(outd[i] == Approx(out[i]).margin(1e-6));
    }
    SECTION("real-valued timesteps, scaled, as float32") {
        ddpm::torch_denoiser scaled(module, {2, 3, 4},
                                    {.timesteps = ddpm::torch_timestep_type::float32, .timestep_scale = 20.0});
        const std::vector<double> tc{0.25, 0.5, 0.999};
        scaled(std::span<const float>(x), std::span<const double>(tc), std::span<float>(out));
        REQUIRE(module->last_t.scalar_type() == torch::kFloat);
        CHECK(module->last_t[2].item<float>() == Approx(19.98f));
        // int64 timesteps take real values only when they are whole numbers.
        CHECK_THROWS_WITH(net(std::span<const float>(x), std::span<const double>(tc), std::span<float>(out)),
                          Contains("t = 0.25 (timestep 0)") && Contains("whole numbers"));
        const std::vector<float> whole{1.0f, 20.0f, 49.0f};
        std::vector<float> out_whole(B * D);
        net(std::span<const float>(x), std::span<const float>(whole), std::span<float>(out_whole));
        CHECK(module->last_t.scalar_type() == torch::kLong);
        CHECK(std::equal(out_whole.begin(), out_whole.end(), by_hand.data_ptr<float>()));
    }
    SECTION("the pointer call of the CUDA sampler, on the CPU, gives the same") {
        std::vector<float> out2(B * D);
        net(x.data(), t.data(), out2.data(), 3, 24, nullptr);
        CHECK(out2 == out);
        CHECK(module->x_data == static_cast<const void*>(x.data()));
        CHECK_THROWS_WITH(net(x.data(), t.data(), out2.data(), 3, 25, nullptr), Contains("D = 25"));
    }
}

TEST_CASE("torch_denoiser checks sizes and leaves out untouched on error", "[torch][denoiser][errors]") {
    auto module = std::make_shared<recording_module>();
    ddpm::torch_denoiser net(module, {2, 3, 4});
    const std::vector<float> x = ramp(48);
    const std::vector<ddpm::timestep_t> t{1, 2};
    std::vector<float> out(48, -1.0f);
    const auto call = [&](std::span<const float> xs, std::span<const ddpm::timestep_t> ts) {
        net(xs, ts, std::span<float>(out));
    };
    CHECK_THROWS_WITH(call(std::span<const float>(x).first(40), t), Contains("x_t.size() = 40") && Contains("48"));
    CHECK_THROWS_WITH(call(x, {}), Contains("t.size() = 0"));
    module->output_sizes = {2, 1, 3, 4}; // the module returns too few values
    CHECK_THROWS_WITH(call(x, t), Contains("module output sizes = [2, 1, 3, 4]") && Contains("out.size() = 48"));
    module->output_sizes = {1, 4, 3, 4}; // right count, wrong batch
    CHECK_THROWS_WITH(call(x, t), Contains("module output sizes = [1, 4, 3, 4]"));
    CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == -1.0f; }));

    // A learned variance: out holds 2·D per sample and the module 2·C channels.
    module->output_sizes = {2, 4, 3, 4};
    std::vector<float> out2(96);
    net(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out2));

    CHECK_THROWS_WITH(ddpm::torch_denoiser(module, {2, 0, 4}), Contains("sample_shape = [2, 0, 4]"));
    CHECK_THROWS_WITH(ddpm::torch_denoiser(module, {}), Contains("sample_shape"));
    CHECK_THROWS_WITH(ddpm::torch_denoiser(module, {2}, {.timestep_scale = 2.0}),
                      Contains("options.timestep_scale = 2"));
}

TEST_CASE("torch_denoiser conditions: labels per sample or broadcast", "[torch][denoiser][conditions]") {
    auto module = std::make_shared<conditioned_module>();
    const ddpm::torch_denoiser plain(module, {1, 2, 2});
    const std::vector<float> x(8, 1.0f);
    const std::vector<ddpm::timestep_t> t{0, 0};
    std::vector<float> out(8);
    const std::int64_t labels[] = {3, 5};
    auto labelled = plain.with_labels(labels);
    labelled(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
    CHECK(out[0] == Approx(1.3f));
    CHECK(out[7] == Approx(1.5f));
    const std::int64_t one[] = {2};
    auto broadcast = plain.with_labels(one);
    broadcast(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
    CHECK(out[0] == Approx(1.2f));
    CHECK(out[7] == Approx(1.2f));
    const std::int64_t three[] = {1, 2, 3};
    auto wrong = plain.with_labels(three);
    CHECK_THROWS_WITH(wrong(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out)),
                      Contains("conditions[0].sizes() = [3]") && Contains("B = 2"));
    auto too_many = plain.with_conditions({torch::ones({2}), torch::ones({2})});
    CHECK_THROWS_WITH(too_many(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out)),
                      Contains("conditions.size() = 2"));
}

TEST_CASE("torch_denoiser composes with classifier-free guidance", "[torch][denoiser][guidance]") {
    auto module = std::make_shared<conditioned_module>(); // x + label / 10
    ddpm::torch_denoiser net(module, {1, 2, 2});
    const std::vector<float> x(8, 1.0f);
    const std::vector<ddpm::timestep_t> t{4, 4};
    const std::vector<std::int64_t> labels{3, 5};
    const auto run = [&](auto& guided) {
        std::vector<float> out(8);
        guided(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
        return out;
    };
    // out_u + w (out_c − out_u) with label 0 unconditional and w = 2: x + 0.2 · label.
    ddpm::classifier_free_guidance joint(net, labels, std::int64_t{0}, 2.0);
    const auto a = run(joint);
    CHECK(a[0] == Approx(1.6f));
    CHECK(a[7] == Approx(2.0f));
    ddpm::classifier_free_guidance separate(net, labels, std::int64_t{0}, 2.0,
                                            {.batching = ddpm::guidance_batching::separate});
    CHECK(run(separate) == a);
    const std::int64_t null_label[] = {0};
    ddpm::guidance_pair pair(net.with_labels(null_label), net.with_labels(labels), 2.0);
    CHECK(run(pair) == a);
}

#ifdef DDPM_TORCH_SCRIPTED_DIR
TEST_CASE("a TorchScript module saved from Python loads, equals the module by hand, and samples",
          "[torch][torchscript]") {
    auto module = load_scripted("tiny_denoiser.pt");
    ddpm::torch_denoiser net(module, {2, 6, 5});
    const std::size_t B = 4, D = 60;
    const std::vector<float> x = ramp(B * D, 0.05f);
    const std::vector<ddpm::timestep_t> t{0, 9, 30, 49};
    std::vector<float> out(B * D);
    net(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
    torch::NoGradGuard no_grad;
    const at::Tensor by_hand = module.forward({torch::tensor(x).view({4, 2, 6, 5}), torch::tensor(t)}).toTensor();
    REQUIRE(by_hand.numel() == static_cast<std::int64_t>(out.size()));
    CHECK(std::equal(out.begin(), out.end(), by_hand.data_ptr<float>()));

    SECTION("DDIM and DDPM sampling through the wrapper run and stay finite") {
        ddpm::ddim_scheduler<float> ddim(schedule());
        ddim.set_timesteps(10);
        std::vector<float> images(B * D);
        const auto steps = ddpm::ddim_sample(ddim, net, ddpm::counter_noise(7, D), images,
                                             {.batch = B, .check_finite = true});
        CHECK(steps == 10);
        CHECK(std::all_of(images.begin(), images.end(), [](float v) { return std::isfinite(v); }));
        // Deterministic (η = 0): the same call gives the same images.
        std::vector<float> again(B * D);
        ddpm::ddim_sample(ddim, net, ddpm::counter_noise(7, D), again, {.batch = B});
        CHECK(again == images);

        ddpm::ddpm_scheduler<float> ancestral(schedule());
        at::Tensor tensor_out = torch::empty({4, 2, 6, 5});
        CHECK(ddpm::sample(ancestral, net, ddpm::counter_noise(8, D), tensor_out, {.batch = B}) == 50);
        CHECK(torch::isfinite(tensor_out).all().item<bool>());
    }
    SECTION("Euler (real-valued timesteps) through a float32-timestep wrapper") {
        ddpm::euler_scheduler<float> euler(schedule());
        euler.set_timesteps(10); // linspace: fractional timesteps
        ddpm::torch_denoiser fnet(module, {2, 6, 5}, {.timesteps = ddpm::torch_timestep_type::float32});
        std::vector<float> images(B * D);
        CHECK(ddpm::sample(euler, fnet, ddpm::counter_noise(9, D), images, {.batch = B, .check_finite = true}) == 10);
        CHECK(std::all_of(images.begin(), images.end(), [](float v) { return std::isfinite(v); }));
        // The int64 wrapper refuses fractional timesteps instead of truncating them.
        CHECK_THROWS_WITH(ddpm::sample(euler, net, ddpm::counter_noise(9, D), images, {.batch = B}),
                          Contains("whole numbers"));
    }
    SECTION("conditioned and tuple-returning modules") {
        auto conditioned = load_scripted("tiny_conditioned.pt");
        const at::Tensor labels = torch::tensor(std::vector<std::int64_t>{0, 1, 2, 1});
        auto cnet = ddpm::torch_denoiser(conditioned, {2, 6, 5}).with_conditions({labels});
        cnet(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(out));
        const at::Tensor cby_hand =
            conditioned.forward({torch::tensor(x).view({4, 2, 6, 5}), torch::tensor(t), labels}).toTensor();
        CHECK(std::equal(out.begin(), out.end(), cby_hand.data_ptr<float>()));

        ddpm::torch_denoiser tnet(load_scripted("tiny_tuple.pt"), {2, 6, 5});
        std::vector<float> tout(B * D);
        tnet(std::span<const float>(x), std::span<const ddpm::timestep_t>(t), std::span<float>(tout));
        CHECK(tout == std::vector<float>(by_hand.data_ptr<float>(), by_hand.data_ptr<float>() + by_hand.numel()));
    }
}
#endif
