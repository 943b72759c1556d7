// Buffer, Arena and tensor copies. Host memory is 64-byte aligned; device memory comes from cudaMalloc
// when the CUDA backend is built, and device copies and fills go on the GPU context's stream.
#include "core/buffer.h"

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <new>
#include <utility>

#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/gpu_context.h"
#endif

namespace ratplus {

namespace {

#ifdef RATPLUS_HAVE_CUDA
void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(fmt::format("{}: {}", what, cudaGetErrorString(err)));
}
#else
[[noreturn]] void no_cuda() { throw InputError("this build of ratplus has no CUDA backend (device: cuda)"); }
#endif

}  // namespace

Buffer::Buffer(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!data_) throw std::bad_alloc();
    std::memset(data_, 0, bytes);
    return;
  }
#ifdef RATPLUS_HAVE_CUDA
  cuda_check(cudaMalloc(&data_, bytes), fmt::format("cudaMalloc of {} bytes", bytes).c_str());
  cuda_check(cudaMemset(data_, 0, bytes), "cudaMemset");
#else
  no_cuda();
#endif
}

Buffer::~Buffer() { release(); }

Buffer Buffer::host_staging(size_t bytes, Device peer) {
  Buffer b;
  b.bytes_ = bytes;
  if (bytes == 0) return b;
#ifdef RATPLUS_HAVE_CUDA
  if (peer == Device::cuda) {
    cuda_check(cudaHostAlloc(&b.data_, bytes, cudaHostAllocDefault),
               fmt::format("cudaHostAlloc of {} bytes", bytes).c_str());
    b.page_locked_ = true;
    return b;
  }
#else
  (void)peer;
#endif
  b.data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!b.data_) throw std::bad_alloc();
  return b;
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(other.device_),
      page_locked_(std::exchange(other.page_locked_, false)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = other.device_;
    page_locked_ = std::exchange(other.page_locked_, false);
  }
  return *this;
}

void Buffer::release() {
  if (!data_) return;
  if (page_locked_) {
#ifdef RATPLUS_HAVE_CUDA
    cudaFreeHost(data_);
#endif
  } else if (device_ == Device::cpu) {
    std::free(data_);
  } else {
#ifdef RATPLUS_HAVE_CUDA
    cudaFree(data_);
#endif
  }
  data_ = nullptr;
}

int Arena::reserve(std::string name, int64_t rows, int64_t cols, DType dtype) {
  check_internal(buffer_.data() == nullptr, "Arena::reserve after allocate");
  const size_t bytes = static_cast<size_t>(rows * cols) * dtype_size(dtype);
  entries_.push_back({std::move(name), rows, cols, dtype, planned_});
  planned_ += (bytes + 255) / 256 * 256;  // keep every tensor 256-byte aligned
  return static_cast<int>(entries_.size()) - 1;
}

void Arena::allocate(Device device) {
  device_ = device;
  buffer_ = Buffer(planned_, device);
}

Tensor Arena::get(int handle) const {
  const Entry& e = entries_.at(handle);
  Tensor t;
  t.data = static_cast<char*>(buffer_.data()) + e.offset;
  t.rows = e.rows;
  t.cols = e.cols;
  t.ld = e.cols;
  t.dtype = e.dtype;
  t.device = device_;
  return t;
}

void copy_tensor(Tensor dst, const Tensor& src) {
  check_internal(dst.rows == src.rows && dst.cols == src.cols && dst.dtype == src.dtype,
                 "copy_tensor: shape or dtype mismatch");
  if (src.numel() == 0) return;  // empty tensors may have no memory at all (memcpy of null is undefined)
  const size_t esz = dtype_size(src.dtype);
  const size_t row_bytes = static_cast<size_t>(src.cols) * esz;
  if (dst.device == Device::cpu && src.device == Device::cpu) {
    for (int64_t r = 0; r < src.rows; ++r)
      std::memcpy(static_cast<char*>(dst.data) + r * dst.ld * esz,
                  static_cast<const char*>(src.data) + r * src.ld * esz, row_bytes);
    return;
  }
#ifdef RATPLUS_HAVE_CUDA
  const cudaStream_t stream = cuda_stream();
  cuda_check(cudaMemcpy2DAsync(dst.data, dst.ld * esz, src.data, src.ld * esz, row_bytes, src.rows, cudaMemcpyDefault,
                               stream),
             "cudaMemcpy2DAsync");
  if (dst.device == Device::cpu || src.device == Device::cpu)
    cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
#else
  no_cuda();
#endif
}

void zero_tensor(Tensor t) {
  const size_t esz = dtype_size(t.dtype);
  if (t.device == Device::cpu) {
    for (int64_t r = 0; r < t.rows; ++r) std::memset(static_cast<char*>(t.data) + r * t.ld * esz, 0, t.cols * esz);
    return;
  }
#ifdef RATPLUS_HAVE_CUDA
  cuda_check(cudaMemset2DAsync(t.data, t.ld * esz, 0, t.cols * esz, t.rows, cuda_stream()), "cudaMemset2DAsync");
#else
  no_cuda();
#endif
}

namespace {

// bf16 is the top half of an f32: widening is exact; narrowing rounds to nearest, ties to even, as the GPU's
// __float2bfloat16 does (NaNs stay NaNs).
float widen_bf16(uint16_t x) {
  const uint32_t bits = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t narrow_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

std::vector<float> to_host_floats(const Tensor& t) {
  check_internal(t.dtype == DType::f32 || t.dtype == DType::bf16, "to_host_floats: f32 or bf16 tensor expected");
  std::vector<float> values(t.numel());
  if (t.dtype == DType::f32) {
    copy_tensor(Tensor{values.data(), t.rows, t.cols, t.cols, DType::f32, Device::cpu}, t);
    return values;
  }
  std::vector<uint16_t> raw(t.numel());
  copy_tensor(Tensor{raw.data(), t.rows, t.cols, t.cols, DType::bf16, Device::cpu}, t);
  for (size_t i = 0; i < raw.size(); ++i) values[i] = widen_bf16(raw[i]);
  return values;
}

std::vector<double> to_host_doubles(const Tensor& t) {
  if (t.dtype != DType::f64) {
    const std::vector<float> values = to_host_floats(t);
    return {values.begin(), values.end()};
  }
  std::vector<double> values(t.numel());
  copy_tensor(Tensor{values.data(), t.rows, t.cols, t.cols, DType::f64, Device::cpu}, t);
  return values;
}

void from_host_floats(Tensor t, const std::vector<float>& values) {
  check_internal((t.dtype == DType::f32 || t.dtype == DType::bf16) && static_cast<int64_t>(values.size()) == t.numel(),
                 "from_host_floats: f32 or bf16 tensor of the same size expected");
  if (t.dtype == DType::f32) {
    copy_tensor(t, Tensor{const_cast<float*>(values.data()), t.rows, t.cols, t.cols, DType::f32, Device::cpu});
    return;
  }
  std::vector<uint16_t> raw(values.size());
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = narrow_to_bf16(values[i]);
  copy_tensor(t, Tensor{raw.data(), t.rows, t.cols, t.cols, DType::bf16, Device::cpu});
}

}  // namespace ratplus
