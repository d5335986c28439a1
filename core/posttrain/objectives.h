#pragma once
// The training objectives of LinVideo's selective transfer, for rectified-flow models
// (x_t = (1 − t)·x0 + t·ε, velocity u = ε − x0, t in (0, 1]):
//
//  * ADM, anytime distribution matching: the reverse KL between the student's and the teacher's
//    sample distributions at a timestep t of the sampling trajectory. Its gradient is
//      ∇θ = E[ −(s_t(x̂_t) − ŝ_t(x̂_t)) · ∂x̂_t/∂θ ],   s_t − ŝ_t = −((1 − t)/t)·(u_teacher −
//      u_student)
//    (teacher score s, student score ŝ, both at the student's own sample x̂_t; the scores come from
//    the velocities since s(x) = −(x + (1 − t)·u(x))/t). The student estimates its own score, so
//    there is no fake-score network. AdmLoss is a surrogate scalar whose gradient w.r.t. x̂_t is
//    exactly that, with the velocities treated as constants (stop-gradient).
//  * MSE on cached velocities: the baseline the paper compares against.
// Pure functions; thread-safe.

#include <torch/types.h>

#include <vector>

namespace linvideo::core::posttrain {

// Smallest t the ADM weight (1 − t)/t is evaluated at (t → 0 would weight a step by ~1/t).
inline constexpr double kAdmMinT = 1e-3;

struct AdmTerms {
  // Surrogate: mean over elements of w_b·⟨sg(u_teacher − u_student), x̂⟩ with w_b = (1 − t_b)/t_b.
  // Only its gradient means something: ∂/∂x̂ = w_b·(u_teacher − u_student) / numel.
  torch::Tensor surrogate;  // []
  // Mean squared velocity gap between teacher and student at x̂ (for the log; no gradient).
  torch::Tensor velocity_gap;  // []
};

// x_hat [B, ...] the student's samples (carrying the graph to θ); u_teacher, u_student [B, ...] the
// two models' velocities at x_hat; t [B] in (0, 1] (clamped below at kAdmMinT). sample_weight
// [B] (optional, no gradient): an extra per-sample time weighting, multiplied into w_b (the
// expectation over timesteps may be weighted; see AdmTimeWeights).
AdmTerms AdmLoss(const torch::Tensor& x_hat, const torch::Tensor& u_teacher,
                 const torch::Tensor& u_student, const torch::Tensor& t,
                 const torch::Tensor& sample_weight = {});

// How ADM weighs the timesteps of a trajectory when x̂ is one solver step from a cached point,
// x̂ = x_i + (σ_{i+1} − σ_i)·u_student(x_i) + const:
//  * kPaper: the score difference as it is, so a sample at step i moves the student's velocity
//    at x_i by |σ_{i+1} − σ_i|·(1 − σ_{i+1})/σ_{i+1}·(u_teacher − u_student). On a shifted
//    50-step schedule that factor spans four orders of magnitude (1e-5 at the first step, 0.17 at
//    the last but one) and the first half of the trajectory, where layout and shape are decided,
//    gets ~2% of the gradient.
//  * kUniform: each step weighs the same in velocity units (the MSE baseline's weighting), the
//    mean weight over the schedule unchanged (so λ keeps its balance against the objective).
enum class AdmWeighting { kPaper, kUniform };

// Per-step extra weights for AdmLoss, one per step i whose next sigma is > 0 (sigmas has
// steps + 1 entries, decreasing, ending at 0): 1 for kPaper; for kUniform
// c / (|σ_{i+1} − σ_i|·(1 − σ_{i+1})/σ_{i+1}) with c the mean of that factor over the steps.
std::vector<double> AdmTimeWeights(const std::vector<double>& sigmas, AdmWeighting weighting);

// Mean squared error between the student's velocity and the teacher's cached one.
torch::Tensor VelocityMseLoss(const torch::Tensor& u_student, const torch::Tensor& u_teacher);

}  // namespace linvideo::core::posttrain
