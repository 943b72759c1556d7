// Prometheus metrics of a training run (see metrics.h): the metric families, their HELP texts and buckets
// (the HTTP endpoint is trainer/metrics_server.h).
#include "trainer/metrics.h"

#include <unistd.h>

#include <chrono>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <utility>

#include "core/error.h"

namespace ratplus {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Registry;

// The resident set size of this process from /proc/self/statm (its second field, in pages).
std::optional<double> resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  long total_pages = 0;
  long resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return std::nullopt;
  return static_cast<double>(resident_pages) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

Family<Counter>& counter_family(Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

Family<Gauge>& gauge_family(Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

Histogram& histogram(Registry& registry, const std::string& name, const std::string& help,
                     const Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

// 1-2.5-5 steps per decade: 1 ms … 100 s for a step, 10 ms … 1000 s for a checkpoint.
const Histogram::BucketBoundaries kStepBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,      2.5,   5,    10,    25,   50,  100};
const Histogram::BucketBoundaries kCheckpointBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,   2.5,
                                                        5,    10,    25,   50,  100,  250, 500, 1000};

}  // namespace

TrainingMetrics::TrainingMetrics(const std::string& listen)
    : registry_(std::make_shared<Registry>()),
      tokens_(
          counter_family(*registry_, "ratplus_tokens_total", "Training tokens consumed by finished steps.").Add({})),
      steps_(counter_family(*registry_, "ratplus_steps_total", "Training steps (batches) finished.").Add({})),
      updates_(counter_family(*registry_, "ratplus_optimizer_updates_total",
                              "Optimizer updates applied to the weights, by pass (dense, sparse or adapt).")),
      skipped_updates_(counter_family(*registry_, "ratplus_skipped_updates_total",
                                      "Optimizer updates skipped because the loss or gradients were not finite.")
                           .Add({})),
      loss_(gauge_family(*registry_, "ratplus_loss", "Training loss (nats per token) of the last update, by pass.")),
      grad_norm_(gauge_family(*registry_, "ratplus_grad_norm",
                              "Global gradient norm before clipping of the last update, by pass.")),
      learning_rate_(gauge_family(*registry_, "ratplus_learning_rate", "Learning rate of the last update.").Add({})),
      step_(gauge_family(*registry_, "ratplus_step", "Last finished training step.").Add({})),
      step_duration_(
          histogram(*registry_, "ratplus_step_duration_seconds", "Wall time of a training step.", kStepBuckets)),
      tokens_per_second_(gauge_family(*registry_, "ratplus_tokens_per_second",
                                      "Training throughput of the last step in tokens per second.")
                             .Add({})),
      mfu_family_(gauge_family(*registry_, "ratplus_mfu_ratio",
                               "Model FLOP utilisation of the last step as a ratio of the device's peak "
                               "(absent when the peak is unknown).")),
      data_wait_(counter_family(*registry_, "ratplus_data_wait_seconds_total",
                                "Time training steps spent waiting for input batches.")
                     .Add({})),
      validation_loss_(gauge_family(*registry_, "ratplus_validation_loss",
                                    "Validation loss (nats per token) of the last evaluation, by attention pattern.")),
      checkpoint_duration_(histogram(*registry_, "ratplus_checkpoint_duration_seconds",
                                     "Wall time of writing a checkpoint in the background, until the file is synced and renamed.", kCheckpointBuckets)),
      last_checkpoint_step_(
          gauge_family(*registry_, "ratplus_last_checkpoint_step", "Step of the last checkpoint written.").Add({})),
      resident_memory_(gauge_family(*registry_, "ratplus_process_resident_memory_bytes",
                                    "Resident memory of the training process in bytes.")
                           .Add({})) {
  update_resident_memory();
  if (!listen.empty()) {
    server_ = std::make_unique<MetricsServer>(registry_, listen, [this] { update_resident_memory(); });
  }
}

void TrainingMetrics::record_update(const std::string& pass, double loss, double grad_norm, double learning_rate,
                                    bool skipped) {
  if (skipped) {
    skipped_updates_.Increment();
  } else {
    updates_.Add({{"pass", pass}}).Increment();
  }
  loss_.Add({{"pass", pass}}).Set(loss);
  grad_norm_.Add({{"pass", pass}}).Set(grad_norm);
  learning_rate_.Set(learning_rate);
}

void TrainingMetrics::record_step(int64_t step, int64_t tokens, double seconds, double tokens_per_second, double mfu,
                                  double data_wait_seconds) {
  tokens_.Increment(static_cast<double>(tokens));
  steps_.Increment();
  step_.Set(static_cast<double>(step));
  step_duration_.Observe(seconds);
  tokens_per_second_.Set(tokens_per_second);
  if (mfu >= 0) {
    if (mfu_ == nullptr) mfu_ = &mfu_family_.Add({});
    mfu_->Set(mfu);
  }
  data_wait_.Increment(data_wait_seconds);
  update_resident_memory();
}

void TrainingMetrics::record_validation(const std::string& pattern, double loss) {
  validation_loss_.Add({{"pattern", pattern}}).Set(loss);
}

void TrainingMetrics::record_checkpoint(int64_t step, double seconds) {
  checkpoint_duration_.Observe(seconds);
  last_checkpoint_step_.Set(static_cast<double>(step));
}

void TrainingMetrics::linger(double seconds) const {
  if (server_ && seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

int TrainingMetrics::port() const { return server_ ? server_->port() : -1; }

Registry& TrainingMetrics::registry() { return *registry_; }

void TrainingMetrics::update_resident_memory() {
  if (const auto bytes = resident_memory_bytes()) resident_memory_.Set(*bytes);
}

}  // namespace ratplus
