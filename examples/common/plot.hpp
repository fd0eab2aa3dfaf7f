// examples/common/plot.hpp — a tiny RGB rasteriser for the demos: a canvas,
// rectangles, discs and circles with alpha, nearest-neighbour image blits,
// scatter panels with an axes box, and a 5×7 bitmap font for panel labels.
// No dependencies; pair it with examples/common/png.hpp to save the result.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace examples {

struct rgb {
    std::uint8_t r = 0, g = 0, b = 0;
};

/// A width × height RGB picture, row-major, top row first (3 bytes a pixel).
class canvas {
public:
    canvas(int width, int height, rgb background = {255, 255, 255})
        : m_width(width), m_height(height), m_pixels(static_cast<std::size_t>(width) * height * 3) {
        fill_rect(0, 0, width, height, background);
    }

    [[nodiscard]] int width() const noexcept { return m_width; }
    [[nodiscard]] int height() const noexcept { return m_height; }
    [[nodiscard]] std::span<const std::uint8_t> pixels() const noexcept { return m_pixels; }

    /// Paints one pixel; points outside the canvas are ignored.
    void set(int x, int y, rgb c) noexcept { blend(x, y, c, 1.0f); }

    /// Mixes `c` into one pixel with opacity `alpha` ∈ [0, 1].
    void blend(int x, int y, rgb c, float alpha) noexcept {
        if (x < 0 || y < 0 || x >= m_width || y >= m_height) return;
        auto* p = &m_pixels[(static_cast<std::size_t>(y) * m_width + x) * 3];
        const std::array<std::uint8_t, 3> src{c.r, c.g, c.b};
        for (int k = 0; k < 3; ++k)
            p[k] = static_cast<std::uint8_t>(std::lround(p[k] + alpha * (static_cast<float>(src[k]) - p[k])));
    }

    void fill_rect(int x, int y, int w, int h, rgb c) noexcept {
        for (int j = y; j < y + h; ++j)
            for (int i = x; i < x + w; ++i) set(i, j, c);
    }

    /// One-pixel outline of the rectangle [x, x + w) × [y, y + h).
    void rect(int x, int y, int w, int h, rgb c) noexcept {
        for (int i = x; i < x + w; ++i) set(i, y, c), set(i, y + h - 1, c);
        for (int j = y; j < y + h; ++j) set(x, j, c), set(x + w - 1, j, c);
    }

    /// A filled disc of radius r (pixels) centred on (cx, cy), antialiased at
    /// its rim.
    void disc(double cx, double cy, double r, rgb c, float alpha = 1.0f) noexcept {
        const int x0 = static_cast<int>(std::floor(cx - r - 1)), x1 = static_cast<int>(std::ceil(cx + r + 1));
        const int y0 = static_cast<int>(std::floor(cy - r - 1)), y1 = static_cast<int>(std::ceil(cy + r + 1));
        for (int y = y0; y <= y1; ++y)
            for (int x = x0; x <= x1; ++x) {
                const double d = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
                const double cover = std::clamp(r + 0.5 - d, 0.0, 1.0);
                if (cover > 0) blend(x, y, c, alpha * static_cast<float>(cover));
            }
    }

    /// A circle outline of radius r, about one pixel wide.
    void circle(double cx, double cy, double r, rgb c, float alpha = 1.0f) noexcept {
        const int x0 = static_cast<int>(std::floor(cx - r - 2)), x1 = static_cast<int>(std::ceil(cx + r + 2));
        const int y0 = static_cast<int>(std::floor(cy - r - 2)), y1 = static_cast<int>(std::ceil(cy + r + 2));
        for (int y = y0; y <= y1; ++y)
            for (int x = x0; x <= x1; ++x) {
                const double d = std::abs(std::hypot(x + 0.5 - cx, y + 0.5 - cy) - r);
                const double cover = std::clamp(1.0 - d, 0.0, 1.0);
                if (cover > 0) blend(x, y, c, alpha * static_cast<float>(cover));
            }
    }

    /// Copies a w × h RGB picture to (x, y), each source pixel drawn as a
    /// scale × scale block (nearest neighbour).
    void blit(int x, int y, int w, int h, std::span<const std::uint8_t> src, int scale = 1) noexcept {
        for (int j = 0; j < h * scale; ++j)
            for (int i = 0; i < w * scale; ++i) {
                const auto* p = &src[(static_cast<std::size_t>(j / scale) * w + i / scale) * 3];
                set(x + i, y + j, {p[0], p[1], p[2]});
            }
    }

    /// Draws `s` with the 5×7 font, top-left corner at (x, y), each font pixel
    /// a scale × scale block. Glyphs: 0-9 t = . - + and space; others draw as
    /// blanks.
    void text(int x, int y, std::string_view s, rgb c, int scale = 1) noexcept {
        for (const char ch : s) {
            const auto& g = glyph(ch);
            for (int row = 0; row < 7; ++row)
                for (int col = 0; col < 5; ++col)
                    if (g[row] & (0x10 >> col)) fill_rect(x + col * scale, y + row * scale, scale, scale, c);
            x += 6 * scale;
        }
    }

    /// Width in pixels of `s` drawn by text() at `scale`.
    [[nodiscard]] static int text_width(std::string_view s, int scale = 1) noexcept {
        return s.empty() ? 0 : static_cast<int>(s.size()) * 6 * scale - scale;
    }

private:
    using glyph_rows = std::array<std::uint8_t, 7>;

    static const glyph_rows& glyph(char ch) noexcept {
        static constexpr glyph_rows digits[10] = {
            {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
            {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
            {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
            {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
            {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}};
        static constexpr glyph_rows t{0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06};
        static constexpr glyph_rows eq{0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00};
        static constexpr glyph_rows dot{0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C};
        static constexpr glyph_rows minus{0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00};
        static constexpr glyph_rows plus{0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00};
        static constexpr glyph_rows blank{};
        if (ch >= '0' && ch <= '9') return digits[ch - '0'];
        switch (ch) {
        case 't': return t;
        case '=': return eq;
        case '.': return dot;
        case '-': return minus;
        case '+': return plus;
        default: return blank;
        }
    }

    int m_width, m_height;
    std::vector<std::uint8_t> m_pixels;
};

/// A square scatter-plot panel: the data window [lo, hi]² drawn in the pixel
/// square at (x, y) of side `size`, y pointing up.
struct scatter_panel {
    int x = 0, y = 0, size = 100;
    double lo = -1, hi = 1;

    [[nodiscard]] double px(double v) const noexcept { return x + (v - lo) / (hi - lo) * size; }
    [[nodiscard]] double py(double v) const noexcept { return y + (hi - v) / (hi - lo) * size; }
    [[nodiscard]] bool inside(double vx, double vy) const noexcept {
        return vx >= lo && vx <= hi && vy >= lo && vy <= hi;
    }

    /// Background, light axes through the origin, a circle of radius `ring`
    /// in data units (0: none) and the frame.
    void draw_frame(canvas& c, double ring = 0) const {
        c.fill_rect(x, y, size, size, {252, 252, 250});
        const int ox = static_cast<int>(px(0)), oy = static_cast<int>(py(0));
        for (int i = 0; i < size; ++i) c.set(x + i, oy, {222, 222, 222}), c.set(ox, y + i, {222, 222, 222});
        if (ring > 0) c.circle(px(0), py(0), ring / (hi - lo) * size, {200, 200, 200});
        c.rect(x - 1, y - 1, size + 2, size + 2, {60, 60, 60});
    }

    /// Points (x_k, y_k) from interleaved xy, coloured by colour_of(k); points
    /// outside the window are skipped.
    template <class T, class ColourOf>
    void scatter(canvas& c, std::span<const T> xy, ColourOf colour_of, double radius = 1.2,
                 float alpha = 0.75f) const {
        for (std::size_t k = 0; 2 * k + 1 < xy.size(); ++k) {
            const double vx = static_cast<double>(xy[2 * k]), vy = static_cast<double>(xy[2 * k + 1]);
            if (!inside(vx, vy)) continue;
            c.disc(px(vx), py(vy), radius, colour_of(k), alpha);
        }
    }
};

} // namespace examples
