"""The baseline of the study, the same network as snnflow.model.snn with ReLU, on MNIST, and
its training spec (cross-entropy of the logits)."""

import torch.nn.functional as F
from torch import nn

from snnflow.data.mnist import load_images
from snnflow.model.architecture import N_CLASSES, block_sizes, conv_block, conv_macs, flat_size
from snnflow.runs import LAYERS, ModelKind


class CNN(nn.Module):
    """Input (N, 1, 28, 28) float in [0, 1] -> logits (N, 10)."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=1, size=28):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.in_channels, self.size = in_channels, size
        layers = []
        c_in = in_channels
        for c_out in channels:
            layers += [*conv_block(c_in, c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        layers += [nn.Flatten(), nn.Linear(flat_size(channels, size), hidden, bias=False),
                   nn.ReLU(inplace=True), nn.Linear(hidden, N_CLASSES, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

    def layer_macs(self):
        """Multiply-accumulates per sample of each layer, from the shapes (convolutions
        count only weights that meet an input pixel, not the zero padding)."""
        c_in, macs = self.in_channels, {}
        for layer, c_out, size in zip(LAYERS, self.channels, block_sizes(self.size)):
            macs[layer] = conv_macs(c_in, c_out, size)
            c_in = c_out
        macs["fc1"] = flat_size(self.channels, self.size) * self.hidden
        macs["fc2"] = self.hidden * N_CLASSES
        return macs


class OpsRecord:
    """The CNN's counterpart of snnflow.model.snn.SpikeRecord: no spikes, MACs per layer."""

    def __init__(self, model):
        self.model = model

    def forward(self, x):
        return self.model(x)

    def rows(self):
        sizes = dict(zip(LAYERS, block_sizes(self.model.size)))
        units = {layer: c * sizes[layer] ** 2 for layer, c in zip(LAYERS, self.model.channels)}
        units.update(fc1=self.model.hidden, fc2=N_CLASSES)
        return [{"layer": layer, "neurons": units[layer], "firing_rate": float("nan"),
                 "synaptic_ops": 0, "macs": macs}
                for layer, macs in self.model.layer_macs().items()]


def _cross_entropy(out, y):
    """Cross-entropy of the logits; the logits are the class scores."""
    return F.cross_entropy(out, y), out


KIND = ModelKind(name="cnn", load=load_images, time_major=False, scale=1.0 / 255.0,
                 choose_backend=lambda s, device: ("torch", None),
                 build=lambda s, backend: CNN(s.channels, s.hidden), loss=_cross_entropy,
                 new_record=OpsRecord,
                 compiled_paths=lambda *args: ([], "the CNN runs PyTorch's own ops"))
