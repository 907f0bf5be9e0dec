"""The validation split: a class-stratified part of a training split held out for choosing
the epoch, never trained on (config keys validation.fraction, validation.seed).

The split is a function of the labels, the fraction and the seed only. Every SNN of a
study reads the same recordings in the same order (one frame cache per T), so all of
them and all their seeds hold out the same samples, and paired comparisons see the same
split. The CNN's MNIST split is chosen by the same rule from its own labels.
"""

import hashlib

import numpy as np


def held_out(labels, fraction, seed):
    """A boolean mask over `labels`: True for the validation samples. Of each class's
    n samples, round(fraction * n) are held out, at least one where the class has two or
    more and always leaving one to train on; which ones is drawn by `seed`, class by
    class in the order of the classes."""
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n = len(members)
        count = min(max(int(round(fraction * n)), 1 if n >= 2 else 0), n - 1)
        mask[rng.choice(members, size=count, replace=False)] = True
    return mask


def split_identity(mask):
    """A short hash of which samples a mask holds out, for run.json: equal identities
    mean the same split."""
    return hashlib.sha256(np.flatnonzero(mask).astype(np.int64).tobytes()).hexdigest()[:16]
