"""The LIF neuron over a whole time sequence, with a surrogate gradient.

Per step (the reference study's neuron, docs/method.md):
    H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau
    S[t] = Heaviside(H[t] - V_th)            (spike when H >= V_th)
    V[t] = H[t] (1 - S[t]) + V_reset S[t]    (V[-1] = V_reset)
Backward replaces dS/dH by the derivative of a surrogate at x = H - V_th (config key
snn.surrogate): "sigmoid", alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x)) (the
reference study's), or "atan", alpha / 2 / (1 + (pi / 2 * alpha * x)^2) (SpikingJelly's
surrogate.ATan, its default); the reset path is not detached.

Two implementations of the same maths:
- `lif_reference`: step by step with autograd through every step (the reference
  the tests and the benchmark compare against);
- `lif_fused`: one autograd node for the whole time loop, which saves only H and
  runs its own backward loop, with the kernels of an explicit backend: "cpp" (C++ on
  CPU, csrc/lif.cpp), "triton" (CUDA, `lif_triton`) or "torch" (the same loop in
  PyTorch ops). Every forward uses the reference's exact float operations, so spikes
  are identical, including inputs exactly on the threshold.

The division by tau is IEEE division on every device (`tau_divisor`): PyTorch's CUDA
kernels divide by a Python number as a multiplication by its rounded reciprocal, which
is exact only for a power of two (the study's tau = 2) and moves the membrane by an ulp
for tau = 1.5 or 3. So the reference, the PyTorch loop and the compiled kernels compute
the same membrane, spike for spike, on the CPU and on CUDA for any tau.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from snnflow.kernels import cpu_ops, lif_triton


SURROGATES = ("sigmoid", "atan")  # the compiled kernels take a surrogate by its index here
# config key snn.neuron: the LIF (the reference study's), SpikingJelly's IFNode (no leak) and
# ParametricLIFNode (the membrane's decay learned per layer, k = sigmoid(w) = 1 / tau)
NEURONS = ("lif", "if", "plif")


@dataclass(frozen=True)
class LIFParams:
    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    alpha: float = 4.0
    surrogate: str = "sigmoid"
    neuron: str = "lif"

    def __post_init__(self):
        # floats, whatever the config's YAML wrote (`tau: 2` is an int): the compiled
        # kernels specialise on the argument's type
        for name in ("tau", "v_threshold", "v_reset", "alpha"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate {self.surrogate!r}: one of {', '.join(SURROGATES)}")
        if self.neuron not in NEURONS:
            raise ValueError(f"neuron {self.neuron!r}: one of {', '.join(NEURONS)}")

    @property
    def surrogate_index(self):
        return SURROGATES.index(self.surrogate)


def tau_divisor(tau, like):
    """tau as the divisor of tensors like `like`, so that dividing by it rounds as IEEE
    division on every device: on CUDA a tensor, since PyTorch multiplies by the rounded
    reciprocal of a Python number divisor."""
    if like.is_cuda:
        return torch.full((), tau, dtype=like.dtype, device=like.device)
    return tau


def surrogate_grad(x, alpha, surrogate=0):
    """d Heaviside(x) / dx as the derivative of the surrogate of index `surrogate`
    (SURROGATES): sigmoid(alpha x), or SpikingJelly's ATan, 1 / pi * arctan(pi / 2 *
    alpha x) + 1 / 2."""
    if surrogate == 1:
        return alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
    sig = torch.sigmoid(alpha * x)
    return alpha * sig * (1 - sig)


class _SurrogateSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, surrogate):
        ctx.save_for_backward(x)
        ctx.alpha, ctx.surrogate = alpha, surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_spike):
        (x,) = ctx.saved_tensors
        return grad_spike * surrogate_grad(x, ctx.alpha, ctx.surrogate), None, None


def lif_step(x, v, p: LIFParams, decay=None):
    """One reference step: (spikes, next membrane potential); v=None starts at V_reset.
    The charge is the neuron's (p.neuron), as SpikingJelly's nodes compute it: LIF
    divides by tau, IF adds the input, PLIF multiplies by `decay` (sigmoid(w), a tensor
    with its gradient)."""
    if v is None:
        v = torch.full_like(x, p.v_reset)
    if p.neuron == "if":
        h = v + x
    elif p.neuron == "plif":
        h = v + (x - (v - p.v_reset)) * decay
    else:
        h = v + (x - (v - p.v_reset)) / tau_divisor(p.tau, x)
    s = _SurrogateSpike.apply(h - p.v_threshold, p.alpha, p.surrogate_index)
    return s, h * (1 - s) + p.v_reset * s


def lif_reference(x_seq, p: LIFParams, decay=None):
    """Step-by-step neuron over x_seq (T, ...) -> spikes (T, ...) (`decay`: PLIF's)."""
    v = None
    spikes = []
    for x in x_seq.unbind(0):  # unbind, not x_seq[t]: indexing makes backward O(T^2)
        s, v = lif_step(x, v, p, decay)
        spikes.append(s)
    return torch.stack(spikes)


BACKENDS = ("cpp", "triton", "torch")


def compiled_kernels(backend, x):
    """The compiled LIF kernels of `backend` for x, or None: the PyTorch loop runs for
    the "torch" backend, for other dtypes than float32 and when the kernels are
    unavailable."""
    if x.dtype != torch.float32:
        return None
    if backend == "cpp" and not x.is_cuda:
        return cpu_ops.load()
    if backend == "triton" and x.is_cuda:
        return lif_triton.load()
    return None


# The fused loop is registered as a custom operator (with its own autograd), so
# torch.compile traces through it instead of breaking the graph at every neuron.
@torch.library.custom_op("snnflow::lif_forward", mutates_args=())
def _lif_forward(x_seq: torch.Tensor, tau: float, v_threshold: float, v_reset: float,
                 alpha: float, surrogate: int, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, H) of the whole time loop (alpha and the surrogate's index are kept for
    the backward)."""
    kernels = compiled_kernels(backend, x_seq)
    if kernels is not None:
        return tuple(kernels.lif_forward(x_seq, tau, v_threshold, v_reset))
    return _forward_loop(x_seq, tau, v_threshold, v_reset)


@_lif_forward.register_fake
def _(x_seq, tau, v_threshold, v_reset, alpha, surrogate, backend):
    return torch.empty_like(x_seq), torch.empty_like(x_seq)


@torch.library.custom_op("snnflow::lif_backward", mutates_args=())
def _lif_backward(grad_spikes: torch.Tensor, h_seq: torch.Tensor, tau: float,
                  v_threshold: float, v_reset: float, alpha: float, surrogate: int,
                  backend: str) -> torch.Tensor:
    """dL/dX of the whole time loop from dL/dS and the saved H."""
    kernels = compiled_kernels(backend, h_seq)
    if kernels is not None:
        return kernels.lif_backward(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha,
                                    surrogate)
    return _backward_loop(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha, surrogate)


@_lif_backward.register_fake
def _(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha, surrogate, backend):
    return torch.empty_like(h_seq)


def _setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1])  # H: saved, never differentiated
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(output[1])
    ctx.params = inputs[1:]


def _backward(ctx, grad_spikes, _grad_h):
    (h_seq,) = ctx.saved_tensors
    return _lif_backward(grad_spikes, h_seq, *ctx.params), None, None, None, None, None, None


_lif_forward.register_autograd(_backward, setup_context=_setup_context)


def _forward_loop(x_seq, tau, v_threshold, v_reset):
    """The fused forward in PyTorch ops: no autograd graph, only H is kept."""
    h_seq = torch.empty_like(x_seq)
    spikes = torch.empty_like(h_seq)
    v = torch.full_like(h_seq[0], v_reset)
    divisor = tau_divisor(tau, x_seq)
    for t in range(x_seq.shape[0]):
        h = h_seq[t]
        torch.sub(v, v_reset, out=h)
        torch.sub(x_seq[t], h, out=h)
        h.div_(divisor).add_(v)
        fired = h >= v_threshold
        spikes[t].copy_(fired)
        v = torch.where(fired, v_reset, h)
    return spikes, h_seq


def _backward_loop(grad_spikes, h_seq, tau, v_threshold, v_reset, alpha, surrogate):
    grad_x = torch.empty_like(h_seq)
    grad_v = torch.zeros_like(h_seq[0])
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        fired = h >= v_threshold
        # dL/dS: from the output and through the reset V = H(1-S) + V_reset S
        grad_s = grad_spikes[t] + grad_v * (v_reset - h)
        grad_h = grad_s * surrogate_grad(h - v_threshold, alpha, surrogate)
        grad_h += torch.where(fired, 0.0, grad_v)
        torch.div(grad_h, tau, out=grad_x[t])
        grad_v = grad_h - grad_x[t]
    return grad_x


def lif_fused(x_seq, p: LIFParams, backend="torch"):
    """Fused LIF over x_seq (T, ...) -> spikes (T, ...): same values as lif_reference."""
    return _lif_forward(x_seq, p.tau, p.v_threshold, p.v_reset, p.alpha, p.surrogate_index,
                        backend)[0]


# The IF and the PLIF, fused the same way: one autograd node for the time loop, which
# saves H (and for the PLIF its input, for the decay's gradient), run by the C++ kernels
# (csrc/neuron.cpp) or the Triton kernels (lif_triton), else the loop in PyTorch ops. The
# C++ kernels take the decay as a number, the Triton kernels read it on the GPU (no copy
# to the host each step).
def decay_operand(decay, like):
    """The decay the fused IF / PLIF operators take: the PLIF's sigmoid(w), or for the IF
    (decay None) a placeholder of 1, which they ignore."""
    return like.new_ones(()) if decay is None else decay


def _decay_argument(backend, decay):
    return float(decay) if backend == "cpp" else decay


@torch.library.custom_op("snnflow::neuron_forward", mutates_args=())
def _neuron_forward(x_seq: torch.Tensor, decay: torch.Tensor, neuron: int, v_threshold: float,
                    v_reset: float, alpha: float, surrogate: int,
                    backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(spikes, H) of the IF's (neuron 1) or the PLIF's (neuron 2, of `decay` = sigmoid(w))
    whole time loop."""
    kernels = compiled_kernels(backend, x_seq)
    if kernels is not None:
        return tuple(kernels.neuron_forward(x_seq, neuron, _decay_argument(backend, decay),
                                            v_threshold, v_reset))
    return _neuron_forward_loop(x_seq, decay, neuron, v_threshold, v_reset)


@_neuron_forward.register_fake
def _(x_seq, decay, neuron, v_threshold, v_reset, alpha, surrogate, backend):
    return torch.empty_like(x_seq), torch.empty_like(x_seq)


@torch.library.custom_op("snnflow::neuron_backward", mutates_args=())
def _neuron_backward(grad_spikes: torch.Tensor, h_seq: torch.Tensor, x_seq: torch.Tensor,
                     decay: torch.Tensor, neuron: int, v_threshold: float, v_reset: float,
                     alpha: float, surrogate: int,
                     backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(dL/dX, dL/d decay) of the whole time loop from dL/dS, the saved H and X."""
    kernels = compiled_kernels(backend, h_seq)
    if kernels is not None:
        grad_x, grad_decay = kernels.neuron_backward(grad_spikes, h_seq, x_seq, neuron,
                                                     _decay_argument(backend, decay),
                                                     v_threshold, v_reset, alpha, surrogate)
        return grad_x, grad_decay.to(decay.dtype)
    return _neuron_backward_loop(grad_spikes, h_seq, x_seq, decay, neuron, v_threshold,
                                 v_reset, alpha, surrogate)


@_neuron_backward.register_fake
def _(grad_spikes, h_seq, x_seq, decay, neuron, v_threshold, v_reset, alpha, surrogate,
      backend):
    return torch.empty_like(h_seq), torch.empty_like(decay)


def _neuron_setup_context(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    x_seq, decay, neuron = inputs[:3]
    # the PLIF's decay gradient needs X; the IF's needs nothing but H
    ctx.save_for_backward(output[1], x_seq if neuron == NEURONS.index("plif") else output[1],
                          decay)
    ctx.params = inputs[2:]


def _neuron_backward_node(ctx, grad_spikes, _grad_h):
    h_seq, x_seq, decay = ctx.saved_tensors
    grad_x, grad_decay = _neuron_backward(grad_spikes, h_seq, x_seq, decay, *ctx.params)
    plif = ctx.params[0] == NEURONS.index("plif")
    return grad_x, grad_decay if plif else None, None, None, None, None, None, None


_neuron_forward.register_autograd(_neuron_backward_node, setup_context=_neuron_setup_context)


def _neuron_forward_loop(x_seq, decay, neuron, v_threshold, v_reset):
    """The IF / PLIF forward in PyTorch ops: the reference's operations, only H kept."""
    h_seq = torch.empty_like(x_seq)
    spikes = torch.empty_like(h_seq)
    v = torch.full_like(h_seq[0], v_reset)
    for t in range(x_seq.shape[0]):
        if neuron == NEURONS.index("if"):
            h = torch.add(v, x_seq[t], out=h_seq[t])
        else:
            h = torch.add(v, (x_seq[t] - (v - v_reset)) * decay, out=h_seq[t])
        fired = h >= v_threshold
        spikes[t].copy_(fired)
        v = torch.where(fired, v_reset, h)
    return spikes, h_seq


def _neuron_backward_loop(grad_spikes, h_seq, x_seq, decay, neuron, v_threshold, v_reset,
                          alpha, surrogate):
    plif = neuron == NEURONS.index("plif")
    grad_x = torch.empty_like(h_seq)
    grad_v = torch.zeros_like(h_seq[0])
    grad_decay = torch.zeros((), dtype=torch.float64, device=h_seq.device)
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        grad_s = grad_spikes[t] + grad_v * (v_reset - h)
        grad_h = grad_s * surrogate_grad(h - v_threshold, alpha, surrogate)
        grad_h += torch.where(h >= v_threshold, 0.0, grad_v)
        if not plif:
            grad_x[t] = grad_h
            grad_v = grad_h
            continue
        torch.mul(grad_h, decay, out=grad_x[t])
        grad_v = grad_h - grad_x[t]
        v = (torch.full_like(h, v_reset) if t == 0 else
             torch.where(h_seq[t - 1] >= v_threshold, v_reset, h_seq[t - 1]))
        grad_decay += (grad_h.double() * (x_seq[t] - (v - v_reset)).double()).sum()
    return grad_x, grad_decay.to(decay.dtype)


def neuron_fused(x_seq, p: LIFParams, decay, backend="torch"):
    """Fused IF or PLIF over x_seq (T, ...) -> spikes (T, ...): same values as
    lif_reference (`decay`: the PLIF's sigmoid(w), with its gradient)."""
    return _neuron_forward(x_seq, decay_operand(decay, x_seq), NEURONS.index(p.neuron), p.v_threshold, p.v_reset,
                           p.alpha, p.surrogate_index, backend)[0]


class LIF(nn.Module):
    """Multi-step spiking layer: input (T, N, ...) -> spikes (T, N, ...), the neuron of
    params.neuron (the LIF, IF or PLIF; the class keeps the LIF's name, the study's).

    engine "reference" runs `lif_reference`; engine "fused" runs `lif_fused` (an IF or
    PLIF layer `neuron_fused`) with the kernels of `backend` ("cpp", "triton" or "torch":
    snnflow.kernels.backends chooses). A PLIF layer learns w, its decay sigmoid(w) =
    1 / tau, initialised from params.tau as SpikingJelly's ParametricLIFNode:
    w = -ln(tau - 1)."""

    def __init__(self, params: LIFParams = LIFParams(), engine="fused", backend="torch"):
        super().__init__()
        if engine not in ("fused", "reference") or backend not in BACKENDS:
            raise ValueError(f"engine {engine!r}, backend {backend!r}")
        self.params = params
        self.engine = engine
        self.backend = backend
        if params.neuron == "plif":
            self.w = nn.Parameter(torch.tensor(-math.log(params.tau - 1.0)))

    @property
    def fused(self):
        """Whether the fused engine runs this layer (one autograd node for its time loop)."""
        return self.engine == "fused"

    def decay(self):
        """A PLIF layer's decay sigmoid(w), with its gradient (lif_reference's `decay`);
        None for the other neurons."""
        return torch.sigmoid(self.w) if self.params.neuron == "plif" else None

    def learned_tau(self):
        """A PLIF layer's tau, 1 / sigmoid(w); None for the other neurons."""
        return 1.0 / float(torch.sigmoid(self.w.detach())) if self.params.neuron == "plif" else None

    def forward(self, x_seq):
        # under autocast the membrane runs in float32: a half-precision H would move
        # threshold crossings; the 0/1 spikes are exact in any precision
        if x_seq.dtype in (torch.float16, torch.bfloat16):
            x_seq = x_seq.float()
        if not self.fused:
            return lif_reference(x_seq, self.params, self.decay())
        if self.params.neuron != "lif":
            return neuron_fused(x_seq, self.params, self.decay(), self.backend)
        return lif_fused(x_seq, self.params, self.backend)

    def forward_pooled(self, x_seq, count=False):
        """LIF, then 2x2 max-pooling of the spikes: (T, N, C, H, W) -> (T, N, C, H/2, W/2);
        with `count`, (pooled, spikes of the neurons inside the pooling windows).
        (snnflow.model.fused_block fuses both with the BatchNorm before them.)"""
        spikes = self(x_seq)
        pooled = nn.functional.max_pool2d(spikes.flatten(0, 1), 2).unflatten(0, x_seq.shape[:2])
        if not count:
            return pooled
        rows, cols = 2 * pooled.shape[-2], 2 * pooled.shape[-1]
        return pooled, spikes[..., :rows, :cols].sum()

    def extra_repr(self):
        p = self.params
        backend = f", backend={self.backend}" if self.engine == "fused" else ""
        return (f"{p.neuron}, tau={p.tau}, v_threshold={p.v_threshold}, v_reset={p.v_reset}, "
                f"{p.surrogate} surrogate alpha={p.alpha}, engine={self.engine}{backend}")
