"""What data the study used, from the caches the data stages wrote: a row per split and
one test sample of each class as the networks see it.

- dataset.csv: per dataset and split, the number of samples in all and per class
  (class_<label>), events per sample (mean, min, max), how many test samples are
  identical to a training sample (test_in_train: the test split then measures memory,
  not generalisation; the report warns), how many have fewer events than each T
  (fewer_events_than_T<T>: all their frames but the last are empty; the report warns)
  and where the data came from;
- examples.npz: the class names (`classes`, in label order) and, for each of the first
  MAX_EXAMPLE_CLASSES classes, the first test sample's name and frames at every T and,
  where the CNN trains on a static twin (MNIST for N-MNIST), the first test image, for
  the report's figure. A dataset without a twin has no MNIST rows: its CNN trains on
  event images, the same samples summed over time.
"""

import hashlib

import numpy as np

from snnflow.jobs.atomic import atomic_path
from snnflow.data.caches import open_checked, read_dataset
from snnflow.data.events import open_event_store, sensor_and_classes
from snnflow.data.nmnist import SPLITS
from snnflow.report import FEWER_EVENTS_THAN, MAX_EXAMPLE_CLASSES


def describe_sources(sources):
    """{"nmnist": text, "mnist": text} from the rule's description of where the data
    came from: synthetic, a local copy or a download (with its URLs and md5 sums)."""
    from snnflow.data.download import MNIST_MD5, mnist_urls, nmnist_archive

    if sources["kind"] == "tonic":
        from snnflow.data.tonic_datasets import archives

        if sources["dir"]:
            return {"events": f"local copy read by tonic: {sources['dir']}"}
        return {"events": "download, md5 checked, read by tonic: " + "; ".join(
            f"{url} (md5 {md5})" for url, _, md5 in archives(sources["name"], sources["mirror"]))}
    if sources["kind"] == "synthetic":
        text = (f"synthetic (snnflow.data.synthetic, seed {sources['seed']}, "
                f"{sources['train_per_class']} train / {sources['test_per_class']} test "
                "recordings per class)")
        return {"events": text, "mnist": text}
    described = {}
    if sources["nmnist_dir"]:
        described["events"] = f"local copy: {sources['nmnist_dir']}"
    else:
        archives = [nmnist_archive(split, sources["nmnist_mirror"]) for split in SPLITS]
        described["events"] = "download, md5 checked: " + "; ".join(
            f"{url} (md5 {md5})" for url, md5, _ in archives)
    if sources["mnist_dir"]:
        described["mnist"] = f"local copy: {sources['mnist_dir']}"
    else:
        described["mnist"] = "download, md5 checked: " + "; ".join(
            f"{mnist_urls(name, sources['mnist_mirror'])[0]} (md5 {md5})"
            for name, md5 in MNIST_MD5.items())
    return described


def _digests(samples):
    """The set of digests of `samples` (byte strings)."""
    return {hashlib.blake2b(sample, digest_size=16).digest() for sample in samples}


def recordings(codes, offsets):
    """Each recording's pixel codes of an event store split, as bytes."""
    return (codes[start:end].tobytes() for start, end in zip(offsets[:-1], offsets[1:]))


def count_test_in_train(train_samples, test_samples):
    """How many test samples are byte-for-byte a training sample."""
    train = _digests(train_samples)
    return sum(hashlib.blake2b(sample, digest_size=16).digest() in train
               for sample in test_samples)


def _split_row(dataset, split, labels, n_classes, source, events=None, repeated=0):
    row = {"dataset": dataset, "split": split, "samples": int(len(labels)),
           "test_in_train": repeated if split == "test" else 0}
    row.update({f"class_{c}": int((labels == c).sum()) for c in range(n_classes)})
    row.update(events_mean=float(events.mean()) if events is not None else np.nan,
               events_min=int(events.min()) if events is not None else np.nan,
               events_max=int(events.max()) if events is not None else np.nan,
               source=source)
    return row


def dataset_label(name):
    """The dataset's name on the page: N-MNIST, or tonic's class name."""
    return "N-MNIST" if name == "nmnist" else name


def summarize(event_store, frame_caches, cnn_cache, sources, out_csv, out_npz):
    """Write dataset.csv and examples.npz (see the module docstring). `frame_caches` maps
    T to its cache; `cnn_cache` is the CNN's input (MNIST's images or event images)."""
    import pandas as pd

    described = describe_sources(sources)
    rows = []
    examples = {}
    with open_event_store(event_store) as store:
        label = dataset_label(str(store.attrs.get("dataset", "nmnist")))
        _, classes = sensor_and_classes(store)
        shown = range(min(len(classes), MAX_EXAMPLE_CLASSES))
        examples["classes"] = np.array(classes)
        labels = {split: read_dataset(store, f"{split}/labels") for split in SPLITS}
        offsets = {split: read_dataset(store, f"{split}/offsets") for split in SPLITS}
        codes = {split: read_dataset(store, f"{split}/codes") for split in SPLITS}
        repeated = count_test_in_train(recordings(codes["train"], offsets["train"]),
                                       recordings(codes["test"], offsets["test"]))
        del codes
        for split in SPLITS:
            events = np.diff(offsets[split])
            rows.append(_split_row(label, split, labels[split], len(classes),
                                   described["events"], events, repeated))
            rows[-1].update({f"{FEWER_EVENTS_THAN}{T}": int((events < T).sum())
                             for T in sorted(frame_caches)})
        names, test_labels = store["test/names"][...], labels["test"]
        examples["names"] = np.array([_text(names[np.flatnonzero(test_labels == c)[0]])
                                      if (test_labels == c).any() else "" for c in shown])
    with open_checked(cnn_cache, ["train/labels", "test/labels"]) as h5:
        twin = "train/images" in h5
    if twin:
        _summarize_twin(cnn_cache, described, len(classes), shown, rows, examples)
    for T, cache in sorted(frame_caches.items()):
        with open_checked(cache, ["test/frames", "test/labels"]) as h5:
            frames, labels = h5["test/frames"], read_dataset(h5, "test/labels")
            examples[f"frames_T{T}"] = np.stack([_first(frames, labels, c) for c in shown])
    with atomic_path(out_csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    with atomic_path(out_npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **examples)


def _text(name):
    return name.decode() if isinstance(name, bytes) else str(name)


def _summarize_twin(cnn_cache, described, n_classes, shown, rows, examples):
    """MNIST's rows and first test digits: the CNN's static twin of N-MNIST."""
    with open_checked(cnn_cache, ["train/labels", "test/labels", "train/images",
                                  "test/images"]) as h5:
        images = {split: read_dataset(h5, f"{split}/images") for split in SPLITS}
        labels = {split: read_dataset(h5, f"{split}/labels") for split in SPLITS}
        repeated = count_test_in_train((image.tobytes() for image in images["train"]),
                                       (image.tobytes() for image in images["test"]))
        for split in SPLITS:
            rows.append(_split_row("MNIST", split, labels[split], n_classes,
                                   described["mnist"], repeated=repeated))
        examples["digits"] = np.stack([_first(images["test"], labels["test"], c)[0]
                                       for c in shown])


def _first(data, labels, label):
    """The first sample of `label` in `data` (zeros when the split lacks the class, which
    allow_missing_classes permits)."""
    found = np.flatnonzero(labels == label)
    if found.size:
        return data[int(found[0])]
    return np.zeros(data.shape[1:], dtype=data.dtype)
