// examples/common/chart.hpp — a line chart on an examples::canvas: a plot
// area with a frame, ticks and tick labels on both axes (the y axis linear or
// logarithmic), and polylines in data coordinates. Built on common/plot.hpp
// and common/text.hpp (stb_easy_font labels; needs NEEDS_STB).
#pragma once

#include "common/plot.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace examples {

/// An antialiased line of width ~`width` pixels from (x0, y0) to (x1, y1),
/// drawn as discs every half pixel.
inline void draw_line(canvas& c, double x0, double y0, double x1, double y1, rgb colour, double width = 1.5,
                      float alpha = 1.0f) {
    const double len = std::hypot(x1 - x0, y1 - y0);
    const int steps = std::max(1, static_cast<int>(std::ceil(len * 2)));
    for (int s = 0; s <= steps; ++s) {
        const double f = static_cast<double>(s) / steps;
        c.disc(x0 + f * (x1 - x0), y0 + f * (y1 - y0), width / 2, colour, alpha * 0.5f);
    }
}

/// A plot area at (x, y) of w × h pixels showing [x_lo, x_hi] × [y_lo, y_hi],
/// the y axis logarithmic (base 10) when log_y.
struct line_chart {
    int x = 0, y = 0, w = 400, h = 300;
    double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
    bool log_y = false;

    [[nodiscard]] double px(double v) const noexcept { return x + (v - x_lo) / (x_hi - x_lo) * w; }
    [[nodiscard]] double py(double v) const noexcept {
        if (log_y) {
            const double l = std::log10(std::max(v, 1e-300));
            return y + h - (l - std::log10(y_lo)) / (std::log10(y_hi) - std::log10(y_lo)) * h;
        }
        return y + h - (v - y_lo) / (y_hi - y_lo) * h;
    }

    /// Background, grid lines at the ticks, tick labels, the frame and the
    /// axis titles. Linear axes get about `ticks` round-numbered ticks; a log
    /// axis gets one per decade (and 2× and 5× when it spans few decades).
    void draw_axes(canvas& c, const std::string& x_title, const std::string& y_title, int ticks = 6) const {
        const rgb grid{228, 228, 228}, ink{40, 40, 40};
        c.fill_rect(x, y, w, h, {252, 252, 250});
        for (const double v : nice_ticks(x_lo, x_hi, ticks)) {
            const int ix = static_cast<int>(std::lround(px(v)));
            for (int j = 0; j < h; ++j) c.set(ix, y + j, grid);
            draw_label_centred(c, ix, y + h + 6, format(v), ink);
        }
        for (const double v : y_ticks(ticks)) {
            const int iy = static_cast<int>(std::lround(py(v)));
            for (int i = 0; i < w; ++i) c.set(x + i, iy, grid);
            const auto s = format(v);
            draw_label(c, x - 6 - label_width(s), iy - 3, s, ink);
        }
        c.rect(x - 1, y - 1, w + 2, h + 2, {60, 60, 60});
        draw_label_centred(c, x + w / 2, y + h + 22, x_title, ink);
        draw_label(c, x, y - 14, y_title, ink);
    }

    /// The points (xs[k], ys[k]) joined by line segments; points outside the
    /// y range are clamped to its edges.
    void polyline(canvas& c, std::span<const double> xs, std::span<const double> ys, rgb colour,
                  double width = 1.5) const {
        for (std::size_t k = 1; k < std::min(xs.size(), ys.size()); ++k)
            draw_line(c, px(xs[k - 1]), py(clamp_y(ys[k - 1])), px(xs[k]), py(clamp_y(ys[k])), colour, width);
    }

    /// A legend entry: a short line and its text, at row `row` of the top-right corner.
    void legend(canvas& c, int row, const std::string& text, rgb colour) const {
        const int lx = x + w - 12 - label_width(text) - 26, ly = y + 10 + row * 14;
        draw_line(c, lx, ly + 3, lx + 20, ly + 3, colour, 2.0);
        draw_label(c, lx + 26, ly, text, {40, 40, 40});
    }

private:
    [[nodiscard]] double clamp_y(double v) const noexcept { return std::clamp(v, y_lo, y_hi); }

    [[nodiscard]] static std::vector<double> nice_ticks(double lo, double hi, int n) {
        const double raw = (hi - lo) / std::max(n, 1);
        const double mag = std::pow(10.0, std::floor(std::log10(raw)));
        double step = mag;
        for (const double m : {1.0, 2.0, 2.5, 5.0, 10.0})
            if (m * mag >= raw) {
                step = m * mag;
                break;
            }
        std::vector<double> t;
        for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step)
            t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
        return t;
    }

    [[nodiscard]] std::vector<double> y_ticks(int n) const {
        if (!log_y) return nice_ticks(y_lo, y_hi, n);
        std::vector<double> t;
        const double decades = std::log10(y_hi / y_lo);
        for (int e = static_cast<int>(std::floor(std::log10(y_lo))); e <= static_cast<int>(std::ceil(std::log10(y_hi))); ++e)
            for (const double m : decades <= 2.5 ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
                const double v = m * std::pow(10.0, e);
                if (v >= y_lo * (1 - 1e-9) && v <= y_hi * (1 + 1e-9)) t.push_back(v);
            }
        return t;
    }

    [[nodiscard]] static std::string format(double v) {
        char buf[32];
        const double a = std::abs(v);
        if (a == 0) return "0";
        if (a >= 1e5 || a < 1e-3) std::snprintf(buf, sizeof buf, "%.0e", v);
        else if (a >= 1000 && std::fmod(a, 1000) == 0) std::snprintf(buf, sizeof buf, "%gk", v / 1000);
        else std::snprintf(buf, sizeof buf, "%g", v);
        return buf;
    }
};

} // namespace examples
