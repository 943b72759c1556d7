// The checkpoint checksum: CRC-32 as zlib defines it, the same whether computed in one pass or in blocks on
// several threads.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <vector>

#include "checkpoint/checksum.h"

namespace ratplus::test {
namespace {

TEST(Checksum, IsTheStandardCrc32) {
  const char* text = "123456789";
  EXPECT_EQ(crc32_of(text, std::strlen(text)), 0xCBF43926u);  // the CRC-32 check value
  EXPECT_EQ(crc32_of(nullptr, 0), 0u);
}

TEST(Checksum, BlocksOnThreadsGiveTheCrcOfOnePass) {
  std::vector<unsigned char> bytes((size_t{3} << 23) + 5);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
  for (const size_t n : {size_t{1}, (size_t{1} << 23) - 1, size_t{1} << 23, (size_t{1} << 23) + 1,
                         (size_t{2} << 23) + 7, bytes.size()}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(crc32_of(bytes.data(), n), static_cast<uint32_t>(crc32(0, bytes.data(), static_cast<uInt>(n))));
  }
}

}  // namespace
}  // namespace ratplus::test
