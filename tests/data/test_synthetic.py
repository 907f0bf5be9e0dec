import numpy as np

from snnflow.data.mnist import read_split
from snnflow.data.nmnist import list_recordings, recording_statistics
from snnflow.data.synthetic import write_dataset


def test_synthetic_data_looks_like_n_mnist(tmp_path):
    write_dataset(tmp_path, train_per_class=2, test_per_class=1, seed=3)
    train = list_recordings(tmp_path / "NMNIST" / "Train")
    test = list_recordings(tmp_path / "NMNIST" / "Test")
    assert len(train) == 20 and len(test) == 10
    assert sorted({label for _, label in train}) == list(range(10))
    stats = recording_statistics([tmp_path / "NMNIST" / "Train" / name for name, _ in train])
    # real recordings (shared fixtures): ~4,200 events, ~306 ms, ON fraction ~0.50
    assert 3000 < stats["events"][0] < 5500
    assert 295_000 < stats["duration_us"][0] < 315_000
    assert 0.45 < stats["on_fraction"][0] < 0.55


def test_synthetic_mnist_matches_the_event_data(tmp_path):
    write_dataset(tmp_path, train_per_class=3, test_per_class=2, seed=0)
    images, labels = read_split(tmp_path / "MNIST", "train")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [3] * 10
    assert images.max() == 255 and (images > 0).mean() < 0.5  # digits on black
    _, test_labels = read_split(tmp_path / "MNIST", "test")
    assert len(test_labels) == 20
