// FLOP accounting of SPEC §8: per token, a forward pass costs 2·N_mat + 4·L·d·k, where
// N_mat = L·(in_proj rows·d + d² + 2·d·f) + V·d and k is the mean number of keys per query of the
// pattern at sequence length T (for dense, (T + 1) / 2). Training costs 3 × forward.
#pragma once

#include <cstdint>

#include "core/model_config.h"
#include "model/pattern.h"

namespace ratplus {

// Mean over layers, heads and positions 0 … T−1 of the number of keys a query attends to. A top-k block
// head's keys depend on the data; it counts as its fixed key set and own block plus K whole earlier blocks
// (at most ⌊t/B⌋ of them), capped at t + 1: an upper bound, exact when K = 0 or K ≥ ⌊t/B⌋.
double mean_keys_per_query(const ModelConfig& config, const Pattern& pattern, int64_t seq_len);

double forward_flops_per_token(const ModelConfig& config, const Pattern& pattern, int64_t seq_len);

// Dense bf16 tensor-core peak of an H100/H200 SXM, the MFU reference of SPEC §8.
inline constexpr double kHopperPeakFlops = 989e12;

}  // namespace ratplus
