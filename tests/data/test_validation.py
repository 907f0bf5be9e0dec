"""The validation split (snnflow.data.validation): stratified, disjoint, reproducible."""

import numpy as np
import pytest

from snnflow.data.validation import held_out, split_identity


def labels_of(counts, rng):
    """Shuffled labels with counts[c] samples of class c."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def test_each_class_gives_its_share(rng):
    counts = [100, 57, 10, 3, 2, 80, 41, 66, 19, 1]
    labels = labels_of(counts, rng)
    mask = held_out(labels, 0.1, seed=5)
    for c, n in enumerate(counts):
        want = min(max(round(0.1 * n), 1 if n >= 2 else 0), n - 1)
        assert mask[labels == c].sum() == want, (c, n)
    assert (~mask)[labels == 9].all()  # the lone sample of a class stays in training


def test_the_split_depends_on_labels_fraction_and_seed_only(rng):
    labels = labels_of([30] * 10, rng)
    first = held_out(labels, 0.2, seed=1)
    assert (held_out(labels.copy(), 0.2, seed=1) == first).all()
    assert split_identity(held_out(labels, 0.2, seed=1)) == split_identity(first)
    other = held_out(labels, 0.2, seed=2)
    assert other.sum() == first.sum() and (other != first).any()
    assert split_identity(other) != split_identity(first)


def test_no_fraction_holds_out_nothing(rng):
    labels = labels_of([5] * 10, rng)
    assert not held_out(labels, 0.0, seed=0).any()


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_training_keeps_a_sample_of_every_class(rng, fraction):
    labels = labels_of([2] * 10, rng)
    mask = held_out(labels, fraction, seed=0)
    assert set(labels[~mask]) == set(range(10)) and set(labels[mask]) == set(range(10))
