// CUDA graph capture and replay of a fixed step (see captured_work.h).
#include "kernels/captured_work.h"

#include <stdexcept>
#include <string>

#ifdef RATPLUS_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/gpu_context.h"
#endif

namespace ratplus {

#ifdef RATPLUS_HAVE_CUDA
namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}
}  // namespace

CapturedWork::~CapturedWork() { release(); }

void CapturedWork::release() {
  if (graph_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_));
  graph_ = nullptr;
}

void CapturedWork::run(const std::function<void()>& work, const void* key) {
  if (device_ != Device::cuda) return work();
  if (key != key_) {
    release();
    key_ = key;
    runs_ = 0;
  }
  if (runs_++ == 0) return work();
  const cudaStream_t stream = cuda_stream();
  if (!graph_) {
    cudaGraph_t graph = nullptr;
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      work();
    } catch (...) {
      cudaStreamEndCapture(stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    check(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(made, "cudaGraphInstantiate");
    graph_ = exec;
  }
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_), stream), "cudaGraphLaunch");
}
#else
CapturedWork::~CapturedWork() = default;
void CapturedWork::release() {}
void CapturedWork::run(const std::function<void()>& work, const void*) { work(); }
#endif

}  // namespace ratplus
