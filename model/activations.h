// The activations of one batch shape, planned up front (so a run can print and check its memory before
// allocating) and allocated in one arena. A training forward keeps every layer's state and the residual
// stream after every block for the backward; an inference forward keeps one layer's state and two
// alternating residual buffers.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/buffer.h"
#include "core/model_config.h"
#include "model/blocks.h"
#include "model/parameters.h"

namespace ratplus {

struct Activations {
  int64_t batch = 0, seq = 0;
  bool training = false;
  Arena arena;
  std::vector<Tensor> residual;  // training: 2L + 1 (before, between and after the blocks); inference: 2
  std::vector<TemporalMixingState> temporal;
  std::vector<ChannelMixingState> channel;
  TemporalMixingScratch temporal_scratch;
  ChannelMixingScratch channel_scratch;
  OutputHeadState head;
  Tensor d_residual;
  Tensor tokens;  // [2, rows] i32 on the GPU: inputs and targets (on the CPU the caller's arrays are used)
  // The staged batch (Model::stage): its tokens and targets on the model's device, and how many targets are
  // labels.
  const int32_t* inputs = nullptr;
  const int32_t* targets = nullptr;
  int64_t labels = 0;

  // With device unset, only plans (arena.planned_bytes()); otherwise allocates on the device. stat_dtype is
  // the type of the statistics (rstd, log-sum-exp, row losses).
  Activations(const ModelConfig& c, const ParameterTable& table, std::optional<Device> device, DType dtype,
              DType stat_dtype, int64_t batch, int64_t seq, bool training);

  // Residual buffer before block b (b = 0 … 2L): all kept in training, alternating otherwise.
  Tensor& residual_before(int64_t block) { return residual[training ? block : block % 2]; }
  // The saved state of layer i (the one shared buffer set when not training).
  TemporalMixingState& temporal_state(int64_t layer) { return temporal[training ? layer : 0]; }
  ChannelMixingState& channel_state(int64_t layer) { return channel[training ? layer : 0]; }
};

// Rows of logits computed at once: about 8M elements, so memory stays bounded for a 32k vocabulary.
int64_t logits_chunk_rows(int64_t rows, int64_t vocab);

}  // namespace ratplus
