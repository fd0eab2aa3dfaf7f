// examples/fashion_mnist/unet.hpp — a small U-Net ε-network in LibTorch for
// 28×28 single-channel images (Ho et al. 2020, appendix B, scaled down).
//
//   x (B, 1, 28, 28), t (B,) int64  →  ε̂ (B, 1, 28, 28)
//
//   time:  sinusoidal embedding of t (c values) → Linear(c, 4c) → SiLU → Linear(4c, 4c)
//   28×28  conv_in 1→c          enc1 = res(c→c)
//   14×14  down1 (stride-2 conv) enc2 = res(c→2c)
//    7×7   down2                 enc3 = res(2c→2c)
//          mid1 = res(2c), [attn: single-head self-attention over the 49 positions], mid2 = res(2c)
//    7×7   dec3 = res([mid, enc3] 4c→2c)
//   14×14  up2 (nearest ×2 + conv) dec2 = res([up, enc2] 4c→2c)
//   28×28  up1                    dec1 = res([up, enc1] 3c→c)
//          norm_out → SiLU → conv_out c→1 (initialised to zero: ε̂ = 0 at the start)
//
// Class-conditional variant (unet_config::classes): a class embedding
// class_emb = Embedding(11, 4c) of the label y ∈ {0..9, 10 = no label} is added
// to the time embedding. Its weights start as N(0, s²) with s =
// unet_config::class_init_std: s = 1 (the default, improved-diffusion's label
// embedding) gives every label an offset as large as the time embedding itself
// (rms 0.2–1.0 in a trained network), so the network must tell the labels apart
// from the first step; s = 0 starts at zero, so that a conditional network that
// loads an unconditional checkpoint (load_weights) computes exactly what the
// unconditional one does, for every label. (A zero start learns the labels far
// too slowly: Adam moves each weight by about the learning rate times its
// gradient's mean/std ratio, ≈ 0.2 here, so 2 000 iterations at 2e-4 left the
// largest weight at 0.03 and the samples ignored their labels.)
//
// res(a→b): GroupNorm → SiLU → conv3×3 → + Linear(SiLU(temb)) per channel →
// GroupNorm → SiLU → conv3×3, plus the input (through a 1×1 conv when a ≠ b).
// Every GroupNorm has `groups` groups (c must be a multiple of it).
//
// The module names (conv_in, time1, enc1.conv1, …) are those of the Python
// mirror in export.py, which loads this network's checkpoints.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace fmnist {

/// The network's size.
struct unet_config {
    std::int64_t channels = 32; ///< c: channels at 28×28 (2c below)
    std::int64_t groups = 8;    ///< GroupNorm groups
    bool attention = true;      ///< self-attention at 7×7
    bool classes = false;       ///< class embedding: forward(x, t, labels)
    double class_init_std = 1;  ///< the class embedding starts as N(0, class_init_std²); 0: zeros
};

/// Classes of Fashion-MNIST; the label `null_label` means "no label" (the
/// unconditional model of classifier-free guidance).
inline constexpr std::int64_t num_classes = 10;
inline constexpr std::int64_t null_label = num_classes;

/// Transformer-style sinusoidal embedding of the timesteps: (B,) → (B, dim),
/// [cos(t ω_k), sin(t ω_k)] with ω_k = 10000^(−k/(dim/2)).
inline at::Tensor timestep_embedding(const at::Tensor& t, std::int64_t dim) {
    const std::int64_t half = dim / 2;
    const auto freqs =
        torch::exp(-std::log(10000.0) * torch::arange(half, t.options().dtype(torch::kFloat)) / static_cast<double>(half));
    const auto args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
    return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

struct ResBlockImpl : torch::nn::Module {
    ResBlockImpl(std::int64_t in, std::int64_t out, std::int64_t temb, std::int64_t groups)
        : norm1(register_module("norm1", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, in)))),
          conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)))),
          time(register_module("time", torch::nn::Linear(temb, out))),
          norm2(register_module("norm2", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, out)))),
          conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1)))) {
        if (in != out) skip = register_module("skip", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
    }

    at::Tensor forward(const at::Tensor& x, const at::Tensor& emb) {
        auto h = conv1(torch::silu(norm1(x)));
        h = h + time(torch::silu(emb)).unsqueeze(-1).unsqueeze(-1);
        h = conv2(torch::silu(norm2(h)));
        return (skip ? skip(x) : x) + h;
    }

    torch::nn::GroupNorm norm1;
    torch::nn::Conv2d conv1;
    torch::nn::Linear time;
    torch::nn::GroupNorm norm2;
    torch::nn::Conv2d conv2;
    torch::nn::Conv2d skip{nullptr};
};
TORCH_MODULE(ResBlock);

/// Single-head self-attention over the H·W positions, with a residual.
struct AttentionImpl : torch::nn::Module {
    AttentionImpl(std::int64_t channels, std::int64_t groups)
        : norm(register_module("norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels)))),
          qkv(register_module("qkv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 3 * channels, 1)))),
          proj(register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 1)))) {}

    at::Tensor forward(const at::Tensor& x) {
        const auto B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
        const auto parts = qkv(norm(x)).reshape({B, 3, C, H * W}).unbind(1); // q, k, v: (B, C, HW)
        const auto weights = torch::softmax(torch::bmm(parts[0].transpose(1, 2), parts[1]) / std::sqrt(double(C)), -1);
        const auto h = torch::bmm(parts[2], weights.transpose(1, 2)).reshape({B, C, H, W});
        return x + proj(h);
    }

    torch::nn::GroupNorm norm;
    torch::nn::Conv2d qkv, proj;
};
TORCH_MODULE(Attention);

struct UNetImpl : torch::nn::Module {
    explicit UNetImpl(const unet_config& config) : cfg(config) {
        const auto c = cfg.channels, g = cfg.groups, temb = 4 * c;
        if (c <= 0 || g <= 0 || c % g != 0)
            throw std::invalid_argument("fmnist::UNet: channels = " + std::to_string(c) +
                                        "; expected a positive multiple of groups = " + std::to_string(g));
        if (!(cfg.class_init_std >= 0) || !std::isfinite(cfg.class_init_std))
            throw std::invalid_argument("fmnist::UNet: class_init_std = " + std::to_string(cfg.class_init_std) +
                                        "; expected a finite value >= 0");
        const auto conv = [](std::int64_t in, std::int64_t out, std::int64_t stride = 1) {
            return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
        };
        conv_in = register_module("conv_in", conv(1, c));
        time1 = register_module("time1", torch::nn::Linear(c, temb));
        time2 = register_module("time2", torch::nn::Linear(temb, temb));
        enc1 = register_module("enc1", ResBlock(c, c, temb, g));
        down1 = register_module("down1", conv(c, c, 2));
        enc2 = register_module("enc2", ResBlock(c, 2 * c, temb, g));
        down2 = register_module("down2", conv(2 * c, 2 * c, 2));
        enc3 = register_module("enc3", ResBlock(2 * c, 2 * c, temb, g));
        mid1 = register_module("mid1", ResBlock(2 * c, 2 * c, temb, g));
        if (cfg.attention) attn = register_module("attn", Attention(2 * c, g));
        mid2 = register_module("mid2", ResBlock(2 * c, 2 * c, temb, g));
        dec3 = register_module("dec3", ResBlock(4 * c, 2 * c, temb, g));
        up2 = register_module("up2", conv(2 * c, 2 * c));
        dec2 = register_module("dec2", ResBlock(4 * c, 2 * c, temb, g));
        up1 = register_module("up1", conv(2 * c, 2 * c));
        dec1 = register_module("dec1", ResBlock(3 * c, c, temb, g));
        norm_out = register_module("norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(g, c)));
        conv_out = register_module("conv_out", conv(c, 1));
        if (cfg.classes) class_emb = register_module("class_emb", torch::nn::Embedding(num_classes + 1, temb));
        torch::NoGradGuard no_grad;
        conv_out->weight.zero_();
        conv_out->bias.zero_();
        if (class_emb && cfg.class_init_std > 0) class_emb->weight.normal_(0, cfg.class_init_std);
        else if (class_emb) class_emb->weight.zero_();
    }

    /// ε̂(x_t, t): x (B, 1, 28, 28), t (B,) 0-based timesteps (int64 or float).
    /// A conditional network takes it as the null label's (the unconditional
    /// model of classifier-free guidance).
    at::Tensor forward(const at::Tensor& x, const at::Tensor& t) {
        if (class_emb) return body(x, time_embedding(t) + class_emb->weight[null_label]);
        return body(x, time_embedding(t));
    }

    /// ε̂(x_t, t, y): labels (B,) or (1,) int64 in 0..10 (10 = no label).
    /// @throws std::invalid_argument when the network has no class embedding
    ///         or a label is outside 0..10.
    at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& labels) {
        if (!class_emb) throw std::invalid_argument("fmnist::UNet: labels given to a network without --classes");
        if (labels.numel() > 0 && (labels.min().item<std::int64_t>() < 0 || labels.max().item<std::int64_t>() > null_label))
            throw std::invalid_argument("fmnist::UNet: labels in [" + std::to_string(labels.min().item<std::int64_t>()) +
                                        ", " + std::to_string(labels.max().item<std::int64_t>()) +
                                        "]; expected 0..9, or 10 for no label");
        return body(x, time_embedding(t) + class_emb(labels.to(torch::kLong)));
    }

    at::Tensor time_embedding(const at::Tensor& t) {
        return time2(torch::silu(time1(timestep_embedding(t, cfg.channels))));
    }

    at::Tensor body(const at::Tensor& x, const at::Tensor& emb) {
        const auto upsample = [](const at::Tensor& h) {
            return torch::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)});
        };
        const auto h1 = enc1(conv_in(x), emb);
        const auto h2 = enc2(down1(h1), emb);
        const auto h3 = enc3(down2(h2), emb);
        auto h = mid1(h3, emb);
        if (attn) h = attn(h);
        h = mid2(h, emb);
        h = dec3(torch::cat({h, h3}, 1), emb);
        h = dec2(torch::cat({up2(upsample(h)), h2}, 1), emb);
        h = dec1(torch::cat({up1(upsample(h)), h1}, 1), emb);
        return conv_out(torch::silu(norm_out(h)));
    }

    unet_config cfg;
    torch::nn::Conv2d conv_in{nullptr}, down1{nullptr}, down2{nullptr}, up2{nullptr}, up1{nullptr}, conv_out{nullptr};
    torch::nn::Linear time1{nullptr}, time2{nullptr};
    ResBlock enc1{nullptr}, enc2{nullptr}, enc3{nullptr}, mid1{nullptr}, mid2{nullptr}, dec3{nullptr}, dec2{nullptr},
        dec1{nullptr};
    Attention attn{nullptr};
    torch::nn::GroupNorm norm_out{nullptr};
    torch::nn::Embedding class_emb{nullptr};
};
TORCH_MODULE(UNet);

/// Loads a checkpoint file (model.pt or ema.pt) into `net`. A conditional
/// network also takes an unconditional checkpoint: every other parameter is
/// loaded and the class embedding keeps its values (its initial N(0, s²)
/// draw, or zeros with class_init_std = 0).
inline void load_weights(UNet& net, const std::string& path) {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::serialize::InputArchive class_archive; // Module::save nests each submodule in an archive of its own
    if (net->class_emb && !archive.try_read("class_emb", class_archive)) {
        unet_config plain = net->cfg;
        plain.classes = false;
        UNet unconditional(plain);
        unconditional->load(archive);
        torch::NoGradGuard no_grad;
        const auto from = unconditional->named_parameters();
        for (auto& p : net->named_parameters())
            if (p.key() != "class_emb.weight") p.value().copy_(from[p.key()]);
        return;
    }
    net->load(archive);
}

} // namespace fmnist
