"""The LIF neuron's per-step maths (and the IF's and PLIF's) as Triton device functions, the one definition every
Triton kernel uses (as csrc/lif_step.h is for the C++ kernels; snnflow.model.neuron holds
the equations). Division is IEEE round-to-nearest (div_rn), as the reference divides on
every device (snnflow.model.neuron.tau_divisor), so the spikes are bit-identical to the
reference's. Imported only where Triton is installed.
"""

import triton
import triton.language as tl


@triton.jit
def charge(v, x, tau, v_reset):
    """H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau."""
    return v + tl.math.div_rn(x - (v - v_reset), tau)


@triton.jit
def fire(h, v_th, v_reset):
    """(S[t] as a boolean, V[t]): a spike where H[t] >= V_th, which resets to V_reset."""
    fired = h >= v_th
    return fired, tl.where(fired, v_reset, h)


@triton.jit
def surrogate_derivative(x, alpha, SURROGATE: tl.constexpr):
    """d Heaviside(x) / dx as the derivative of the surrogate of index SURROGATE
    (snnflow.model.neuron.SURROGATES): sigmoid(alpha x), or SpikingJelly's ATan."""
    if SURROGATE == 1:
        z = 1.5707963267948966 * alpha * x
        return 0.5 * alpha / (1.0 + z * z)
    else:
        sig = tl.sigmoid(alpha * x)
        return alpha * sig * (1.0 - sig)


@triton.jit
def backward_step(h, grad_spike, grad_v, tau, v_th, v_reset, alpha, SURROGATE: tl.constexpr):
    """One step back in time: (dL/dX[t], dL/dV[t-1]) from H[t], dL/dS[t] and dL/dV[t],
    with the surrogate SURROGATE of slope alpha for the Heaviside step."""
    grad_s = grad_spike + grad_v * (v_reset - h)
    grad_h = (grad_s * surrogate_derivative(h - v_th, alpha, SURROGATE)
              + tl.where(h >= v_th, 0.0, grad_v))
    grad_x = tl.math.div_rn(grad_h, tau)
    return grad_x, grad_h - grad_x


@triton.jit
def charge_of(v, x, decay, v_reset, NEURON: tl.constexpr):
    """H[t] of the IF (NEURON 1: V[t-1] + X[t]) or the PLIF (NEURON 2: V[t-1] + (X[t] -
    (V[t-1] - V_reset)) k, k = sigmoid(w)), the product rounded before the sum (kernels
    compiled without contracted multiply-adds), as PyTorch's two ops round it."""
    if NEURON == 1:
        return v + x
    else:
        return v + (x - (v - v_reset)) * decay


@triton.jit
def neuron_backward_step(h, grad_spike, grad_v, decay, v_th, v_reset, alpha,
                         SURROGATE: tl.constexpr, NEURON: tl.constexpr):
    """backward_step of the IF or PLIF: (dL/dX[t], dL/dV[t-1], dL/dH[t]), with dH/dX = 1
    and dH/dV[t-1] = 1 for the IF, k and 1 - k for the PLIF."""
    grad_s = grad_spike + grad_v * (v_reset - h)
    grad_h = (grad_s * surrogate_derivative(h - v_th, alpha, SURROGATE)
              + tl.where(h >= v_th, 0.0, grad_v))
    if NEURON == 1:
        return grad_h, grad_h, grad_h
    else:
        grad_x = grad_h * decay
        return grad_x, grad_h - grad_x, grad_h
