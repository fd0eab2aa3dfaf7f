// Peeling to alignment (issue 12): the SIMD range kernels run a scalar head
// until their output reaches a register's alignment, so which elements take
// the scalar path depends on the buffers' addresses. The results must not:
// every kernel at odd offsets of its buffers gives the bits it gives on
// 64-byte aligned buffers, and those of the scalar reference. Forward noising
// with counter noise (ε made in registers, one pass) gives the bits of the
// two-pass draw-then-combine. Built with -ffp-contract=off (test_dispatch),
// so the scalar reference has no fused multiply-adds either.
#include <catch2/catch.hpp>

#include <ddpm/core/aligned.hpp>
#include <ddpm/core/coefficients.hpp>
#include <ddpm/kernels/combine.hpp>
#include <ddpm/kernels/fused.hpp>
#include <ddpm/random/counter_noise.hpp>
#include <ddpm/schedule/noise_schedule.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

using namespace ddpm;
using kernels::backend;

namespace {

/// n values at `offset` elements past a 64-byte aligned allocation.
template <class T>
struct offset_buffer {
    aligned_vector<T> storage;
    std::span<T> s;
    offset_buffer(std::size_t n, std::size_t offset) : storage(n + offset + 1) { s = std::span<T>(storage).subspan(offset, n); }
    void fill(std::uint64_t seed) {
        std::mt19937_64 g(seed);
        std::normal_distribution<double> d(0.0, 1.3);
        for (T& v : s) v = static_cast<T>(d(g));
    }
    [[nodiscard]] std::vector<T> values() const { return {s.begin(), s.end()}; }
};

constexpr std::array<std::size_t, 8> offsets{0, 1, 2, 3, 5, 7, 13, 15};

/// Runs `kernel(out_offset, in_offset, bk)` (returning its outputs) at every
/// offset pair and checks that all give the aligned run's bits, and the
/// scalar reference's.
template <class Kernel>
void check_offsets(Kernel&& kernel) {
    const auto ref = kernel(0, 0, backend::scalar);
    const auto aligned = kernel(0, 0, kernels::best_backend);
    REQUIRE(aligned == ref);
    for (const std::size_t o : offsets) {
        INFO("output offset " << o);
        REQUIRE(kernel(o, (3 * o + 1) % 16, kernels::best_backend) == ref);
    }
}

} // namespace

TEMPLATE_TEST_CASE("the fused kernels give the same bits at any buffer alignment", "[kernels][align]", float, double) {
    using T = TestType;
    const std::size_t B = 3;
    const std::size_t D = GENERATE(3, 70, 1000);
    const std::size_t n = B * D;
    INFO("D = " << D);
    const noise_schedule s(schedule_config{});
    const kernels::noise_stream ns{2024, 9, 4};
    std::vector<T> a(B), b(B);
    for (std::size_t r = 0; r < B; ++r) {
        a[r] = T(0.95) - T(0.3) * T(r);
        b[r] = std::sqrt(T(1) - a[r] * a[r]);
    }

    SECTION("forward_noise, counter noise and a noise buffer") {
        check_offsets([&](std::size_t oo, std::size_t io, backend bk) {
            offset_buffer<T> x0(n, io), xt(n, oo), eps(n, (oo + 5) % 16), xt2(n, io);
            x0.fill(1);
            kernels::forward_noise<T>(x0.s, a, b, ns, xt.s, eps.s, {2}, bk);
            kernels::forward_noise<T>(x0.s, a, b, std::span<const T>(eps.s), xt2.s, {1}, bk);
            auto r = xt.values();
            const auto e = eps.values(), two_pass = xt2.values();
            REQUIRE(two_pass == r); // one pass = draw, then combine
            for (std::size_t k = 0; k < n; k += 7)
                REQUIRE(e[k] == T(random::normal_at_v2(ns.seed, ns.first_sample + std::uint32_t(k / D), ns.step, k % D, D)));
            r.insert(r.end(), e.begin(), e.end());
            return r;
        });
    }
    SECTION("ddpm_step with clipping and x0_hat, counter noise") {
        std::vector<reverse_coefficients<T>> coef;
        for (const std::int64_t t : {999, 400, 3})
            coef.push_back(reverse_step_coefficients<T>(s, t, t - 1, prediction_type::epsilon, variance_type::fixed_small));
        const std::vector<kernels::x0_clip<T>> clips(B, {true, T(1), T(1)});
        check_offsets([&](std::size_t oo, std::size_t io, backend bk) {
            offset_buffer<T> out(n, io), xt(n, (io + 2) % 16), prev(n, oo), x0(n, (oo + 9) % 16);
            out.fill(2);
            xt.fill(3);
            kernels::ddpm_step<T>(coef, clips, kernels::step_variance::fixed, out.s, xt.s,
                                  kernels::step_noise<T>::from(ns), prev.s, x0.s, {2}, bk);
            auto r = prev.values();
            const auto x = x0.values();
            r.insert(r.end(), x.begin(), x.end());
            return r;
        });
    }
    SECTION("ddim_step, eta > 0, in place") {
        std::vector<kernels::ddim_coefficients<T>> coef(B);
        for (std::size_t r = 0; r < B; ++r) {
            coef[r].form = kernels::x0_form::divide;
            coef[r].x0_a = a[r];
            coef[r].x0_b = b[r];
            coef[r].coef_x0 = T(0.9);
            coef[r].coef_eps = T(0.3);
            coef[r].sigma = T(0.2) * T(r);
        }
        check_offsets([&](std::size_t oo, std::size_t io, backend bk) {
            offset_buffer<T> out(n, io), x(n, oo);
            out.fill(4);
            x.fill(5);
            kernels::ddim_step<T>(coef, {}, out.s, x.s, kernels::step_noise<T>::from(ns), x.s, {}, {1}, bk);
            return x.values(); // x_prev aliases x_t
        });
    }
    SECTION("combine, sigma_step and convert_output") {
        std::vector<kernels::combine_coefficients<T, 2>> cc(B);
        std::vector<kernels::sigma_step_coefficients<T>> sc(B);
        std::vector<kernels::output_coefficients<T>> oc(B);
        for (std::size_t r = 0; r < B; ++r) {
            cc[r] = {{T(0.7) + T(r), -T(0.2)}, T(0.1) * T(r)};
            sc[r].a = T(0.8);
            sc[r].s = T(1.5);
            sc[r].dt = -T(0.25);
            sc[r].sigma_up = T(0.3);
            oc[r] = {kernels::output_form::x_minus_bo_c, T(0), b[r], a[r]};
        }
        check_offsets([&](std::size_t oo, std::size_t io, backend bk) {
            offset_buffer<T> p(n, io), q(n, (io + 4) % 16), c1(n, oo), c2(n, (oo + 1) % 16), x0(n, (oo + 3) % 16),
                c3(n, (oo + 11) % 16);
            p.fill(6);
            q.fill(7);
            const std::array<std::span<const T>, 2> in{std::span<const T>(p.s), std::span<const T>(q.s)};
            kernels::combine<T, 2>(cc, in, kernels::step_noise<T>::from(ns), c1.s, {1}, bk);
            kernels::sigma_step<T>(sc, {p.s, q.s, {}, {}, c2.s, x0.s, {}}, kernels::step_noise<T>::from(ns), {2}, bk);
            kernels::convert_output<T>(oc, p.s, q.s, c3.s, {1}, bk);
            std::vector<T> r;
            for (const auto* buf : {&c1, &c2, &x0, &c3}) {
                const auto v = buf->values();
                r.insert(r.end(), v.begin(), v.end());
            }
            return r;
        });
    }
}
