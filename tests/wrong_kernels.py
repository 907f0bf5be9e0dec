"""A kernel made wrong on purpose, for the kernel check's tests: the C++ operators with the
fused LIF losing the spikes of membranes just above the threshold, as a wrong comparison
in a kernel would."""


class WrongLif:
    def __init__(self, ops):
        self.ops = ops

    def __getattr__(self, name):
        return getattr(self.ops, name)

    def lif_forward(self, x, tau, v_th, v_reset):
        spikes, h = self.ops.lif_forward(x, tau, v_th, v_reset)
        return spikes * (h > v_th + 0.05), h
