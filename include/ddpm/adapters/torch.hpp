// ddpm/adapters/torch.hpp — LibTorch tensors as ddpm buffers, and LibTorch
// modules (C++ torch::nn modules and TorchScript) as ddpm denoisers.
//
//   #include <ddpm/adapters/torch.hpp>   // not part of <ddpm/ddpm.hpp>; needs LibTorch ≥ 1.13
//
// ## Tensors as buffers (zero-copy)
//
// After this include an `at::Tensor` (= torch::Tensor) of dtype float32 is a
// ddpm input_buffer, and an output_buffer when passed as a non-const lvalue:
//
//   torch::Tensor x0 = torch::randn({B, C, H, W}), eps = torch::randn({B, C, H, W});
//   torch::Tensor xt = torch::empty_like(x0);
//   ddpm::q_sample(schedule, x0, eps, t, xt);         // reads/writes the tensors' memory directly
//
// A tensor's element type is only known at run time, so the bare at::Tensor
// is the float buffer (LibTorch's default dtype). For float64, or to make the
// element type explicit, wrap it: `ddpm::as_buffer<double>(tensor, "name")`
// (a ddpm::tensor_buffer<T>, a view like std::span). `ddpm::as_buffer<const
// float>(…)` is a read-only view.
//
// Every view is checked when ddpm takes it (the bare tensor) or when the
// tensor_buffer is made, before anything is written; a failed check throws
// ddpm::invalid_argument naming the parameter:
//   - defined, strided (dense) layout, not a lazily negated view (is_neg);
//   - dtype: float32 for float, float64 for double (no silent conversion:
//     convert with .to(torch::kFloat) first);
//   - device: CPU (ddpm's CPU functions read the memory through the pointer;
//     use .cpu(), or the CUDA route in docs/torch.md);
//   - contiguous (row-major, C order): call .contiguous() first. Then the
//     first axis is the batch and each sample is the rest flattened in C
//     order, which is exactly ddpm's batch-first layout (B × D, D = C·H·W).
// The view is the tensor's own data_ptr(): nothing is copied, and writes go
// straight into the tensor. ddpm's functions do not record autograd history:
// pass tensors that do not require grad (or detach them) when the values
// matter to autograd.
//
// `ddpm::tensor_timesteps(t)` views an int64 CPU tensor as the timesteps span
// ddpm takes, and `ddpm::as_tensor(buffer, shape)` goes the other way: a
// non-owning tensor over a ddpm buffer (torch::from_blob).
//
// ## Modules as denoisers
//
// `ddpm::torch_denoiser` wraps a LibTorch network as a ddpm::denoiser for
// samples of a given shape (C, H, W):
//   - a C++ module: a std::shared_ptr<M> or torch::nn::ModuleHolder (the
//     TORCH_MODULE wrapper) whose forward(x, t) — or forward(x, t, c) with one
//     conditioning tensor — returns the prediction;
//   - a TorchScript module (torch::jit::load of a file saved with
//     torch.jit.script / torch.jit.trace in Python), called with (x, t,
//     conditions...); a tuple output (diffusers' return_dict=False) gives its
//     first element.
// Per call it makes x a (B, C, H, W) tensor over the sampler's span (no copy),
// the timesteps a (B,) tensor (int64 over the span, or float32/float64 when
// the network takes real-valued timesteps, optionally scaled; it is both a
// ddpm::denoiser and a ddpm::continuous_denoiser), calls the
// module under torch::NoGradGuard, checks the output's shape (B samples,
// out.size() values: 2·C channels for a learned variance) and copies it into
// `out` once (converting dtype/device if the module's differ).
//
//   torch::jit::Module unet = torch::jit::load("unet.pt");
//   unet.eval();
//   ddpm::torch_denoiser net(unet, {1, 28, 28});
//   ddpm::ddim_sample(ddim, net, ddpm::counter_noise(seed, 28 * 28), images, {.batch = 16});
//
// Conditioning (class labels, text embeddings) travels as extra forward
// arguments, batch-first: `net.with_conditions({labels})` gives a wrapper of
// the same module that passes them; a condition with first extent 1 is
// broadcast to the batch. The call net(x_t, t, std::span<const std::int64_t>
// labels, out) passes per-sample labels first: it is the network
// ddpm::classifier_free_guidance (ddpm/guidance.hpp) takes.
//
// The same object is also a network for the CUDA sampler (ddpm/cuda.cuh):
// net(x_t, t_device, out, B, D, stream) over device pointers, with
// options.device = torch::kCUDA; see docs/torch.md for the stream rules.
#pragma once

#include "ddpm/buffer.hpp"
#include "ddpm/error.hpp"

#include <torch/script.h>

#if defined(DDPM_TORCH_CUDA) && DDPM_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>
#endif

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddpm {

namespace detail::torch_adapter {

template <class T>
[[nodiscard]] constexpr c10::ScalarType scalar_type_of() noexcept {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "ddpm: T must be float or double");
    if constexpr (std::is_same_v<T, float>) return c10::ScalarType::Float;
    else return c10::ScalarType::Double;
}

/// "[2, 3, 4]" for sizes or strides.
[[nodiscard]] inline std::string format_extents(c10::IntArrayRef extents) {
    std::ostringstream os;
    os << '[';
    for (std::size_t i = 0; i < extents.size(); ++i) os << (i ? ", " : "") << extents[i];
    os << ']';
    return os.str();
}

[[nodiscard]] inline std::string with_suffix(std::string_view name, std::string_view suffix) {
    std::string s(name);
    s += suffix;
    return s;
}

/// Throws unless `t` can be viewed as a contiguous CPU buffer of T (see the
/// top of this file).
template <class T>
void check_tensor(std::string_view where, std::string_view name, const at::Tensor& t) {
    if (!t.defined()) throw_invalid(where, name, "an undefined tensor", "a defined tensor");
    if (t.layout() != c10::kStrided) {
        std::ostringstream value;
        value << t.layout();
        throw_invalid(where, with_suffix(name, ".layout()"), value.str(),
                      "Strided (a dense tensor): call .to_dense() first");
    }
    constexpr auto want = scalar_type_of<T>();
    if (t.scalar_type() != want) {
        std::string expected = c10::toString(want);
        expected += std::is_same_v<T, float> ? " (float32) for a float buffer" : " (float64) for a double buffer";
        expected += "; convert with .to(torch::k";
        expected += c10::toString(want);
        expected += ") or view it as ddpm::as_buffer<";
        expected += std::is_same_v<T, float> ? "double" : "float";
        expected += "> when that is the sampler's type";
        throw_invalid(where, with_suffix(name, ".dtype()"), c10::toString(t.scalar_type()), expected);
    }
    if (!t.device().is_cpu())
        throw_invalid(where, with_suffix(name, ".device()"), t.device().str(),
                      "cpu (ddpm's CPU functions read the memory directly): copy it with .cpu(), or use the CUDA "
                      "sampler with device pointers (docs/torch.md)");
    if (t.is_neg())
        throw_invalid(where, with_suffix(name, ".is_neg()"), "true (a lazily negated view)",
                      "a resolved tensor: call .resolve_neg() first");
    if (!t.is_contiguous()) {
        std::string value = format_extents(t.strides());
        value += " for sizes ";
        value += format_extents(t.sizes());
        throw_invalid(where, with_suffix(name, ".strides()"), value,
                      "contiguous (row-major, batch-first) storage: call .contiguous() first");
    }
}

/// A module pointer whose forward also takes one conditioning tensor.
template <class Ptr>
concept forward_with_condition = requires(Ptr& p, const at::Tensor& a) {
    { p->forward(a, a, a) } -> std::convertible_to<at::Tensor>;
};

/// The value pointer of a checked tensor (nullptr for an empty one is fine).
template <class T>
[[nodiscard]] T* data_of(const at::Tensor& t) noexcept {
    return static_cast<T*>(t.data_ptr());
}

} // namespace detail::torch_adapter

/// @brief A checked, zero-copy view of a tensor as a ddpm buffer of T (float
/// or double; `const T` for a read-only view). Like std::span it does not own
/// the memory — it holds the tensor handle, so the storage stays alive.
template <class T>
    requires std::floating_point<std::remove_const_t<T>>
class tensor_buffer {
public:
    using value_type = std::remove_const_t<T>;

    /// @throws ddpm::invalid_argument naming `name` when the tensor is not a
    ///         defined, dense, contiguous CPU tensor of value_type.
    explicit tensor_buffer(at::Tensor tensor, std::string_view name = "tensor") : m_tensor(std::move(tensor)) {
        detail::torch_adapter::check_tensor<value_type>("ddpm::tensor_buffer", name, m_tensor);
    }

    [[nodiscard]] T* data() const noexcept { return detail::torch_adapter::data_of<value_type>(m_tensor); }
    [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(m_tensor.numel()); }
    [[nodiscard]] std::span<T> span() const noexcept { return {data(), size()}; }
    [[nodiscard]] const at::Tensor& tensor() const noexcept { return m_tensor; }

private:
    at::Tensor m_tensor;
};

/// @brief Views `tensor` as a ddpm buffer of T without copying (see
/// tensor_buffer): `ddpm::as_buffer<double>(t, "x0")`.
template <class T>
    requires std::floating_point<std::remove_const_t<T>>
[[nodiscard]] tensor_buffer<T> as_buffer(at::Tensor tensor, std::string_view name = "tensor") {
    return tensor_buffer<T>(std::move(tensor), name);
}

/// buffer_traits for tensor_buffer: checked at construction, noexcept here.
template <class T>
struct buffer_traits<tensor_buffer<T>> {
    using value_type = std::remove_const_t<T>;
    static constexpr bool writable = !std::is_const_v<T>;
    static T* data(tensor_buffer<T>& b) noexcept { return b.data(); }
    static std::size_t size(tensor_buffer<T>& b) noexcept { return b.size(); }
};

/// buffer_traits for a bare at::Tensor: a float32 buffer, checked each time
/// ddpm views it (so data()/size() may throw; see the top of this file).
template <>
struct buffer_traits<at::Tensor> {
    using value_type = float;
    static constexpr bool writable = true;
    static float* data(at::Tensor& t) {
        detail::torch_adapter::check_tensor<float>("ddpm (LibTorch adapter)", "tensor", t);
        return detail::torch_adapter::data_of<float>(t);
    }
    static std::size_t size(at::Tensor& t) {
        detail::torch_adapter::check_tensor<float>("ddpm (LibTorch adapter)", "tensor", t);
        return static_cast<std::size_t>(t.numel());
    }
};

/// @brief Views an int64 CPU tensor of B timesteps (0-d or 1-d, contiguous)
/// as the std::span<const ddpm::timestep_t> ddpm takes, without copying.
/// @throws ddpm::invalid_argument naming `name` otherwise.
[[nodiscard]] inline std::span<const timestep_t> tensor_timesteps(const at::Tensor& t,
                                                                  std::string_view name = "timesteps") {
    constexpr std::string_view where = "ddpm::tensor_timesteps";
    static_assert(sizeof(timestep_t) == sizeof(std::int64_t));
    if (!t.defined()) detail::throw_invalid(where, name, "an undefined tensor", "a defined tensor");
    if (t.scalar_type() != c10::ScalarType::Long)
        detail::throw_invalid(where, detail::torch_adapter::with_suffix(name, ".dtype()"),
                              c10::toString(t.scalar_type()), "Long (int64): convert with .to(torch::kLong)");
    if (!t.device().is_cpu())
        detail::throw_invalid(where, detail::torch_adapter::with_suffix(name, ".device()"), t.device().str(),
                              "cpu: copy it with .cpu()");
    if (t.dim() > 1)
        detail::throw_invalid(where, detail::torch_adapter::with_suffix(name, ".sizes()"),
                              detail::torch_adapter::format_extents(t.sizes()), "0 or 1 dimensions (B,)");
    if (t.layout() != c10::kStrided || !t.is_contiguous() || t.is_neg())
        detail::throw_invalid(where, name, "a non-contiguous or non-dense tensor", "contiguous: call .contiguous()");
    return {static_cast<const timestep_t*>(t.data_ptr()), static_cast<std::size_t>(t.numel())};
}

/// @brief A tensor of the given shape over a ddpm buffer, without copying
/// (torch::from_blob: the tensor does not own the memory, which must outlive
/// it). Read-only buffers give a tensor that must not be written.
/// @param[in] b     a buffer (std::vector, std::span, …): an lvalue, or a span.
/// @param[in] shape e.g. {B, C, H, W}.
/// @throws ddpm::invalid_argument unless the shape's product is the size.
template <class B>
    requires input_buffer<B>
[[nodiscard]] at::Tensor as_tensor(B&& b, c10::IntArrayRef shape) {
    static_assert(std::is_lvalue_reference_v<B> || std::ranges::borrowed_range<std::remove_cvref_t<B>> ||
                      std::is_same_v<std::remove_cvref_t<B>, at::Tensor>,
                  "ddpm::as_tensor: the buffer must outlive the tensor; pass an lvalue or a std::span");
    using T = detail::value_of<B>;
    const auto view = as_span(b);
    std::int64_t product = 1;
    bool negative = false;
    for (const auto e : shape) {
        negative = negative || e < 0;
        product *= e;
    }
    if (negative || static_cast<std::size_t>(product) != view.size()) {
        std::ostringstream expected;
        expected << "non-negative extents whose product is the buffer's size " << view.size();
        detail::throw_invalid("ddpm::as_tensor", "shape", detail::torch_adapter::format_extents(shape),
                              expected.str());
    }
    return torch::from_blob(const_cast<T*>(view.data()), shape,
                            at::TensorOptions().dtype(detail::torch_adapter::scalar_type_of<T>()));
}

/// How torch_denoiser passes the timesteps to the module.
enum class torch_timestep_type {
    int64,   ///< int64 tensor over the sampler's timesteps (no copy); integer timesteps only
    float32, ///< float32 tensor of t · timestep_scale (for real-valued timesteps, or rescaled ones)
    float64, ///< float64 tensor of t · timestep_scale
};

/// Options of torch_denoiser.
struct torch_denoiser_options {
    /// dtype of the timestep tensor the module expects.
    torch_timestep_type timesteps = torch_timestep_type::int64;
    /// Factor applied to t before the call (float timesteps only), e.g.
    /// 1000/T for improved-diffusion's rescale_timesteps.
    double timestep_scale = 1.0;
    /// Where the module's parameters live. With kCPU the sampler's spans are
    /// wrapped as they are. With a CUDA device the span call copies x_t and t
    /// to it and the output back (a CPU sampler driving a GPU network), and
    /// the pointer call (the CUDA sampler) wraps the device pointers.
    c10::Device device = c10::kCPU;
    /// The module also outputs a variance (2·C channels): the pointer call
    /// then expects B·2D output values. (The span call reads out.size().)
    bool learned_variance = false;
};

/// @brief A LibTorch module as a ddpm::denoiser (see the top of this file).
///
/// Copies share the module (both LibTorch module handles are shared). The
/// wrapper does not change the module's mode: call eval() on it first when it
/// has dropout or batch norm.
class torch_denoiser {
public:
    /// Extra forward arguments after (x, t), batch-first.
    using conditions = std::vector<at::Tensor>;

    /// Wraps a TorchScript module, called as forward(x, t, conditions...).
    /// @param sample_shape one sample's shape without the batch, e.g. {C, H, W}.
    /// @throws ddpm::invalid_argument on an empty shape or a non-positive extent.
    torch_denoiser(torch::jit::Module module, std::vector<std::int64_t> sample_shape,
                   torch_denoiser_options options = {})
        : m_shape(check_shape(std::move(sample_shape))), m_options(check_options(options)) {
        m_forward = [module = std::move(module)](const at::Tensor& x, const at::Tensor& t,
                                                 const conditions& c) mutable -> at::Tensor {
            std::vector<c10::IValue> args{x, t};
            for (const auto& ci : c) args.emplace_back(ci);
            return output_tensor(module.forward(std::move(args)));
        };
    }

    /// Wraps a C++ module held by `ptr` (std::shared_ptr<M> or a TORCH_MODULE
    /// holder) whose forward(x, t) — and, for one condition, forward(x, t, c)
    /// — returns a tensor.
    template <class Ptr>
        requires requires(Ptr p, at::Tensor x) {
            { p->forward(x, x) } -> std::convertible_to<at::Tensor>;
        }
    torch_denoiser(Ptr ptr, std::vector<std::int64_t> sample_shape, torch_denoiser_options options = {})
        : m_shape(check_shape(std::move(sample_shape))), m_options(check_options(options)) {
        m_forward = [ptr = std::move(ptr)](const at::Tensor& x, const at::Tensor& t,
                                           const conditions& c) mutable -> at::Tensor {
            if (c.empty()) return ptr->forward(x, t);
            if constexpr (detail::torch_adapter::forward_with_condition<Ptr>) {
                if (c.size() == 1) return ptr->forward(x, t, c[0]);
            }
            detail::throw_invalid("ddpm::torch_denoiser", "conditions.size()", c.size(),
                                  "0, or 1 for a module with forward(x, t, c) (use TorchScript for more)");
        };
    }

    /// A wrapper of the same module that passes `c` after (x, t): each tensor
    /// has B rows (or 1, broadcast to the batch) and lives on options.device.
    [[nodiscard]] torch_denoiser with_conditions(conditions c) const {
        torch_denoiser copy = *this;
        copy.m_conditions = std::move(c);
        return copy;
    }

    /// with_conditions({labels}) for integer class labels (one per sample, or
    /// one for the whole batch).
    [[nodiscard]] torch_denoiser with_labels(std::span<const std::int64_t> labels) const {
        auto t = torch::tensor(c10::ArrayRef<std::int64_t>(labels.data(), labels.size()), torch::kLong);
        return with_conditions({t.to(m_options.device)});
    }

    [[nodiscard]] const std::vector<std::int64_t>& sample_shape() const noexcept { return m_shape; }
    [[nodiscard]] const torch_denoiser_options& options() const noexcept { return m_options; }
    [[nodiscard]] const conditions& condition_tensors() const noexcept { return m_conditions; }
    /// Values per sample: the product of sample_shape().
    [[nodiscard]] std::size_t sample_size() const noexcept {
        std::size_t d = 1;
        for (const auto e : m_shape) d *= static_cast<std::size_t>(e);
        return d;
    }

    /// The ddpm::denoiser call: x_t (B·D), t (B timesteps: integers, or real
    /// values when the sampler has continuous time), out (B·D, or B·2D for a
    /// learned variance). `out` is written only after every check passed.
    template <std::floating_point T, class Ts>
        requires(std::same_as<Ts, timestep_t> || std::same_as<Ts, float> || std::same_as<Ts, double>)
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<T> out) {
        run_spans(x, t, nullptr, 0, out);
    }

    /// The call with one integer label per sample (or one for all), passed
    /// to the module as an int64 (B,) tensor before the wrapper's own
    /// conditions: forward(x, t, labels, conditions...). This is the network
    /// signature ddpm::classifier_free_guidance takes (Cond = std::int64_t),
    /// so guidance runs the unconditional and conditional halves in one
    /// module call of 2B samples.
    template <std::floating_point T, class Ts>
        requires(std::same_as<Ts, timestep_t> || std::same_as<Ts, float> || std::same_as<Ts, double>)
    void operator()(std::span<const T> x, std::span<const Ts> t, std::span<const std::int64_t> labels,
                    std::span<T> out) {
        if (labels.empty())
            detail::throw_invalid("ddpm::torch_denoiser", "labels.size()", 0, "B, or 1 for the whole batch");
        run_spans(x, t, labels.data(), labels.size(), out);
    }

    /// The CUDA sampler's network call (ddpm/cuda/sampler.cuh): x_t, t and
    /// out are pointers on options.device (host pointers when it is the CPU),
    /// B samples of D values; the module runs on the current torch stream,
    /// which must be `stream` (docs/torch.md). Built with DDPM_TORCH_CUDA=1
    /// (PyTorch's CUDA LibTorch) the call makes `stream` current for the
    /// module instead.
    template <std::floating_point T, class Stream>
    void operator()(const T* x, const timestep_t* t, T* out, int B, int D, Stream stream) {
        constexpr std::string_view where = "ddpm::torch_denoiser (device pointers)";
        if (B <= 0) detail::throw_invalid(where, "B", B, ">= 1");
        if (D <= 0 || static_cast<std::size_t>(D) != sample_size())
            detail::throw_invalid(where, "D", D, "the product of sample_shape = " + std::to_string(sample_size()));
        const auto batch = static_cast<std::size_t>(B);
#if defined(DDPM_TORCH_CUDA) && DDPM_TORCH_CUDA
        std::optional<c10::cuda::CUDAStreamGuard> guard;
        if (m_options.device.is_cuda())
            guard.emplace(c10::cuda::getStreamFromExternal(stream, m_options.device.index()));
#else
        static_cast<void>(stream);
#endif
        const auto on_device = at::TensorOptions().dtype(detail::torch_adapter::scalar_type_of<T>()).device(m_options.device);
        torch::NoGradGuard no_grad;
        const at::Tensor xs = torch::from_blob(const_cast<T*>(x), batch_shape(batch), on_device);
        const at::Tensor ts = timestep_tensor(where, t, batch, m_options.device);
        const std::size_t out_size = batch * sample_size() * (m_options.learned_variance ? 2 : 1);
        const at::Tensor result = call(where, xs, ts, m_conditions, batch, out_size);
        torch::from_blob(out, result.sizes(), on_device).copy_(result);
    }

private:
    /// The span calls: `labels` (n_labels of them, or nullptr) go first
    /// among the conditions.
    template <std::floating_point T, class Ts>
    void run_spans(std::span<const T> x, std::span<const Ts> t, const std::int64_t* labels, std::size_t n_labels,
                   std::span<T> out) {
        constexpr std::string_view where = "ddpm::torch_denoiser";
        const std::size_t batch = t.size();
        check_sizes(where, x.size(), batch);
        const auto cpu = at::TensorOptions().dtype(detail::torch_adapter::scalar_type_of<T>());
        torch::NoGradGuard no_grad;
        at::Tensor xs = torch::from_blob(const_cast<T*>(x.data()), batch_shape(batch), cpu);
        at::Tensor ts = timestep_tensor(where, t.data(), batch, c10::kCPU);
        conditions c;
        if (labels != nullptr)
            c.push_back(torch::from_blob(const_cast<std::int64_t*>(labels), {static_cast<std::int64_t>(n_labels)},
                                         at::TensorOptions().dtype(c10::ScalarType::Long)));
        if (!m_options.device.is_cpu()) {
            xs = xs.to(m_options.device);
            ts = ts.to(m_options.device);
            for (auto& ci : c) ci = ci.to(m_options.device);
        }
        c.insert(c.end(), m_conditions.begin(), m_conditions.end());
        const at::Tensor result = call(where, xs, ts, c, batch, out.size());
        torch::from_blob(out.data(), result.sizes(), cpu).copy_(result);
    }

    using forward_fn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const conditions&)>;

    static std::vector<std::int64_t> check_shape(std::vector<std::int64_t> shape) {
        constexpr std::string_view where = "ddpm::torch_denoiser";
        if (shape.empty())
            detail::throw_invalid(where, "sample_shape", "[]", "one sample's shape without the batch, e.g. {C, H, W}");
        for (const auto e : shape)
            if (e <= 0)
                detail::throw_invalid(where, "sample_shape", detail::torch_adapter::format_extents(shape),
                                      "positive extents, e.g. {C, H, W}");
        return shape;
    }

    static torch_denoiser_options check_options(const torch_denoiser_options& o) {
        if (o.timesteps == torch_timestep_type::int64 && o.timestep_scale != 1.0)
            detail::throw_invalid("ddpm::torch_denoiser", "options.timestep_scale", o.timestep_scale,
                                  "1 with int64 timesteps (a scale needs torch_timestep_type::float32 or float64)");
        return o;
    }

    /// The network's prediction as a tensor: a tensor, or the first element
    /// of a tuple/list (diffusers' return_dict=False).
    static at::Tensor output_tensor(const c10::IValue& v) {
        if (v.isTensor()) return v.toTensor();
        if (v.isTuple() && !v.toTupleRef().elements().empty() && v.toTupleRef().elements()[0].isTensor())
            return v.toTupleRef().elements()[0].toTensor();
        if (v.isTensorList() && v.toTensorList().size() > 0) return v.toTensorList().get(0);
        detail::throw_invalid("ddpm::torch_denoiser", "module output type", v.tagKind(),
                              "a Tensor, or a tuple whose first element is a Tensor");
    }

    void check_sizes(std::string_view where, std::size_t x_size, std::size_t batch) const {
        if (batch == 0) detail::throw_invalid(where, "t.size()", 0, ">= 1 (one timestep per sample)");
        detail::check_size(where, "x_t", x_size, batch * sample_size(), "elements (B x the product of sample_shape)");
    }

    [[nodiscard]] std::vector<std::int64_t> batch_shape(std::size_t batch) const {
        std::vector<std::int64_t> s;
        s.reserve(m_shape.size() + 1);
        s.push_back(static_cast<std::int64_t>(batch));
        s.insert(s.end(), m_shape.begin(), m_shape.end());
        return s;
    }

    template <class Ts>
    [[nodiscard]] static constexpr c10::ScalarType scalar_of() noexcept {
        if constexpr (std::is_same_v<Ts, float>) return c10::ScalarType::Float;
        else if constexpr (std::is_same_v<Ts, double>) return c10::ScalarType::Double;
        else return c10::ScalarType::Long;
    }

    /// (B,) timesteps as the module expects them; `t` lives on `device`.
    template <class Ts>
    [[nodiscard]] at::Tensor timestep_tensor(std::string_view where, const Ts* t, std::size_t batch,
                                             c10::Device device) const {
        const auto n = static_cast<std::int64_t>(batch);
        const auto on = at::TensorOptions().device(device);
        if (m_options.timesteps == torch_timestep_type::int64) {
            if constexpr (std::floating_point<Ts>) {
                // Real-valued timesteps reach an int64 network only when they
                // are whole numbers (never a silent truncation).
                at::Tensor real = torch::from_blob(const_cast<Ts*>(t), {n}, on.dtype(scalar_of<Ts>()));
                const at::Tensor whole = real.to(c10::ScalarType::Long);
                if (!torch::equal(whole.to(real.scalar_type()), real)) {
                    const auto bad = (whole.to(real.scalar_type()) != real).nonzero()[0][0].item<std::int64_t>();
                    std::ostringstream value;
                    value.precision(17);
                    value << real[bad].item<double>() << " (timestep " << bad << ")";
                    detail::throw_invalid(where, "t", value.str(),
                                          "whole numbers for options.timesteps = int64: use "
                                          "torch_timestep_type::float32/float64 for a network that takes real "
                                          "timesteps, or ddpm::round_timesteps");
                }
                return whole;
            } else {
                return torch::from_blob(const_cast<timestep_t*>(t), {n}, on.dtype(c10::ScalarType::Long));
            }
        }
        at::Tensor ts = torch::from_blob(const_cast<Ts*>(t), {n}, on.dtype(scalar_of<Ts>()));
        ts = ts.to(m_options.timesteps == torch_timestep_type::float32 ? c10::ScalarType::Float
                                                                       : c10::ScalarType::Double);
        if (m_options.timestep_scale != 1.0) ts = ts * m_options.timestep_scale;
        return ts;
    }

    /// Runs the module and checks its output: B samples, `out_size` values.
    at::Tensor call(std::string_view where, const at::Tensor& x, const at::Tensor& t, const conditions& given,
                    std::size_t batch, std::size_t out_size) const {
        conditions c;
        c.reserve(given.size());
        for (std::size_t i = 0; i < given.size(); ++i) {
            const at::Tensor& ci = given[i];
            const std::string name = "conditions[" + std::to_string(i) + "]";
            if (!ci.defined()) detail::throw_invalid(where, name, "an undefined tensor", "a defined tensor");
            if (ci.dim() == 0 || (ci.size(0) != static_cast<std::int64_t>(batch) && ci.size(0) != 1))
                detail::throw_invalid(where, name + ".sizes()", detail::torch_adapter::format_extents(ci.sizes()),
                                      "first extent B = " + std::to_string(batch) + " (or 1, broadcast)");
            if (ci.size(0) == 1 && batch != 1) {
                std::vector<std::int64_t> sizes(ci.sizes().begin(), ci.sizes().end());
                sizes[0] = static_cast<std::int64_t>(batch);
                c.push_back(ci.expand(sizes));
            } else {
                c.push_back(ci);
            }
        }
        at::Tensor result = m_forward(x, t, c);
        if (!result.defined() || result.dim() == 0 || result.size(0) != static_cast<std::int64_t>(batch) ||
            static_cast<std::size_t>(result.numel()) != out_size) {
            const std::string value = result.defined() ? detail::torch_adapter::format_extents(result.sizes())
                                                       : std::string("an undefined tensor");
            detail::throw_invalid(where, "module output sizes", value,
                                  "B = " + std::to_string(batch) + " samples and out.size() = " +
                                      std::to_string(out_size) +
                                      " values (the input's shape; twice the channels for a learned variance)");
        }
        return result;
    }

    std::vector<std::int64_t> m_shape;
    torch_denoiser_options m_options;
    forward_fn m_forward;
    conditions m_conditions;
};

} // namespace ddpm
