// examples/common/text.hpp — printable-ASCII labels on an examples::canvas,
// with stb_easy_font (libstb-dev) turned into filled rectangles. The 5×7 font
// of canvas::text has only digits and a few symbols; this one has letters.
//
// Glyphs are about 7 pixels high (descenders to 9) at scale 1; characters
// outside ' '..'~' draw as '?'. Like common/png.hpp this needs the stb include
// folder (NEEDS_STB in examples/CMakeLists.txt); stb_easy_font's functions
// are all `static`, so including it in several examples is fine.
#pragma once

#include "common/plot.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#if __has_include(<stb_easy_font.h>)
#include <stb_easy_font.h>
#else
#include <stb/stb_easy_font.h>
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace examples {

namespace detail {
/// `s` as a NUL-terminated, single-line string of stb_easy_font's characters.
inline std::string easy_font_string(std::string_view s) {
    std::string r(s);
    for (auto& ch : r)
        if (ch < 32 || ch > 126) ch = '?';
    return r;
}
} // namespace detail

/// Width in pixels of `s` drawn by draw_label at `scale`.
[[nodiscard]] inline int label_width(std::string_view s, int scale = 1) {
    auto str = detail::easy_font_string(s);
    return stb_easy_font_width(str.data()) * scale;
}

/// Height of one line of draw_label at `scale` (capitals; descenders go 2·scale lower).
[[nodiscard]] constexpr int label_height(int scale = 1) noexcept { return 7 * scale; }

/// Draws `s` with its top-left corner at (x, y), each font pixel a scale ×
/// scale block.
inline void draw_label(canvas& c, int x, int y, std::string_view s, rgb colour, int scale = 1) {
    auto str = detail::easy_font_string(s);
    // 64 bytes a quad. stb's "~270 bytes a character" is an average: '0' takes
    // 6 quads, 'X' 11 (the most); room for 16 a character.
    std::vector<char> buffer(str.size() * 16 * 64 + 64);
    const int quads = stb_easy_font_print(0.0f, 0.0f, str.data(), nullptr, buffer.data(), static_cast<int>(buffer.size()));
    for (int q = 0; q < quads; ++q) {
        // 4 vertices of 16 bytes (x, y, z as float; 4 colour bytes); 0 and 2 are opposite corners.
        float v0[2], v2[2];
        std::memcpy(v0, buffer.data() + q * 64, sizeof v0);
        std::memcpy(v2, buffer.data() + q * 64 + 32, sizeof v2);
        const int x0 = static_cast<int>(std::lround(std::min(v0[0], v2[0]) * static_cast<float>(scale)));
        const int y0 = static_cast<int>(std::lround(std::min(v0[1], v2[1]) * static_cast<float>(scale)));
        const int x1 = static_cast<int>(std::lround(std::max(v0[0], v2[0]) * static_cast<float>(scale)));
        const int y1 = static_cast<int>(std::lround(std::max(v0[1], v2[1]) * static_cast<float>(scale)));
        c.fill_rect(x + x0, y + y0, x1 - x0, y1 - y0, colour);
    }
}

/// draw_label centred horizontally on cx.
inline void draw_label_centred(canvas& c, int cx, int y, std::string_view s, rgb colour, int scale = 1) {
    draw_label(c, cx - label_width(s, scale) / 2, y, s, colour, scale);
}

} // namespace examples
