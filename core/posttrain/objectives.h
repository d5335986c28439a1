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
// two models' velocities at x_hat; t [B] in (0, 1] (clamped below at kAdmMinT).
AdmTerms AdmLoss(const torch::Tensor& x_hat, const torch::Tensor& u_teacher,
                 const torch::Tensor& u_student, const torch::Tensor& t);

// Mean squared error between the student's velocity and the teacher's cached one.
torch::Tensor VelocityMseLoss(const torch::Tensor& u_student, const torch::Tensor& u_teacher);

}  // namespace linvideo::core::posttrain
