"""The baseline of the study, the same network as snnflow.snn with ReLU, on MNIST, and
its training spec (cross-entropy of the logits)."""

import torch.nn.functional as F
from torch import nn

from .architecture import N_CLASSES, conv_block, flat_size
from .mnist import load_images
from .training import ModelKind


class CNN(nn.Module):
    """Input (N, 1, 28, 28) float in [0, 1] -> logits (N, 10)."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=1, size=28):
        super().__init__()
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


def _cross_entropy(out, y):
    """Cross-entropy of the logits; the logits are the class scores."""
    return F.cross_entropy(out, y), out


KIND = ModelKind(name="cnn", load=load_images, time_major=False, scale=1.0 / 255.0,
                 choose_backend=lambda s, device: ("torch", None),
                 build=lambda s, backend: CNN(s.channels, s.hidden), loss=_cross_entropy)
