// examples/common/png.hpp — write an 8-bit RGB picture as PNG (stb_image_write).
//
// Every example is a single translation unit, so the stb implementation is
// compiled here, with all of stb's functions `static` (STB_IMAGE_WRITE_STATIC):
// including this header from two examples never gives duplicate symbols, and
// #pragma once keeps it to one copy per TU.
//
// Needs libstb-dev (Debian/Ubuntu); examples/CMakeLists.txt adds its include
// folder for examples registered with NEEDS_STB.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#if __has_include(<stb_image_write.h>)
#include <stb_image_write.h>
#else
#include <stb/stb_image_write.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace examples {

/// Writes `rgb` (height rows of width × 3 bytes, top row first) to `path` as
/// PNG. Throws std::runtime_error naming the path when the sizes disagree or
/// the file cannot be written.
inline void write_png(const std::string& path, int width, int height, std::span<const std::uint8_t> rgb) {
    if (width <= 0 || height <= 0)
        throw std::runtime_error("write_png(" + path + "): bad size " + std::to_string(width) + "x" +
                                 std::to_string(height));
    const auto expected = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
    if (rgb.size() != expected)
        throw std::runtime_error("write_png(" + path + "): got " + std::to_string(rgb.size()) +
                                 " bytes, expected " + std::to_string(expected) + " (width x height x 3)");
    errno = 0;
    if (stbi_write_png(path.c_str(), width, height, 3, rgb.data(), width * 3) == 0) {
        const int err = errno;
        throw std::runtime_error("cannot write PNG file '" + path + "'" +
                                 (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
    }
}

} // namespace examples
