"""A run's trained network, as NeuroBench's hooks need to see it.

NeuroBench finds a network's connection layers (nn.Conv2d, nn.Linear) and activation
layers (nn.ReLU, nn.Sigmoid, snnTorch's neurons, and any class registered with
NeuroBenchModel.add_activation_module) among the modules of `__net__()`, and counts what
forward hooks on them see. The CNN is such a network as it is. The CSNN is not: its
fused engine calls kernels, not modules, and its LIF neurons are the project's own class.
`SpikingView` therefore runs the trained CSNN's own modules (convolutions, BatchNorm,
LIF layers on the reference engine, fully connected layers) one by one through their
module calls, and the harness registers the LIF class as an activation module: every
spiking layer is seen, and the spikes are those of the trained network.

Registering the class was chosen over the NIR export imported into snnTorch: the
snnTorch import changes the network (BatchNorm folded into the convolutions, a threshold
rule and dt of its own, NIR's strict threshold), so NeuroBench would score a converted
network, not the trained one.
"""

from torch import nn

from snnflow.model.neuron import LIF


def trained_network(model_pt):
    """(the network of a run's model.pt, SNN or CNN, in eval mode; its RunSettings)."""
    from snnflow.model import cnn, snn
    from snnflow.model.saved import load_trained

    return load_trained(model_pt, {"snn": snn.KIND, "cnn": cnn.KIND})


class SpikingView(nn.Module):
    """The trained CSNN `net` (reference engine) taking NeuroBench's layout, input
    (N, T, P, H, W) -> output spikes (N, T, classes), each layer called as a module.

    A block's LIF neurons run on the pooling windows only: with an odd map size,
    max-pooling drops the last row and column, and the project's fused block does not
    compute those neurons (snnflow.model.fused_block), so neither NeuroBench nor the
    project counts them. The output is the CSNN's, the neurons elementwise."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        net = self.net
        x_seq = x.transpose(0, 1)
        T, N = x_seq.shape[:2]
        y = x_seq.flatten(0, 1)
        for (conv, bn), lif in zip(net.convs, net.neurons):
            y = bn(conv(y))
            h, w = y.shape[-2:]
            spikes = lif(y[..., :2 * (h // 2), :2 * (w // 2)].unflatten(0, (T, N)))
            y = nn.functional.max_pool2d(spikes.flatten(0, 1), 2)
        hidden = net.lif1(net.fc1(y.flatten(1)).unflatten(0, (T, N)))
        return net.lif2(net.fc2(hidden)).transpose(0, 1)


ACTIVATION_CLASSES = (LIF,)  # registered with NeuroBench beside its own (ReLU, Sigmoid)
