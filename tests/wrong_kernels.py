"""Kernels made to differ on purpose, for the kernel checks' tests: wrong ones, which the
checks must catch, and one that rounds as a GPU does, which they must pass."""

import torch


class _Wrapped:
    def __init__(self, ops):
        self.ops = ops

    def __getattr__(self, name):
        return getattr(self.ops, name)


class WrongLif(_Wrapped):
    """The fused LIF losing the spikes of membranes just above the threshold, as a wrong
    comparison in a kernel would."""

    def lif_forward(self, x, tau, v_th, v_reset):
        spikes, h = self.ops.lif_forward(x, tau, v_th, v_reset)
        return spikes * (h > v_th + 0.05), h


class WrongSlopeLif(_Wrapped):
    """A surrogate gradient 1 % too steep: spikes right, gradients slightly wrong."""

    def lif_backward(self, grad_spikes, h_seq, tau, v_th, v_reset, alpha, surrogate):
        return self.ops.lif_backward(grad_spikes, h_seq, tau, v_th, v_reset, alpha * 1.01,
                                     surrogate)


class NoResetPathLif(_Wrapped):
    """A backward that detaches the reset (no gradient through V = H (1 - S)), a common
    slip: the reference does not detach it."""

    def lif_backward(self, grad_spikes, h_seq, tau, v_th, v_reset, alpha, surrogate):
        grad_x, grad_v = torch.empty_like(h_seq), torch.zeros_like(h_seq[0])
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            sig = torch.sigmoid(alpha * (h - v_th))
            grad_h = grad_spikes[t] * alpha * sig * (1 - sig) + torch.where(h >= v_th, 0.0,
                                                                           grad_v)
            grad_x[t] = grad_h / tau
            grad_v = grad_h - grad_x[t]
        return grad_x


def _fma(a, b, c):
    """a * b + c rounded once to float32, as a GPU's fused multiply-add."""
    return (a.double() * b.double() + c.double()).float()


class GpuRoundingLif(_Wrapped):
    """The right backward with a GPU's rounding, as the compiled Triton kernel computes
    it: `tl.sigmoid` as ex2.approx and div.full (each sigmoid moved by up to 2 ulp
    here, at random) and multiply-adds contracted into fma."""

    def lif_backward(self, grad_spikes, h_seq, tau, v_th, v_reset, alpha, surrogate):
        generator = torch.Generator().manual_seed(0)
        grad_x, grad_v = torch.empty_like(h_seq), torch.zeros_like(h_seq[0])
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            sig = torch.sigmoid(alpha * (h - v_th))
            ulp = torch.nextafter(sig, torch.full_like(sig, 2.0)) - sig
            sig = sig + ulp * torch.randint(-2, 3, sig.shape, generator=generator)
            grad_s = _fma(grad_v, v_reset - h, grad_spikes[t])
            grad_h = _fma(grad_s, alpha * sig * (1 - sig), torch.where(h >= v_th, 0.0, grad_v))
            grad_x[t] = grad_h / tau
            grad_v = grad_h - grad_x[t]
        return grad_x
