// examples/fashion_mnist/idx.hpp — reads the (gzipped) IDX files of MNIST and
// Fashion-MNIST (Debian: dataset-fashion-mnist, /usr/share/datasets/fashion-mnist).
//
// IDX: a big-endian header — two zero bytes, a type byte (0x08 = unsigned
// byte), the number of dimensions — then one 32-bit big-endian extent per
// dimension, then the values in C order.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

/// The extents and bytes of one IDX file of unsigned bytes.
struct idx_array {
    std::vector<std::size_t> shape;
    std::vector<std::uint8_t> values;
};

/// Reads `path` (gzip-compressed or plain; zlib reads both). At most
/// `max_items` entries of the first dimension are read (0: all).
/// Throws std::runtime_error naming the file on any problem.
inline idx_array read_idx(const std::filesystem::path& path, std::size_t max_items = 0) {
    gzFile f = gzopen(path.string().c_str(), "rb");
    if (f == nullptr) throw std::runtime_error("cannot open IDX file '" + path.string() + "'");
    const auto fail = [&](const std::string& why) -> std::runtime_error {
        gzclose(f);
        return std::runtime_error("IDX file '" + path.string() + "': " + why);
    };
    unsigned char magic[4];
    if (gzread(f, magic, 4) != 4) throw fail("too short");
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4)
        throw fail("not an IDX file of unsigned bytes (magic " + std::to_string(magic[2]) + "/" +
                   std::to_string(magic[3]) + ")");
    idx_array a;
    std::size_t count = 1;
    for (int d = 0; d < magic[3]; ++d) {
        unsigned char b[4];
        if (gzread(f, b, 4) != 4) throw fail("truncated header");
        std::size_t extent = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) | (std::size_t{b[2]} << 8) | b[3];
        if (d == 0 && max_items != 0 && extent > max_items) extent = max_items;
        a.shape.push_back(extent);
        count *= extent;
    }
    a.values.resize(count);
    std::size_t done = 0;
    while (done < count) {
        const auto chunk = static_cast<unsigned>(std::min<std::size_t>(count - done, 1u << 24));
        const int got = gzread(f, a.values.data() + done, chunk);
        if (got <= 0) throw fail("truncated data (" + std::to_string(done) + " of " + std::to_string(count) + " bytes)");
        done += static_cast<std::size_t>(got);
    }
    gzclose(f);
    return a;
}

} // namespace fmnist
