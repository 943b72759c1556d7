// CPU element-wise ops. One helper walks two-to-four same-shaped strided views row by row.
#include "kernels/cpu/cpu_ops.h"

#include <cmath>

#include "kernels/cpu/common.h"

namespace ratplus::cpu {

namespace {

template <class T, class F>
void for_each_element(const Tensor& shape, F&& f) {
#pragma omp parallel for
  for (int64_t r = 0; r < shape.rows; ++r)
    for (int64_t c = 0; c < shape.cols; ++c) f(r, c);
}

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace

void sigmoid_gate_forward(Tensor y, const Tensor& x, const Tensor& gate) {
  with_cpu_float(y.dtype, __func__, [&]<class T>() {
    for_each_element<T>(y, [&](int64_t r, int64_t c) { at<T>(y, r, c) = at<T>(x, r, c) * sigmoid(at<T>(gate, r, c)); });
  });
}

void sigmoid_gate_backward(Tensor dx, Tensor dgate, const Tensor& dy, const Tensor& x, const Tensor& gate) {
  with_cpu_float(dy.dtype, __func__, [&]<class T>() {
    for_each_element<T>(dy, [&](int64_t r, int64_t c) {
      const T s = sigmoid(at<T>(gate, r, c));
      const T g = at<T>(dy, r, c);
      at<T>(dgate, r, c) = g * at<T>(x, r, c) * s * (T(1) - s);
      at<T>(dx, r, c) = g * s;
    });
  });
}

void gelu_forward(Tensor y, const Tensor& x) {
  with_cpu_float(y.dtype, __func__, [&]<class T>() {
    for_each_element<T>(y, [&](int64_t r, int64_t c) {
      const T v = at<T>(x, r, c);
      at<T>(y, r, c) = T(0.5) * v * (T(1) + std::erf(v * T(M_SQRT1_2)));
    });
  });
}

void gelu_backward(Tensor dx, const Tensor& dy, const Tensor& x) {
  with_cpu_float(dy.dtype, __func__, [&]<class T>() {
    const T inv_sqrt_2pi = T(0.3989422804014327);
    for_each_element<T>(dy, [&](int64_t r, int64_t c) {
      const T v = at<T>(x, r, c);
      const T cdf = T(0.5) * (T(1) + std::erf(v * T(M_SQRT1_2)));
      const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
      at<T>(dx, r, c) = at<T>(dy, r, c) * (cdf + v * pdf);
    });
  });
}

void add_inplace(Tensor y, const Tensor& x) {
  with_cpu_float(y.dtype, __func__, [&]<class T>() {
    for_each_element<T>(y, [&](int64_t r, int64_t c) { at<T>(y, r, c) += at<T>(x, r, c); });
  });
}

void convert(Tensor dst, const Tensor& src) {
  with_cpu_float(dst.dtype, __func__, [&]<class To>() {
    with_cpu_float(src.dtype, __func__, [&]<class From>() {
      for_each_element<To>(dst, [&](int64_t r, int64_t c) { at<To>(dst, r, c) = static_cast<To>(at<From>(src, r, c)); });
    });
  });
}

}  // namespace ratplus::cpu
