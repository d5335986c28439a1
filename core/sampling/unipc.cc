#include "core/sampling/unipc.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::core::sampling {
namespace {

// Scalar coefficients of one UniP or UniC update from sigma_s0 to sigma_t (data prediction form):
//   x_t = (sigma_t / sigma_s0) * x - alpha_t * h_phi_1 * m0 - alpha_t * B(h) * (sum_k rho_k D1_k)
struct Coefficients {
  double sigma_ratio = 0;     // sigma_t / sigma_s0
  double m0_scale = 0;        // alpha_t * h_phi_1
  double residual_scale = 0;  // alpha_t * B(h)
  std::vector<double> rks;    // (lambda_{s_k} - lambda_s0) / h, k = 1..order-1
  std::vector<double> rhos;   // predictor: order-1 values; corrector: order values
};

// Solves the small dense system a * x = b with partial pivoting, scaling the pivot column by the
// reciprocal of the pivot as LAPACK's getrf does (the official code calls torch.linalg.solve).
template <typename T>
std::vector<T> SolveSmall(std::vector<std::vector<T>> a, std::vector<T> b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t pivot = col;
    for (size_t row = col + 1; row < n; ++row) {
      if (std::abs(a[row][col]) > std::abs(a[pivot][col])) pivot = row;
    }
    std::swap(a[col], a[pivot]);
    std::swap(b[col], b[pivot]);
    const T inv = T(1) / a[col][col];
    for (size_t row = col + 1; row < n; ++row) {
      const T l = a[row][col] * inv;
      for (size_t k = col + 1; k < n; ++k) a[row][k] -= l * a[col][k];
      b[row] -= l * b[col];
    }
  }
  std::vector<T> x(n);
  for (size_t i = n; i-- > 0;) {
    T s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[i][k] * x[k];
    x[i] = s / a[i][i];
  }
  return x;
}

// T is float to reproduce the official float32 tensor arithmetic operation by operation, or double.
// `t` and `s0` index schedule.sigmas; the history points are s0 - 1, s0 - 2, ...
template <typename T>
Coefficients ComputeCoefficients(const std::vector<double>& sigmas, int64_t t, int64_t s0,
                                 int order, UniPCVariant variant, bool corrector) {
  auto lambda = [&](int64_t index) {
    const T sigma = static_cast<T>(sigmas[index]);
    const T alpha = T(1) - sigma;
    return std::log(alpha) - std::log(sigma);  // +inf at sigma == 0 (the final step)
  };
  const T sigma_t = static_cast<T>(sigmas[t]);
  const T sigma_s0 = static_cast<T>(sigmas[s0]);
  const T alpha_t = T(1) - sigma_t;
  const T lambda_s0 = lambda(s0);
  const T h = lambda(t) - lambda_s0;

  std::vector<T> rks;
  for (int k = 1; k < order; ++k) rks.push_back((lambda(s0 - k) - lambda_s0) / h);
  rks.push_back(T(1));

  // predict_x0: the exponential integrator runs in -h.
  const T hh = -h;
  const T h_phi_1 = std::expm1(hh);
  const T b_h = variant == UniPCVariant::kBh1 ? hh : std::expm1(hh);
  T h_phi_k = h_phi_1 / hh - T(1);
  int64_t factorial = 1;
  std::vector<T> b;
  for (int i = 1; i <= order; ++i) {
    b.push_back(h_phi_k * static_cast<T>(factorial) / b_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - static_cast<T>(1.0 / static_cast<double>(factorial));
  }
  // R[i][k] = rks[k]^i.
  auto r_matrix = [&](int n) {
    std::vector<std::vector<T>> r(n, std::vector<T>(n));
    for (int k = 0; k < n; ++k) {
      T p = T(1);
      for (int i = 0; i < n; ++i) {
        r[i][k] = p;
        p = i == 0 ? rks[k] : p * rks[k];
      }
    }
    return r;
  };

  std::vector<T> rhos;
  if (corrector) {
    rhos = order == 1 ? std::vector<T>{T(0.5)} : SolveSmall<T>(r_matrix(order), b);
  } else if (order == 2) {
    rhos = {T(0.5)};
  } else if (order > 2) {
    rhos = SolveSmall<T>(r_matrix(order - 1), std::vector<T>(b.begin(), b.end() - 1));
  }

  Coefficients c;
  c.sigma_ratio = static_cast<double>(sigma_t / sigma_s0);
  c.m0_scale = static_cast<double>(alpha_t * h_phi_1);
  c.residual_scale = static_cast<double>(alpha_t * b_h);
  for (int k = 0; k + 1 < order; ++k) c.rks.push_back(static_cast<double>(rks[k]));
  for (T r : rhos) c.rhos.push_back(static_cast<double>(r));
  return c;
}

Coefficients Compute(const std::vector<double>& sigmas, int64_t t, int64_t s0, int order,
                     const UniPCOptions& options, bool corrector) {
  return options.float32_coefficients
             ? ComputeCoefficients<float>(sigmas, t, s0, order, options.variant, corrector)
             : ComputeCoefficients<double>(sigmas, t, s0, order, options.variant, corrector);
}

// D1_k = (m_k - m0) / r_k for the history entries before the newest one (newest last in `history`).
std::vector<torch::Tensor> Differences(const std::vector<torch::Tensor>& history,
                                       const Coefficients& c) {
  std::vector<torch::Tensor> d;
  const torch::Tensor& m0 = history.back();
  for (size_t k = 0; k < c.rks.size(); ++k) {
    const torch::Tensor& mk = history[history.size() - 2 - k];
    d.push_back((mk - m0).div(c.rks[k]));  // [same as sample]
  }
  return d;
}

// sigma_ratio * x - m0_scale * m0 (two separately rounded products, as the official code).
torch::Tensor ExponentialPart(const Coefficients& c, const torch::Tensor& x,
                              const torch::Tensor& m0) {
  return x.mul(c.sigma_ratio).sub_(m0.mul(c.m0_scale));
}

// UniP: predicts the sample at step + 1 from the sample at `step`; history.back() is its x0.
torch::Tensor Predict(const FlowSchedule& schedule, const std::vector<torch::Tensor>& history,
                      const torch::Tensor& x, int64_t step, int order,
                      const UniPCOptions& options) {
  const Coefficients c = Compute(schedule.sigmas, step + 1, step, order, options, false);
  torch::Tensor x_t = ExponentialPart(c, x, history.back());
  const std::vector<torch::Tensor> d = Differences(history, c);
  if (!d.empty()) {
    torch::Tensor res = d[0].mul(c.rhos[0]);
    for (size_t k = 1; k < d.size(); ++k) res.add_(d[k].mul(c.rhos[k]));
    x_t.sub_(res.mul_(c.residual_scale));
  }
  return x_t.to(x.scalar_type());
}

// UniC: corrects `this_sample` (the prediction for `step`) using the x0 the model just gave for
// it; `last_sample` is the sample at step - 1 and history.back() its x0.
torch::Tensor Correct(const FlowSchedule& schedule, const std::vector<torch::Tensor>& history,
                      const torch::Tensor& this_x0, const torch::Tensor& last_sample,
                      const torch::Tensor& this_sample, int64_t step, int order,
                      const UniPCOptions& options) {
  const Coefficients c = Compute(schedule.sigmas, step, step - 1, order, options, true);
  const torch::Tensor& m0 = history.back();
  torch::Tensor x_t = ExponentialPart(c, last_sample, m0);
  const std::vector<torch::Tensor> d = Differences(history, c);
  torch::Tensor res = (this_x0 - m0).mul_(c.rhos.back());
  if (!d.empty()) {
    torch::Tensor corr = d[0].mul(c.rhos[0]);
    for (size_t k = 1; k < d.size(); ++k) corr.add_(d[k].mul(c.rhos[k]));
    res = corr.add_(res);
  }
  x_t.sub_(res.mul_(c.residual_scale));
  return x_t.to(last_sample.scalar_type());
}

}  // namespace

absl::Status ValidateUniPCOptions(const UniPCOptions& options) {
  if (options.order < 1 || options.order > 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("UniPC order must be 1, 2 or 3, got %d", options.order));
  }
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> UniPCStep(const FlowSchedule& schedule, UniPCState& state,
                                        int64_t step_index, const torch::Tensor& model_output,
                                        const torch::Tensor& sample, const UniPCOptions& options) {
  LV_RETURN_IF_ERROR(ValidateUniPCOptions(options));
  const int64_t steps = schedule.steps();
  if (steps < 1 || static_cast<int64_t>(schedule.sigmas.size()) != steps + 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "schedule must have steps >= 1 and steps + 1 sigmas, got %d steps and %d sigmas", steps,
        schedule.sigmas.size()));
  }
  if (step_index < 0 || step_index >= steps) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "UniPC step index must be in [0, %d) for this schedule, got %d", steps, step_index));
  }
  if (step_index != state.next_step) {
    return absl::FailedPreconditionError(
        absl::StrFormat("UniPC steps must be taken in order: this state expects step %d, got %d",
                        state.next_step, step_index));
  }
  if (!model_output.defined() || !sample.defined() || model_output.sizes() != sample.sizes()) {
    return absl::InvalidArgumentError(
        "UniPC model output and sample must be defined tensors of the same shape");
  }

  // Everything is computed into locals first so that a failure leaves `state` untouched.
  return TorchCall("UniPCStep", [&]() -> torch::Tensor {
    const double sigma = options.float32_coefficients
                             ? static_cast<double>(static_cast<float>(schedule.sigmas[step_index]))
                             : schedule.sigmas[step_index];
    const torch::Tensor x0 = sample - model_output.mul(sigma);  // data prediction

    torch::Tensor x = sample;
    const bool use_corrector =
        step_index > 0 && state.last_sample.defined() &&
        std::find(options.disable_corrector.begin(), options.disable_corrector.end(),
                  step_index - 1) == options.disable_corrector.end();
    if (use_corrector) {
      x = Correct(schedule, state.x0_history, x0, state.last_sample, sample, step_index,
                  static_cast<int>(state.last_order), options);
    }

    std::vector<torch::Tensor> history = state.x0_history;
    history.push_back(x0);
    if (static_cast<int>(history.size()) > options.order) history.erase(history.begin());
    int64_t order = options.order;
    if (options.lower_order_final) order = std::min(order, steps - step_index);
    order = std::min(order, state.lower_order_nums + 1);  // warm-up

    torch::Tensor next =
        Predict(schedule, history, x, step_index, static_cast<int>(order), options);

    state.x0_history = std::move(history);
    state.last_sample = x;
    state.last_order = order;
    if (state.lower_order_nums < options.order) ++state.lower_order_nums;
    state.next_step = step_index + 1;
    return next;
  });
}

}  // namespace linvideo::core::sampling
