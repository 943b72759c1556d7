// Owning memory on a device, and an arena that plans a set of named tensors up front, knows their total
// size before anything is allocated (Model::memory_plan) and allocates them in one block. Parameters, gradients and activations are each an
// arena, so a run knows its memory before it starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ratplus {

class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t bytes, Device device);
  // Host memory for copies to and from `peer`: page-locked (cudaHostAlloc) when `peer` is a GPU, so that
  // copies run at the bus's full speed; plain host memory otherwise. Not zero-filled.
  static Buffer host_staging(size_t bytes, Device peer);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::cpu;
  bool page_locked_ = false;  // host memory from cudaHostAlloc
};

class Arena {
 public:
  struct Entry {
    std::string name;
    int64_t rows, cols;
    DType dtype;
    size_t offset;  // bytes
  };

  // Plans a tensor; returns its handle. Only before allocate().
  int reserve(std::string name, int64_t rows, int64_t cols, DType dtype);
  // Allocates every planned tensor in one zero-filled block.
  void allocate(Device device);
  Tensor get(int handle) const;
  size_t planned_bytes() const { return planned_; }

 private:
  std::vector<Entry> entries_;
  size_t planned_ = 0;
  Buffer buffer_;
  Device device_ = Device::cpu;
};

// Copies between tensors of the same shape and dtype on any devices. GPU copies go on the stream of the
// thread's GPU context (kernels/cuda/gpu_context.h): one that reads or writes host memory has finished
// when it returns; one between device tensors is only ordered on the stream (so it can be captured).
void copy_tensor(Tensor dst, const Tensor& src);
// Sets every element to zero (on the GPU: ordered on the context's stream).
void zero_tensor(Tensor t);

// The elements of an f32 or bf16 tensor on any device, as a host f32 vector (row by row), and back (bf16
// widens exactly and narrows by rounding to nearest even, as the GPU converts).
std::vector<float> to_host_floats(const Tensor& t);
void from_host_floats(Tensor t, const std::vector<float>& values);
// The elements of an f32 or bf16 tensor on any device, or of an f64 one on the CPU, as host doubles.
std::vector<double> to_host_doubles(const Tensor& t);

}  // namespace ratplus
