"""The reference execution of the benchmarks and of gpu-check: the CSNN run one time step at a time.

Single-step SNN frameworks execute a network like this: every layer sees one time step
of N samples, and each LIF keeps its membrane between calls (here with the reference
step, autograd through every step). In training mode BatchNorm then normalises each
step's N samples instead of all T*N, so only eval-mode outputs equal the multi-step
network's (tests/model/test_step_by_step.py checks that).
"""

import torch
from torch import nn

from snnflow.model.neuron import lif_step


def forward_step_by_step(model, x_seq):
    """model (a snnflow.model.snn.CSNN) applied to x_seq (T, N, 2, 34, 34) step by step."""
    neurons = [*model.neurons, model.lif1, model.lif2]
    states = [None] * len(neurons)
    outputs = []
    for x in x_seq.unbind(0):
        y = x
        for k, conv in enumerate(model.convs):
            y, states[k] = lif_step(conv(y), states[k], neurons[k].params)
            y = nn.functional.max_pool2d(y, 2)
        y, states[-2] = lif_step(model.fc1(y.flatten(1)), states[-2], model.lif1.params)
        y, states[-1] = lif_step(model.fc2(y), states[-1], model.lif2.params)
        outputs.append(y)
    return torch.stack(outputs)
