// CRC-32 of a buffer, in blocks on several threads (see checksum.h).
#include "checkpoint/checksum.h"

#include <zlib.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace ratplus {
namespace {

// Blocks of 8 MiB: below two of them one thread is faster than starting others.
constexpr size_t kBlockBytes = size_t{8} << 20;

uint32_t crc32_serial(const unsigned char* data, size_t bytes) {
  return static_cast<uint32_t>(crc32_z(crc32_z(0, nullptr, 0), data, bytes));
}

}  // namespace

uint32_t crc32_of(const void* data, size_t bytes) {
  const auto* begin = static_cast<const unsigned char*>(data);
  const size_t blocks = (bytes + kBlockBytes - 1) / kBlockBytes;
  const size_t threads = std::min<size_t>(blocks, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) return crc32_serial(begin, bytes);
  // Thread t takes a contiguous run of whole blocks; their CRCs are combined in order.
  const size_t per_thread = (blocks + threads - 1) / threads * kBlockBytes;
  std::vector<uint32_t> crcs(threads, 0);
  std::vector<size_t> lengths(threads, 0);
  std::vector<std::thread> workers;
  for (size_t t = 0; t < threads; ++t) {
    const size_t first = std::min(bytes, t * per_thread), last = std::min(bytes, first + per_thread);
    lengths[t] = last - first;
    workers.emplace_back([&crcs, t, begin, first, last] { crcs[t] = crc32_serial(begin + first, last - first); });
  }
  for (std::thread& w : workers) w.join();
  uLong crc = crcs[0];
  for (size_t t = 1; t < threads; ++t) crc = crc32_combine(crc, crcs[t], static_cast<z_off_t>(lengths[t]));
  return static_cast<uint32_t>(crc);
}

}  // namespace ratplus
