// ddpm/cuda/memory.cuh — small RAII owners: device memory (device_buffer) and
// an instantiated CUDA graph (graph), plus the pointer checks the public
// entry points run once per call.
#pragma once

#if !defined(__CUDACC__)
#error "ddpm/cuda/*.cuh must be compiled by nvcc (a .cu file). Host-only code uses the .hpp headers."
#endif

#include "ddpm/cuda/error.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ddpm::cuda {

/// Owns `size()` elements of T in device memory (cudaMalloc / cudaFree).
/// Move-only. The contents are uninitialised after construction.
template <class T>
class device_buffer {
public:
    device_buffer() noexcept = default;

    /// Allocates n elements; throws ddpm::cuda_error when cudaMalloc fails.
    explicit device_buffer(std::size_t n) : m_size(n) {
        if (n != 0) DDPM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&m_data), n * sizeof(T)));
    }

    /// Allocates and copies `host`; returns when the data is on the device
    /// (see upload).
    explicit device_buffer(std::span<const T> host, cudaStream_t stream = nullptr) : device_buffer(host.size()) {
        upload(host, stream);
    }

    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& o) noexcept
        : m_data(std::exchange(o.m_data, nullptr)), m_size(std::exchange(o.m_size, 0)) {}
    device_buffer& operator=(device_buffer&& o) noexcept {
        if (this != &o) {
            release();
            m_data = std::exchange(o.m_data, nullptr);
            m_size = std::exchange(o.m_size, 0);
        }
        return *this;
    }
    ~device_buffer() { release(); }

    [[nodiscard]] T* data() noexcept { return m_data; }
    [[nodiscard]] const T* data() const noexcept { return m_data; }
    [[nodiscard]] std::size_t size() const noexcept { return m_size; }
    [[nodiscard]] bool empty() const noexcept { return m_size == 0; }

    /// Copies host → device on `stream` (after the work already there) and
    /// waits for that stream: when upload returns, the data is on the device
    /// and visible to work on any stream, non-blocking ones included. (A
    /// plain cudaMemcpy from pageable memory may return before the data has
    /// landed, and a cudaStreamNonBlocking stream is not ordered after it.)
    /// host.size() <= size().
    void upload(std::span<const T> host, cudaStream_t stream = nullptr) {
        if (host.size() > m_size)
            ddpm::detail::throw_invalid("ddpm::cuda::device_buffer::upload", "host.size()", host.size(),
                                        "<= size() = " + std::to_string(m_size));
        if (host.empty()) return;
        DDPM_CUDA_CHECK(cudaMemcpyAsync(m_data, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
        DDPM_CUDA_CHECK(cudaStreamSynchronize(stream));
    }

    /// Copies device → host on `stream`, after the work already on it, and
    /// waits for it. Work on other streams that writes this buffer must be
    /// finished (or `stream` must be the one it ran on). host.size() <= size().
    void download(std::span<T> host, cudaStream_t stream = nullptr) const {
        if (host.size() > m_size)
            ddpm::detail::throw_invalid("ddpm::cuda::device_buffer::download", "host.size()", host.size(),
                                        "<= size() = " + std::to_string(m_size));
        if (host.empty()) return;
        DDPM_CUDA_CHECK(cudaMemcpyAsync(host.data(), m_data, host.size() * sizeof(T), cudaMemcpyDeviceToHost, stream));
        DDPM_CUDA_CHECK(cudaStreamSynchronize(stream));
    }

    /// Sets every byte to `value` on `stream` and waits for it (as upload).
    void fill_bytes(int value, cudaStream_t stream = nullptr) {
        if (m_size == 0) return;
        DDPM_CUDA_CHECK(cudaMemsetAsync(m_data, value, m_size * sizeof(T), stream));
        DDPM_CUDA_CHECK(cudaStreamSynchronize(stream));
    }

    /// The whole buffer copied to the host (download on `stream`).
    [[nodiscard]] std::vector<T> to_host(cudaStream_t stream = nullptr) const {
        std::vector<T> out(m_size);
        download(out, stream);
        return out;
    }

private:
    void release() noexcept {
        if (m_data != nullptr) (void)cudaFree(m_data); // never throws from a destructor
        m_data = nullptr;
        m_size = 0;
    }

    T* m_data = nullptr;
    std::size_t m_size = 0;
};

/// An instantiated CUDA graph (cudaGraph_t + cudaGraphExec_t), move-only.
///
///   auto g = ddpm::cuda::graph::capture(stream, [&](cudaStream_t s) { sampler.sample(net, x, opts, s); });
///   g.launch(stream);            // replay: the whole chain, one launch
///
/// Capture records the work `enqueue` puts on `stream` (which must not be the
/// legacy default stream) in cudaStreamCaptureModeThreadLocal mode; nothing
/// runs during capture. Pointers and kernel arguments are frozen into the
/// graph: a replay reads and writes the same buffers.
class graph {
public:
    graph() noexcept = default;
    graph(const graph&) = delete;
    graph& operator=(const graph&) = delete;
    graph(graph&& o) noexcept : m_graph(std::exchange(o.m_graph, nullptr)), m_exec(std::exchange(o.m_exec, nullptr)) {}
    graph& operator=(graph&& o) noexcept {
        if (this != &o) {
            release();
            m_graph = std::exchange(o.m_graph, nullptr);
            m_exec = std::exchange(o.m_exec, nullptr);
        }
        return *this;
    }
    ~graph() { release(); }

    /// Captures what `enqueue(stream)` enqueues on `stream` and instantiates it.
    /// If `enqueue` throws, the capture is ended, discarded, and the exception
    /// propagates. Throws ddpm::invalid_argument for the legacy default stream
    /// and ddpm::cuda_error when a CUDA call fails.
    template <class Enqueue>
    [[nodiscard]] static graph capture(cudaStream_t stream, Enqueue&& enqueue) {
        constexpr std::string_view where = "ddpm::cuda::graph::capture";
        if (stream == nullptr || stream == cudaStreamLegacy)
            ddpm::detail::throw_invalid(where, "stream", "the legacy default stream (0)",
                                        "a created stream (cudaStreamCreate): the legacy stream cannot be captured");
        DDPM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        graph g;
#if !DDPM_NO_EXCEPTIONS
        try {
            enqueue(stream);
        } catch (...) {
            cudaGraph_t partial = nullptr;
            (void)cudaStreamEndCapture(stream, &partial);
            if (partial != nullptr) (void)cudaGraphDestroy(partial);
            throw;
        }
#else
        enqueue(stream);
#endif
        DDPM_CUDA_CHECK(cudaStreamEndCapture(stream, &g.m_graph));
        DDPM_CUDA_CHECK(cudaGraphInstantiate(&g.m_exec, g.m_graph, 0ull));
        return g;
    }

    /// Replays the graph on `stream` (asynchronous, like any launch).
    void launch(cudaStream_t stream) const {
        if (m_exec == nullptr)
            ddpm::detail::throw_invalid("ddpm::cuda::graph::launch", "graph", "empty", "a captured graph");
        DDPM_CUDA_CHECK(cudaGraphLaunch(m_exec, stream));
    }

    [[nodiscard]] cudaGraph_t get() const noexcept { return m_graph; }
    [[nodiscard]] cudaGraphExec_t exec() const noexcept { return m_exec; }
    [[nodiscard]] bool empty() const noexcept { return m_exec == nullptr; }

private:
    void release() noexcept {
        if (m_exec != nullptr) (void)cudaGraphExecDestroy(m_exec);
        if (m_graph != nullptr) (void)cudaGraphDestroy(m_graph);
        m_exec = nullptr;
        m_graph = nullptr;
    }

    cudaGraph_t m_graph = nullptr;
    cudaGraphExec_t m_exec = nullptr;
};

namespace detail {

/// Throws ddpm::invalid_argument for a null pointer, or for plain pageable
/// host memory that a kernel cannot read (cudaMemoryTypeUnregistered).
/// Device, managed and registered host memory pass. While `stream` is being
/// captured only the null check runs (the attribute query is not a
/// stream-ordered call and is left out of captures).
inline void check_device_pointer(std::string_view where, std::string_view name, const void* p,
                                 cudaStream_t stream) {
    if (p == nullptr) ddpm::detail::throw_invalid(where, name, "nullptr", "a device pointer");
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    if (capture != cudaStreamCaptureStatusNone) return;
    cudaPointerAttributes attr{};
    const cudaError_t e = cudaPointerGetAttributes(&attr, p);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); // clear it: this is only a check
        return;
    }
    if (attr.type == cudaMemoryTypeUnregistered)
        ddpm::detail::throw_invalid(where, name, "a host pointer",
                                    "device, managed or registered host memory (cudaMalloc, cudaMallocManaged, "
                                    "cudaHostRegister)");
}

} // namespace detail
} // namespace ddpm::cuda
