"""What the check of one compiled path reports (snnflow.train.kernel_check runs the checks;
a ModelKind names its model's paths, e.g. snnflow.model.kernel_paths): shared by both
sides, so neither imports the other."""

from dataclasses import dataclass


@dataclass
class PathCheck:
    path: str
    passed: bool
    detail: str              # what was compared and the largest difference
    grad_diff: float = 0.0   # the largest gradient difference relative to the largest gradient


def relative_difference(ours, theirs):
    """The largest difference of two tensors relative to the largest value of `theirs`."""
    ours, theirs = ours.detach(), theirs.detach()
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))
