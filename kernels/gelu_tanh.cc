#include "kernels/gelu_tanh.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/gelu_tanh_cpu.h"

namespace linvideo::kernels {
namespace {

// The kernel on a contiguous CPU tensor into `out` (same dtype and size; may be `x` itself).
void Forward(const torch::Tensor& x, torch::Tensor& out) {
  if (x.scalar_type() == at::kFloat) {
    gelu_cpu::ForwardF32(x.data_ptr<float>(), out.data_ptr<float>(), x.numel());
  } else {
    gelu_cpu::ForwardBf16(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                          reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), x.numel());
  }
}

torch::Tensor ForwardNoGrad(const torch::Tensor& x) {
  const torch::Tensor in = x.contiguous();
  torch::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  Forward(in, out);
  return out;
}

struct GeluTanhFunction : public torch::autograd::Function<GeluTanhFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return ForwardNoGrad(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    // With create_graph the gradient must itself be differentiable: LibTorch's op is.
    if (at::GradMode::is_enabled()) return {at::gelu_backward(grads[0], x, "tanh")};
    return {GeluTanhBackward(grads[0], x)};
  }
};

}  // namespace

bool GeluTanhCpuApplies(const torch::Tensor& x) {
  return x.defined() && x.device().is_cpu() && !x.is_sparse() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16);
}

torch::Tensor GeluTanh(const torch::Tensor& x) {
  if (!GeluTanhCpuApplies(x)) return at::gelu(x, "tanh");
  if (at::GradMode::is_enabled() && x.requires_grad()) return GeluTanhFunction::apply(x);
  return ForwardNoGrad(x);
}

torch::Tensor& GeluTanh_(torch::Tensor& x) {
  TORCH_CHECK(!(at::GradMode::is_enabled() && x.requires_grad()),
              "GeluTanh_ is for inference: the tensor requires grad; use GeluTanh");
  if (!GeluTanhCpuApplies(x)) return at::gelu_(x, "tanh");
  if (x.is_contiguous()) {
    Forward(x, x);
  } else {
    x.copy_(ForwardNoGrad(x));
  }
  return x;
}

torch::Tensor GeluTanhBackward(const torch::Tensor& grad, const torch::Tensor& x) {
  TORCH_CHECK(grad.sizes() == x.sizes(), "GeluTanhBackward: grad ", grad.sizes(), " and x ",
              x.sizes(), " must have the same shape");
  if (!GeluTanhCpuApplies(x) || !GeluTanhCpuApplies(grad) ||
      grad.scalar_type() != x.scalar_type()) {
    return at::gelu_backward(grad, x, "tanh");
  }
  const torch::Tensor g = grad.contiguous(), in = x.contiguous();
  torch::Tensor out = at::empty_like(in, at::MemoryFormat::Contiguous);
  if (in.scalar_type() == at::kFloat) {
    gelu_cpu::BackwardF32(g.data_ptr<float>(), in.data_ptr<float>(), out.data_ptr<float>(),
                          in.numel());
  } else {
    gelu_cpu::BackwardBf16(reinterpret_cast<const uint16_t*>(g.data_ptr<at::BFloat16>()),
                           reinterpret_cast<const uint16_t*>(in.data_ptr<at::BFloat16>()),
                           reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), in.numel());
  }
  return out;
}

}  // namespace linvideo::kernels
