// ratplus_kernel_bench: Google Benchmark timings of the attention, recurrence-scan and cross-entropy ops of
// kernels/*.h and of a decoding step's matrix products, on the GPU when there is one (else on the CPU, at
// smaller sizes). Standard benchmark flags apply (--benchmark_filter=attention, --benchmark_format=json, ...).
//
// Activations (q, k, v, gates, logits and their gradients) are bf16 and f32 on the GPU (the type is part of
// each benchmark's name), f32 on the CPU; statistics (log-sum-exp, row losses) are f32, as in the model.
// How: inputs are Normal(0, 1) tensors (never zeros) in fresh buffers; on the GPU every operand set is
// larger than the L2 cache, so repeated runs read device memory. Each benchmark runs its op once untimed
// (module load, first touch), then times each iteration alone — CUDA events around it on the GPU, the host
// clock on the CPU — and hands that time to benchmark (UseManualTime, so its "Time" column is the mean);
// the counters (median_ms, and FLOP/s or bytes/s, printed with SI prefixes) come from the median iteration:
//   attention      FLOP/s, forward = 4·B·H·T·k·dh with k the mean keys per query (counted from the same
//                  key ranges the kernels walk), backward = 2.5 × forward; attention_forward_mma (bf16 on
//                  the GPU) times the mma.sync forward alone, beside the op's own (the wgmma one on Hopper);
//   recurrence     bytes/s of the fewest bytes the scan must move: forward reads k, v, g and writes k̃, ṽ
//                  (5 values per element); backward reads dk̃, dṽ, k̃, ṽ, k, v, g and writes dk, dv, dg (10);
//   cross-entropy  bytes/s counting the logits read twice (one online max-and-sum pass, one gradient pass) and
//                  written once; a kernel that reads them three times moves more than it is credited with;
//   decode_linear  (GPU) bytes/s of the bf16 weights a decoding step's product reads, 1, 4 and 8 rows against
//                  the 7.6B config's layers, by cuBLASLt and (1 row) the matrix–vector kernel of
//                  kernels/cuda/matvec.h.
// On the GPU each rate is also a percentage of the ceilings measured on the H200 machines: about
// 790 TFLOP/s for bf16 matrix products and 4.3 TB/s for a device-to-device copy (bytes read + written).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "core/buffer.h"
#include "core/device.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/recurrence.h"
#ifdef RATPLUS_HAVE_CUDA
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/gpu_context.h"
#include "kernels/cuda/matvec.h"
#endif

namespace ratplus {
namespace {

constexpr double kMatrixCeilingFlops = 790e12;         // bf16 matrix product on an H200
constexpr double kCopyCeilingBytesPerSecond = 4.3e12;  // device-to-device copy on an H200

struct AttentionSize {
  int64_t batch, heads, seq_len, head_dim;
};

struct Sizes {
  std::vector<AttentionSize> attention;  // B · H shrinks as T grows, so the longest still fits
  int64_t scan_batch, scan_seq_len, scan_channels;
  int64_t ce_rows, ce_vocab;
};

const Sizes kGpuSizes = {{{2, 16, 4096, 128}, {1, 8, 16384, 128}}, 2, 4096, 2048, 8192, 32000};
const Sizes kCpuSizes = {{{1, 2, 512, 128}, {1, 1, 2048, 128}}, 2, 1024, 512, 512, 32000};

struct NamedKeySet {
  const char* name;
  KeySet keys;
};

// The activation types measured on a device: bf16 (mixed precision) and f32 on the GPU, f32 on the CPU.
std::vector<DType> activation_types(Device device) {
  return device == Device::cuda ? std::vector<DType>{DType::bf16, DType::f32} : std::vector<DType>{DType::f32};
}

const NamedKeySet kPatterns[] = {{"dense", {1, 0, 0}}, {"dilated:D=16", {16, 0, 0}}, {"dilated:D=64", {64, 0, 0}}};

#ifdef RATPLUS_HAVE_CUDA
void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(fmt::format("{}: {}", what, cudaGetErrorString(err)));
}
#endif

// A tensor together with the memory it views.
struct OwnedTensor {
  Buffer buffer;
  Tensor t;
  OwnedTensor(int64_t rows, int64_t cols, DType dtype, Device device)
      : buffer(static_cast<size_t>(rows * cols) * dtype_size(dtype), device),
        t{buffer.data(), rows, cols, cols, dtype, device} {}
};

// x rounded to the nearest bfloat16 (ties to even), as its bits.
uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

void store(const Tensor& host, int64_t i, double x) {
  if (host.dtype == DType::f32) {
    host.ptr<float>()[i] = static_cast<float>(x);
  } else if (host.dtype == DType::bf16) {
    host.ptr<uint16_t>()[i] = bf16_bits(static_cast<float>(x));
  } else {
    throw std::logic_error(fmt::format("random_tensor: no {} activations", dtype_name(host.dtype)));
  }
}

// rows × cols numbers scale · Normal(0, 1) of stream `seed`.
OwnedTensor random_tensor(int64_t rows, int64_t cols, DType dtype, Device device, uint64_t seed, double scale = 1) {
  OwnedTensor host(rows, cols, dtype, Device::cpu);
#pragma omp parallel for
  for (int64_t i = 0; i < rows * cols; ++i) store(host.t, i, scale * normal(seed, i));
  OwnedTensor out(rows, cols, dtype, device);
  copy_tensor(out.t, host.t);
  return out;
}

// Times one run of a callable: CUDA events around it on the GPU (checking the launches' errors), the host
// clock on the CPU.
class Stopwatch {
 public:
  explicit Stopwatch(Device device) : device_(device) {
#ifdef RATPLUS_HAVE_CUDA
    if (device_ == Device::cuda) {
      check_cuda(cudaEventCreate(&start_), "cudaEventCreate");
      check_cuda(cudaEventCreate(&stop_), "cudaEventCreate");
    }
#endif
  }
  ~Stopwatch() {
#ifdef RATPLUS_HAVE_CUDA
    if (device_ == Device::cuda) {
      cudaEventDestroy(start_);
      cudaEventDestroy(stop_);
    }
#endif
  }
  Stopwatch(const Stopwatch&) = delete;
  Stopwatch& operator=(const Stopwatch&) = delete;

  template <class F>
  double seconds(F&& run) {
#ifdef RATPLUS_HAVE_CUDA
    if (device_ == Device::cuda) {
      check_cuda(cudaEventRecord(start_), "cudaEventRecord");
      run();
      check_cuda(cudaEventRecord(stop_), "cudaEventRecord");
      check_cuda(cudaEventSynchronize(stop_), "cudaEventSynchronize");
      check_cuda(cudaGetLastError(), "kernel launch");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
      return ms * 1e-3;
    }
#endif
    const auto start = std::chrono::steady_clock::now();
    run();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

 private:
  [[maybe_unused]] Device device_;  // read only when the CUDA backend is built
#ifdef RATPLUS_HAVE_CUDA
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
#endif
};

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
}

// Runs `op` once untimed, then once per benchmark iteration, timed, each after an untimed `prepare`.
// Returns the median iteration in seconds.
template <class Op, class Prepare>
double time_iterations(benchmark::State& state, Device device, Op&& op, Prepare&& prepare) {
  Stopwatch watch(device);
  prepare();
  watch.seconds(op);
  std::vector<double> times;
  for (auto _ : state) {
    prepare();
    const double s = watch.seconds(op);
    state.SetIterationTime(s);
    times.push_back(s);
  }
  return median(times);
}

template <class Op>
double time_iterations(benchmark::State& state, Device device, Op&& op) {
  return time_iterations(state, device, op, [] {});
}

void report_flops(benchmark::State& state, Device device, double flops, double seconds) {
  state.counters["median_ms"] = seconds * 1e3;
  state.counters["FLOP/s"] = flops / seconds;
  if (device == Device::cuda) state.counters["%_of_790T_matrix"] = 100 * flops / seconds / kMatrixCeilingFlops;
}

void report_bytes(benchmark::State& state, Device device, double bytes, double seconds) {
  state.counters["median_ms"] = seconds * 1e3;
  state.counters["bytes/s"] = bytes / seconds;
  if (device == Device::cuda) state.counters["%_of_4.3TB/s_copy"] = 100 * bytes / seconds / kCopyCeilingBytesPerSecond;
}

// Runs a benchmark body; an exception marks the benchmark as failed instead of ending the program.
template <class F>
void guarded(benchmark::State& state, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// Mean over queries t = 0 … T−1 of the number of keys query t attends to.
double mean_keys(const KeySet& keys, int64_t seq_len) {
  double total = 0;
  KeyRange ranges[3];
  for (int64_t t = 0; t < seq_len; ++t) {
    const int n = key_ranges(keys, t, ranges);
    for (int i = 0; i < n; ++i)
      total += static_cast<double>((ranges[i].end - ranges[i].begin + ranges[i].step - 1) / ranges[i].step);
  }
  return total / static_cast<double>(seq_len);
}

// Which forward runs: the op's own choice, or (bf16 on the GPU) the mma.sync kernel that Hopper's wgmma
// one replaces, for the comparison.
enum class Forward { op, mma };

void bench_attention(benchmark::State& state, Device device, DType dtype, AttentionSize a, KeySet keys,
                     bool backward, Forward kernel = Forward::op) {
  const int64_t rows = a.batch * a.seq_len, width = a.heads * a.head_dim;
  const auto random = [&](uint64_t seed) { return random_tensor(rows, width, dtype, device, seed); };
  const auto uninitialised = [&] { return OwnedTensor(rows, width, dtype, device); };
  const OwnedTensor q = random(1), k = random(2), v = random(3), out = uninitialised();
  const OwnedTensor lse(rows, a.heads, DType::f32, device);
  const std::vector<KeySet> head_keys(a.heads, keys);
  const AttentionArgs args{.q = q.t, .batch = a.batch, .q_len = a.seq_len, .k = k.t, .v = v.t, .k_len = a.seq_len,
                           .head_keys = head_keys, .out = out.t, .lse = lse.t};
  const auto forward = [&] {
#ifdef RATPLUS_HAVE_CUDA
    if (kernel == Forward::mma && !cuda::mma_attention_forward(args)) throw std::runtime_error("mma forward declined");
#endif
    if (kernel == Forward::op) attention_forward(args);
  };
  double seconds;
  if (backward) {
    const OwnedTensor dout = random(4), dq = uninitialised(), dk = uninitialised(), dv = uninitialised();
    const OwnedTensor workspace(1, attention_backward_workspace(a.batch, a.seq_len, a.seq_len, a.heads, width),
                                DType::f32, device);
    seconds = time_iterations(state, device, [&] {
      forward();
      attention_backward(args, {.dout = dout.t, .dq = dq.t, .dk = dk.t, .dv = dv.t, .workspace = workspace.t});
    });
  } else {
    seconds = time_iterations(state, device, forward);
  }
  const double forward_flops = 4.0 * static_cast<double>(a.batch * a.heads * a.seq_len * a.head_dim) *
                               mean_keys(keys, a.seq_len);
  report_flops(state, device, forward_flops * (backward ? 3.5 : 1.0), seconds);
}

void bench_recurrence(benchmark::State& state, Device device, DType dtype, const Sizes& s, bool backward) {
  const int64_t rows = s.scan_batch * s.scan_seq_len, c = s.scan_channels;
  const auto random = [&](uint64_t seed) { return random_tensor(rows, c, dtype, device, seed); };
  const auto uninitialised = [&] { return OwnedTensor(rows, c, dtype, device); };
  const OwnedTensor k = random(5), v = random(6), g = random(7), k_out = uninitialised(), v_out = uninitialised();
  const auto forward = [&] { recurrence_forward(k_out.t, v_out.t, k.t, v.t, g.t, s.scan_batch); };
  double seconds;
  if (backward) {
    forward();
    const OwnedTensor dk_out = random(8), dv_out = random(9), dk = uninitialised(), dv = uninitialised(),
                      dg = uninitialised();
    seconds = time_iterations(state, device, [&] {
      recurrence_backward(dk.t, dv.t, dg.t, dk_out.t, dv_out.t, k_out.t, v_out.t, k.t, v.t, g.t, s.scan_batch);
    });
  } else {
    seconds = time_iterations(state, device, forward);
  }
  const double values_moved = backward ? 10 : 5;
  report_bytes(state, device, values_moved * static_cast<double>(rows * c * dtype_size(dtype)), seconds);
}

// Loss and gradient of rows × V logits; each timed run starts from the same logits, restored untimed.
void bench_cross_entropy(benchmark::State& state, Device device, DType dtype, const Sizes& s) {
  const OwnedTensor original = random_tensor(s.ce_rows, s.ce_vocab, dtype, device, 10, 2.0);
  const OwnedTensor logits(s.ce_rows, s.ce_vocab, dtype, device), row_loss(1, s.ce_rows, DType::f32, device);
  OwnedTensor host_targets(1, s.ce_rows, DType::i32, Device::cpu);
  for (int64_t r = 0; r < s.ce_rows; ++r)
    host_targets.t.ptr<int32_t>()[r] = static_cast<int32_t>(splitmix64(r) % static_cast<uint64_t>(s.ce_vocab));
  const OwnedTensor targets(1, s.ce_rows, DType::i32, device);
  copy_tensor(targets.t, host_targets.t);
  const double grad_scale = 1.0 / static_cast<double>(s.ce_rows);
  const double seconds = time_iterations(
      state, device, [&] { cross_entropy(row_loss.t, logits.t, targets.t.ptr<int32_t>(), grad_scale); },
      [&] { copy_tensor(logits.t, original.t); });
  report_bytes(state, device, 3.0 * static_cast<double>(s.ce_rows * s.ce_vocab * dtype_size(dtype)), seconds);
}

#ifdef RATPLUS_HAVE_CUDA
// A linear layer of a decoding step: the weights [n, k] and the type of the product.
struct LinearShape {
  const char* name;
  int64_t n, k;
  DType out;
};

// The 7.6B config's products (d 4096, FFN 16384, vocabulary 32000): in_proj, out_proj, fc1, fc2, the head.
const LinearShape kDecodeLinears[] = {{"in_proj", 20480, 4096, DType::bf16},
                                      {"out_proj", 4096, 4096, DType::bf16},
                                      {"fc1", 16384, 4096, DType::bf16},
                                      {"fc2", 4096, 16384, DType::bf16},
                                      {"head", 32000, 4096, DType::f32}};

// `m` bf16 rows times a layer's bf16 weights, by the matrix–vector kernel (m = 1) or by cuBLASLt. Each timed run makes
// kCalls products, taking in turn copies of the weights that together exceed the L2 cache three times, so
// every product reads its weights from device memory; bytes/s counts the weights read.
void bench_decode_linear(benchmark::State& state, int64_t m, LinearShape s, bool cublaslt) {
  constexpr double kL2Bytes = 50e6;
  constexpr int kCalls = 20;
  const double weight_bytes = 2.0 * static_cast<double>(s.n * s.k);
  const auto copies = static_cast<int64_t>(std::max(1.0, std::ceil(3 * kL2Bytes / weight_bytes)));
  const OwnedTensor a = random_tensor(m, s.k, DType::bf16, Device::cuda, 1);
  const OwnedTensor w = random_tensor(copies * s.n, s.k, DType::bf16, Device::cuda, 2, 0.02);
  const OwnedTensor c(m, s.n, s.out, Device::cuda);
  int64_t next = 0;
  const double seconds = time_iterations(state, Device::cuda, [&] {
    for (int i = 0; i < kCalls; ++i) {
      const Tensor b = w.t.rows_slice(next++ % copies * s.n, s.n);
      if (cublaslt)
        cuda::gpu_context().matmul(c.t, a.t, false, b, true, 1, 0);
      else if (!cuda::matvec(c.t, a.t, false, b, true, 1, 0))
        throw std::logic_error("the matrix-vector kernel does not take this product");
    }
  });
  report_bytes(state, Device::cuda, weight_bytes, seconds / kCalls);
}
#endif

template <class F>
void add(const std::string& name, F body) {
  benchmark::RegisterBenchmark(name.c_str(), [body](benchmark::State& state) { guarded(state, [&] { body(state); }); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

void register_benchmarks(Device device, const Sizes& s) {
  for (const DType dtype : activation_types(device)) {
    const char* type = dtype_name(dtype);
    for (const AttentionSize& a : s.attention) {
      const std::string shape = fmt::format("B={},H={},T={},dh={}", a.batch, a.heads, a.seq_len, a.head_dim);
      for (const NamedKeySet& p : kPatterns) {
        add(fmt::format("attention_forward/{}/{}/{}", type, p.name, shape),
            [=](benchmark::State& st) { bench_attention(st, device, dtype, a, p.keys, false); });
        add(fmt::format("attention_forward_backward/{}/{}/{}", type, p.name, shape),
            [=](benchmark::State& st) { bench_attention(st, device, dtype, a, p.keys, true); });
        if (device == Device::cuda && dtype == DType::bf16)
          add(fmt::format("attention_forward_mma/{}/{}/{}", type, p.name, shape),
              [=](benchmark::State& st) { bench_attention(st, device, dtype, a, p.keys, false, Forward::mma); });
      }
    }
    const std::string scan = fmt::format("{}/B={},T={},d={}", type, s.scan_batch, s.scan_seq_len, s.scan_channels);
    add("recurrence_forward/" + scan, [=](benchmark::State& st) { bench_recurrence(st, device, dtype, s, false); });
    add("recurrence_backward/" + scan, [=](benchmark::State& st) { bench_recurrence(st, device, dtype, s, true); });
    add(fmt::format("cross_entropy/{}/rows={},V={}", type, s.ce_rows, s.ce_vocab),
        [=](benchmark::State& st) { bench_cross_entropy(st, device, dtype, s); });
  }
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda)
    for (const LinearShape& l : kDecodeLinears)
      for (const int64_t m : {1, 4, 8})
        for (const bool cublaslt : {false, true})
          if (cublaslt || m == 1)
            add(fmt::format("decode_linear/{}/7.6b_{}/m={},n={},k={}", cublaslt ? "cublaslt" : "matvec", l.name, m,
                            l.n, l.k),
                [=](benchmark::State& st) { bench_decode_linear(st, m, l, cublaslt); });
#endif
}

std::string device_description(Device device) {
#ifdef RATPLUS_HAVE_CUDA
  if (device == Device::cuda) {
    cudaDeviceProp prop;
    check_cuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    return fmt::format("cuda: {}", prop.name);
  }
#endif
  return device_name(device);
}

}  // namespace
}  // namespace ratplus

int main(int argc, char** argv) {
  using namespace ratplus;
  const Device device = cuda_device_count() > 0 ? Device::cuda : Device::cpu;
  register_benchmarks(device, device == Device::cuda ? kGpuSizes : kCpuSizes);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::AddCustomContext("ratplus_device", device_description(device));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
