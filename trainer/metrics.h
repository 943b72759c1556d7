// Prometheus metrics of a training run: a prometheus-cpp registry that the trainer fills, served as the
// Prometheus text format on GET /metrics by trainer/metrics_server.h on a background thread (not
// prometheus-cpp's Exposer; see docs/ARCHITECTURE.md). Names carry the `ratplus_` prefix and base units.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "trainer/metrics_server.h"

namespace ratplus {

// The training run's metrics (a registry always exists; a server only when listen is not "").
class TrainingMetrics {
 public:
  explicit TrainingMetrics(const std::string& listen);
  // One optimizer update of a pass ("dense", "sparse" or "adapt"); skipped = non-finite, not applied.
  void record_update(const std::string& pass, double loss, double grad_norm, double learning_rate, bool skipped);
  // One finished step (batch): tokens it consumed, its wall time, throughput, model FLOP utilisation
  // (ratio, or a negative value when unknown), and the data wait during it.
  void record_step(int64_t step, int64_t tokens, double seconds, double tokens_per_second, double mfu,
                   double data_wait_seconds);
  void record_validation(const std::string& pattern, double loss);
  void record_checkpoint(int64_t step, double seconds);
  // Keeps serving for `seconds` (so a scraper sees the final values), then returns.
  void linger(double seconds) const;
  int port() const;  // -1 without a server
  prometheus::Registry& registry();

 private:
  void update_resident_memory();

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& tokens_;
  prometheus::Counter& steps_;
  prometheus::Family<prometheus::Counter>& updates_;
  prometheus::Counter& skipped_updates_;
  prometheus::Family<prometheus::Gauge>& loss_;
  prometheus::Family<prometheus::Gauge>& grad_norm_;
  prometheus::Gauge& learning_rate_;
  prometheus::Gauge& step_;
  prometheus::Histogram& step_duration_;
  prometheus::Gauge& tokens_per_second_;
  prometheus::Family<prometheus::Gauge>& mfu_family_;
  prometheus::Gauge* mfu_ = nullptr;  // added on the first known value, so an unknown MFU is absent
  prometheus::Counter& data_wait_;
  prometheus::Family<prometheus::Gauge>& validation_loss_;
  prometheus::Histogram& checkpoint_duration_;
  prometheus::Gauge& last_checkpoint_step_;
  prometheus::Gauge& resident_memory_;
  std::unique_ptr<MetricsServer> server_;  // last: stops serving before the metrics it reads go away
};

}  // namespace ratplus
