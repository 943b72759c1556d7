// The recurrence entry points: checks, then the CPU scan or the GPU chunked scan.
#include "kernels/recurrence.h"

#include "kernels/backend.h"

namespace ratplus {

namespace {

// k, v, g and every other [batch · T, channels] operand: one shape, type and device.
void check_sequences(const OpCheck& check, const Tensor& k, int64_t batch,
                     std::initializer_list<std::pair<const Tensor*, const char*>> others) {
  check.activations(k, "k");
  check.that(batch > 0 && k.rows % batch == 0,
             fmt::format("{} rows do not split into {} sequences of one length", k.rows, batch));
  for (const auto& [t, name] : others) {
    check.device(k.device, {t});
    check.dtype(*t, name, k.dtype);
    check.shape(*t, name, k.rows, k.cols);
  }
}

void check_state(const OpCheck& check, const RecurrenceState& s, const char* name, const Tensor& k, int64_t batch) {
  if (s.empty()) return;
  for (const Tensor* t : {&s.k, &s.v}) {
    check.device(k.device, {t});
    check.statistics(*t, name, k);
    check.shape(*t, name, batch, k.cols);
  }
  check.apart(s.k, name, s.v, name);
}

}  // namespace

void recurrence_forward(Tensor k_out, Tensor v_out, const Tensor& k, const Tensor& v, const Tensor& g,
                        int64_t batch, const RecurrenceState& initial, const RecurrenceState& final_state) {
  const OpCheck check("recurrence_forward");
  check_sequences(check, k, batch, {{&v, "v"}, {&g, "g"}, {&k_out, "k_out"}, {&v_out, "v_out"}});
  for (const auto& [out, name] : {std::pair{&k_out, "k_out"}, {&v_out, "v_out"}}) {
    check.apart(*out, name, k, "k");
    check.apart(*out, name, v, "v");
    check.apart(*out, name, g, "g");
  }
  check.apart(k_out, "k_out", v_out, "v_out");
  check_state(check, initial, "the initial state", k, batch);
  check_state(check, final_state, "the final state", k, batch);
  check.that(final_state.empty() || k.rows > 0, "a final state of empty sequences");
  if (!initial.empty() && !final_state.empty()) {
    check.apart_or_same(final_state.k, "the final state", initial.k, "the initial state");
    check.apart_or_same(final_state.v, "the final state", initial.v, "the initial state");
  }
  RATPLUS_DISPATCH(k, recurrence_forward(k_out, v_out, k, v, g, batch, initial, final_state));
}

void recurrence_backward(Tensor dk, Tensor dv, Tensor dg, const Tensor& dk_out, const Tensor& dv_out,
                         const Tensor& k_out, const Tensor& v_out, const Tensor& k, const Tensor& v,
                         const Tensor& g, int64_t batch) {
  const OpCheck check("recurrence_backward");
  check_sequences(check, k, batch,
                  {{&v, "v"}, {&g, "g"}, {&k_out, "k_out"}, {&v_out, "v_out"}, {&dk_out, "dk_out"},
                   {&dv_out, "dv_out"}, {&dk, "dk"}, {&dv, "dv"}, {&dg, "dg"}});
  const std::pair<const Tensor*, const char*> inputs[] = {{&dk_out, "dk_out"}, {&dv_out, "dv_out"}, {&k_out, "k_out"},
                                                          {&v_out, "v_out"},   {&k, "k"},           {&v, "v"},
                                                          {&g, "g"}};
  for (const auto& [out, name] : {std::pair{&dk, "dk"}, {&dv, "dv"}, {&dg, "dg"}})
    for (const auto& [in, in_name] : inputs) check.apart(*out, name, *in, in_name);
  check.apart(dk, "dk", dv, "dv");
  check.apart(dk, "dk", dg, "dg");
  check.apart(dv, "dv", dg, "dg");
  RATPLUS_DISPATCH(k, recurrence_backward(dk, dv, dg, dk_out, dv_out, k_out, v_out, k, v, g, batch));
}

}  // namespace ratplus
