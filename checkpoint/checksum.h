// The checksum of checkpoint datasets: CRC-32 as zlib (and Python's zlib.crc32) defines it, over the bytes a
// dataset stores. Large buffers are cut into blocks whose CRCs are computed on several threads and combined
// (crc32_combine), so the result is the CRC of the whole buffer at a multiple of one core's speed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ratplus {

uint32_t crc32_of(const void* data, size_t bytes);

}  // namespace ratplus
