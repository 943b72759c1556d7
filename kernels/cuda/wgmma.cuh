// Hopper's warpgroup matrix products (sm_90a): the PTX wrappers of wgmma.mma_async for bf16 → f32, the
// fences and groups that order them, and the shared-memory matrix descriptors of 128-byte-swizzled tiles.
//
// A warpgroup (4 warps, 128 threads) computes D[64 × N] (+)= A[64 × 16] · B[16 × N] in one instruction,
// asynchronously: issue after wgmma_fence(), close the batch with wgmma_commit(), and wgmma_wait<0>() before
// touching D. D is float[N / 8][4] per thread, in mma.sync's m16n8 accumulator layout with warp w of the
// group holding rows 16w … 16w + 15. A comes from shared memory (a descriptor) or registers (mma.sync's A
// fragment layout); B always from shared memory.
//
// Tiles live in shared memory as regions of 64 bf16 columns (128 bytes) × R rows, 1024-byte aligned, each
// 8-row group (1024 bytes) with its 16-byte pieces permuted: piece c of row r sits at piece c ^ (r mod 8),
// the 128-byte swizzle. A K-major operand (rows = M or N, the 16 k-columns contiguous) is described from
// its first row and k offset with the 8-row stride (1024 bytes); an MN-major one (rows = k, columns = N,
// the transposed B) with the 8-row stride and the stride between 64-column regions.
#pragma once

#include <cstdint>

namespace ratplus::cuda {

// The descriptor of a 128-byte-swizzled operand at shared address `addr`; `leading` and `stride` are the
// byte offsets above (leading unused for K-major).
__device__ __forceinline__ uint64_t swizzled_descriptor(uint32_t addr, uint32_t leading, uint32_t stride) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>(leading >> 4) << 16 |
         static_cast<uint64_t>(stride >> 4) << 32 | uint64_t(1) << 62;
}

// Byte offset of 16-byte piece `piece` (0 … 7) of row r in a 128-byte-swizzled region.
__device__ __forceinline__ uint32_t swizzled_offset(int r, int piece) {
  return static_cast<uint32_t>(r * 128 + ((piece ^ (r & 7)) << 4));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Orders this thread's shared-memory writes (plain stores, cp.async) before later wgmma reads.
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

#define RATPLUS_ACC4(d, j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define RATPLUS_ACC32(d)                                                                                   \
  RATPLUS_ACC4(d, 0), RATPLUS_ACC4(d, 1), RATPLUS_ACC4(d, 2), RATPLUS_ACC4(d, 3), RATPLUS_ACC4(d, 4),      \
      RATPLUS_ACC4(d, 5), RATPLUS_ACC4(d, 6), RATPLUS_ACC4(d, 7)
#define RATPLUS_ACC64(d)                                                                                   \
  RATPLUS_ACC32(d), RATPLUS_ACC4(d, 8), RATPLUS_ACC4(d, 9), RATPLUS_ACC4(d, 10), RATPLUS_ACC4(d, 11),     \
      RATPLUS_ACC4(d, 12), RATPLUS_ACC4(d, 13), RATPLUS_ACC4(d, 14), RATPLUS_ACC4(d, 15)
#define RATPLUS_D32                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define RATPLUS_D64                                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, " \
  "%22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, "   \
  "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, "   \
  "%62, %63}"

// D (+)= A·B for N = 64 or 128: A and B K-major in shared memory; D is overwritten unless `accumulate`.
template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], uint64_t a, uint64_t b, bool accumulate) {
  static_assert(N == 64 || N == 128);
  if constexpr (N == 64)
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RATPLUS_D32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : RATPLUS_ACC32(d)
        : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
  else
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " RATPLUS_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
        : RATPLUS_ACC64(d)
        : "l"(a), "l"(b), "r"(static_cast<int>(accumulate)));
}

// D += A·B for N = 64 or 128: A from registers, B MN-major in shared memory.
template <int N>
__device__ __forceinline__ void wgmma_rs_mn(float (&d)[N / 8][4], const uint32_t (&a)[4], uint64_t b) {
  static_assert(N == 64 || N == 128);
  if constexpr (N == 64)
    asm volatile(
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " RATPLUS_D32 ", {%32, %33, %34, %35}, %36, 1, 1, "
        "1, 1;\n"
        : RATPLUS_ACC32(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
  else
    asm volatile(
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " RATPLUS_D64 ", {%64, %65, %66, %67}, %68, 1, 1, "
        "1, 1;\n"
        : RATPLUS_ACC64(d)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

#undef RATPLUS_ACC4
#undef RATPLUS_ACC32
#undef RATPLUS_ACC64
#undef RATPLUS_D32
#undef RATPLUS_D64

}  // namespace ratplus::cuda
