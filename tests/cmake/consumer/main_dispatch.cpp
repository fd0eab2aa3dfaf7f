// A user who links ddpm::ddpm ddpm::xsimd at default flags: prints which
// instruction set the kernels run at (run-time dispatch) and whether the CPU
// has AVX2+FMA, and checks the noise against the scalar reference.
#include <ddpm/ddpm.hpp>

#include <cstring>
#include <iostream>
#include <vector>

int main() {
    std::vector<float> got(1000), ref(1000);
    ddpm::random::fill_normal(std::span<float>(got), 1, 2, 3, 4);
    ddpm::random::fill_normal_scalar(ref, 1, 2, 3, 4);
    const auto isa = ddpm::dispatch::active<ddpm::kernels::detail::kernel_table<float>>();
    std::cout << "dispatch cpu_avx2=" << ddpm::dispatch::cpu_supports(ddpm::dispatch::isa::avx2)
              << " active=" << ddpm::dispatch::name(isa);
    const bool same = std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)) == 0;
    std::cout << " noise=" << (same ? "ok" : "DIFFERENT") << '\n';
    return same ? 0 : 1;
}
