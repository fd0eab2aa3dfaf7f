// ddpm/core/aligned.hpp — 64-byte aligned storage for ddpm's own buffers.
//
// A std::vector<float> of 128 KiB or more typically starts 16 bytes past a
// page boundary (glibc's mmap'd chunks), so every 64-byte SIMD access to it
// straddles two cache lines. The sampler's workspace uses aligned_vector
// instead: its data starts on a cache line, and the fused kernels, which peel
// to the alignment of their output (kernels/fused.hpp), then load and store
// whole lines.
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

namespace ddpm {

/// The alignment of ddpm's workspace buffers: one cache line, and the width
/// of an AVX-512 register.
inline constexpr std::size_t buffer_alignment = 64;

/// A std::allocator-like allocator whose blocks start on `Align` bytes.
/// allocate(n) throws std::length_error when n·sizeof(T) exceeds what one
/// object may occupy (before asking the system, so a sanitizer never sees the
/// request), else whatever `operator new` throws (std::bad_alloc).
template <class T, std::size_t Align = buffer_alignment>
struct aligned_allocator {
    static_assert(Align >= alignof(T) && (Align & (Align - 1)) == 0,
                  "ddpm::aligned_allocator: the alignment must be a power of two, at least alignof(T)");
    using value_type = T;

    template <class U>
    struct rebind {
        using other = aligned_allocator<U, Align>;
    };

    aligned_allocator() noexcept = default;
    template <class U>
    constexpr aligned_allocator(const aligned_allocator<U, Align>&) noexcept {} // NOLINT(google-explicit-constructor)

    [[nodiscard]] static constexpr std::size_t max_size() noexcept {
        return static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max()) / sizeof(T);
    }

    [[nodiscard]] T* allocate(std::size_t n) {
        if (n > max_size()) throw std::length_error("ddpm::aligned_allocator: more bytes than one object may hold");
        return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{Align}));
    }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{Align}); }

    template <class U>
    friend constexpr bool operator==(const aligned_allocator&, const aligned_allocator<U, Align>&) noexcept {
        return true;
    }
};

/// A std::vector whose data() is 64-byte aligned.
template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

} // namespace ddpm
