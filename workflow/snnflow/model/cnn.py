"""The baseline of the study, the same network as snnflow.model.snn with ReLU, on the
dataset's static twin (MNIST for N-MNIST) or, where there is none, on event images (each
sample's events summed over time), and its training spec (cross-entropy of the logits)."""

import torch.nn.functional as F
from torch import nn

from snnflow.data.caches import load_event_images
from snnflow.data.mnist import load_images
from snnflow.model.architecture import (N_CLASSES, as_pair, block_sizes, conv_block, flat_size,
                                        input_size, layer_macs, refuse_too_small)
from snnflow.runs import ModelKind, layer_names


class CNN(nn.Module):
    """Input (N, C, H, W) float (MNIST: (N, 1, 28, 28) in [0, 1]) -> logits (N, n_classes)."""

    def __init__(self, channels=(32, 64, 128), hidden=256, in_channels=1, size=28,
                 n_classes=N_CLASSES):
        super().__init__()
        self.channels, self.hidden, self.n_classes = channels, hidden, n_classes
        self.in_channels, self.size = in_channels, as_pair(size)
        self.layers = layer_names(len(channels))
        layers = []
        c_in = in_channels
        for c_out in channels:
            layers += [*conv_block(c_in, c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        layers += [nn.Flatten(), nn.Linear(flat_size(channels, size), hidden, bias=False),
                   nn.ReLU(inplace=True), nn.Linear(hidden, n_classes, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)

    def layer_macs(self):
        """Multiply-accumulates per sample of each layer, from the shapes (convolutions
        count only weights that meet an input pixel, not the zero padding)."""
        return layer_macs(self.in_channels, self.channels, self.size, self.hidden,
                          self.n_classes)


class OpsRecord:
    """The CNN's counterpart of snnflow.model.snn.SpikeRecord: no spikes, MACs per layer."""

    def __init__(self, model):
        self.model = model

    def forward(self, x):
        return self.model(x)

    def rows(self):
        model = self.model
        sizes = dict(zip(model.layers, block_sizes(model.size, len(model.channels))))
        units = {layer: c * sizes[layer][0] * sizes[layer][1]
                 for layer, c in zip(model.layers, model.channels)}
        units.update(fc1=model.hidden, fc2=model.n_classes)
        return [{"layer": layer, "neurons": units[layer], "firing_rate": float("nan"),
                 "synaptic_ops": 0, "macs": macs}
                for layer, macs in self.model.layer_macs().items()]


def _cross_entropy(out, y):
    """Cross-entropy of the logits; the logits are the class scores."""
    return F.cross_entropy(out, y), out


def _build(s, backend):
    in_channels, size, classes = input_size(s, 1, 28)
    refuse_too_small(s.channels, size, "cnn.channels")
    return CNN(s.channels, s.hidden, in_channels, size, n_classes=classes)


def _has_images(cache):
    """Whether `cache` holds MNIST's images (else event images: a T=1 frame cache)."""
    from snnflow.data.caches import open_checked

    with open_checked(cache, []) as h5:
        return "train/images" in h5


def _load(cache, split):
    """MNIST's images, or event images where the dataset has no static twin."""
    return load_images(cache, split) if _has_images(cache) else load_event_images(cache, split)


def _scale(cache):
    """Images to [0, 1]; event images as counts, as the SNN sees its frames (at 1/255 their
    small values would leave BatchNorm's running variance, which starts at 1, far above
    theirs for many epochs: test accuracy at chance while training is learning)."""
    return 1.0 / 255.0 if _has_images(cache) else 1.0


KIND = ModelKind(name="cnn", load=_load, time_major=False, scale=_scale,
                 choose_backend=lambda s, device: ("torch", None),
                 build=_build, loss=_cross_entropy,
                 new_record=OpsRecord,
                 compiled_paths=lambda *args: ([], "the CNN runs PyTorch's own ops"))
