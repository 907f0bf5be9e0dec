"""A small synthetic N-MNIST + MNIST, written in the real datasets' file formats.

Digits are font glyphs (the fonts matplotlib ships) under random affine jitter,
framed like MNIST (20x20 box centred in 28x28). Each image is moved over the
34x34 sensor along N-MNIST's three saccades (a triangle, 100 ms per side); a pixel
emits an event whenever its log brightness has moved by the contrast threshold
since its last event (ON when brighter, OFF when darker), as a DVS/ATIS does.
Sparse background noise events are added. The constants are tuned so that events
per sample, duration and polarity balance match the real recordings.

The output is read by the same code as the real data: `<out>/NMNIST/{Train,Test}/
<label>/<id>.bin` and `<out>/MNIST/*-ubyte.gz`.
"""

import argparse
import functools
from pathlib import Path

import numpy as np

from snnflow.jobs.atomic import reporting_full_disk
from snnflow.data.idx import FILES, write_idx
from snnflow.data.nmnist import EVENT_DTYPE, HEIGHT, WIDTH, write_events

GLYPH_SIZE = 96
SACCADE_US = 102_000
STEP_US = 2_000
SACCADE_VERTICES = np.array([(0.0, 0.0), (3.0, 5.0), (6.0, 0.0), (0.0, 0.0)])  # (dx, dy) px
CONTRAST_THRESHOLD = 0.5
THRESHOLD_MISMATCH = 0.04
LOG_EPS = 0.08
NOISE_EVENTS_PER_SAMPLE = 40
FONT_VARIANTS = [(family, weight, style) for family in ("DejaVu Sans", "DejaVu Serif",
                                                         "DejaVu Sans Mono")
                 for weight in ("normal", "bold") for style in ("normal", "italic")]


def render_glyphs():
    """(digits, variants, GLYPH_SIZE, GLYPH_SIZE) float images of 0-9 in every font variant."""
    import matplotlib
    import matplotlib.style
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    glyphs = np.zeros((10, len(FONT_VARIANTS), GLYPH_SIZE, GLYPH_SIZE), dtype=np.float32)
    with matplotlib.style.context("default"):  # independent of any style set elsewhere
        for v, (family, weight, style) in enumerate(FONT_VARIANTS):
            for digit in range(10):
                fig = Figure(figsize=(1, 1), dpi=GLYPH_SIZE, facecolor="white")
                canvas = FigureCanvasAgg(fig)
                fig.text(0.5, 0.5, str(digit), ha="center", va="center", fontsize=60,
                         family=family, weight=weight, style=style, color="black")
                canvas.draw()
                rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float32)
                glyphs[digit, v] = 1.0 - rgba[..., :3].mean(-1) / 255.0
    return glyphs


def _mnist_frame(glyph, rng):
    """One 28x28 MNIST-like image: the glyph jittered, cropped and fitted in a 20x20 box."""
    angle = rng.uniform(-0.25, 0.25)
    shear = rng.uniform(-0.25, 0.25)
    scale = rng.uniform(0.85, 1.15, size=2)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a = a @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    size = GLYPH_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    src = np.linalg.inv(a) @ np.stack([xx.ravel(), yy.ravel()])
    warped = _sample(glyph, src[1] + size / 2, src[0] + size / 2).reshape(size, size)
    if rng.random() < 0.5:  # thicker strokes
        warped = np.maximum(warped, np.roll(warped, 1, axis=1))
    rows, cols = np.nonzero(warped > 0.1)
    if rows.size == 0:
        return np.zeros((28, 28), dtype=np.float32)
    crop = warped[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    box = 20.0 / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * box)), max(1, round(crop.shape[1] * box))
    ys = (np.arange(h) + 0.5) / box - 0.5
    xs = (np.arange(w) + 0.5) / box - 0.5
    small = _sample(crop, *np.meshgrid(ys, xs, indexing="ij"))
    image = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - h) // 2, (28 - w) // 2
    image[top:top + h, left:left + w] = small
    return np.clip(image, 0.0, 1.0)


def _sample(image, rows, cols):
    """Bilinear sample of `image` at fractional (rows, cols); zero outside."""
    return _bilinear_taps(np.shape(image), rows, cols)(image)


def _bilinear_taps(shape, rows, cols):
    """The bilinear sampling of images of `shape` at fractional (rows, cols), zero
    outside, as a function of the image: the indices and weights are computed once,
    for sampling many images at the same points."""
    r = np.clip(np.asarray(rows, dtype=np.float32) + 1, 0, shape[0] + 2 - 1.001)  # padded
    c = np.clip(np.asarray(cols, dtype=np.float32) + 1, 0, shape[1] + 2 - 1.001)
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    fr, fc = r - r0, c - c0
    weights = ((1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc)
    corners = ((r0, c0), (r0, c0 + 1), (r0 + 1, c0), (r0 + 1, c0 + 1))

    def sample(image):
        padded = np.pad(np.asarray(image, dtype=np.float32), 1)
        w00, w01, w10, w11 = weights
        (a, b), (c, d), (e, f), (g, h) = corners
        return w00 * padded[a, b] + w01 * padded[c, d] + w10 * padded[e, f] + w11 * padded[g, h]
    return sample


def saccade_offsets():
    """(steps, 2) sensor offsets (dx, dy) of the image along the three saccades."""
    per_side = SACCADE_US // STEP_US
    legs = [np.linspace(a, b, per_side, endpoint=False)
            for a, b in zip(SACCADE_VERTICES[:-1], SACCADE_VERTICES[1:])]
    return np.concatenate(legs + [SACCADE_VERTICES[-1:]])


@functools.cache
def _sensor_sampling():
    """Bilinear sampling of a 28x28 image as the 34x34 sensor sees it at each offset
    along the saccades: the same points for every image."""
    offsets = saccade_offsets()
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    dx, dy = offsets[:, 0, None, None], offsets[:, 1, None, None]
    return _bilinear_taps((28, 28), ys - dy, xs - dx)


def image_to_events(image, rng):
    """N-MNIST-style events (x, y, t, p) of a 28x28 image moved along the saccades."""
    views = _sensor_sampling()(image)
    log_views = np.log(views + LOG_EPS)
    threshold = CONTRAST_THRESHOLD + THRESHOLD_MISMATCH * rng.standard_normal((HEIGHT, WIDTH))
    threshold = np.maximum(threshold, 0.05)
    reference = log_views[0].copy()
    chunks = []
    for step in range(1, len(log_views)):
        delta = log_views[step] - reference
        crossings = np.floor(np.abs(delta) / threshold).astype(np.int64)
        ys, xs = np.nonzero(crossings)
        if ys.size == 0:
            continue
        n = crossings[ys, xs]
        polarity = (delta[ys, xs] > 0).astype(np.uint8)
        reference[ys, xs] += np.sign(delta[ys, xs]) * n * threshold[ys, xs]
        chunk = np.empty(int(n.sum()), dtype=EVENT_DTYPE)
        chunk["x"], chunk["y"] = np.repeat(xs, n), np.repeat(ys, n)
        chunk["p"] = np.repeat(polarity, n)
        chunk["t"] = (step - 1) * STEP_US + rng.integers(0, STEP_US, size=chunk.size)
        chunks.append(chunk)
    duration = (len(log_views) - 1) * STEP_US
    noise = np.empty(rng.poisson(NOISE_EVENTS_PER_SAMPLE), dtype=EVENT_DTYPE)
    noise["x"], noise["y"] = rng.integers(0, WIDTH, noise.size), rng.integers(0, HEIGHT, noise.size)
    noise["p"] = rng.integers(0, 2, noise.size)
    noise["t"] = rng.integers(0, duration, noise.size)
    events = np.concatenate(chunks + [noise])
    return events[np.argsort(events["t"], kind="stable")]


def write_dataset(out, train_per_class, test_per_class, seed=0):
    """Write `out/NMNIST/{Train,Test}/<label>/<id>.bin` and `out/MNIST/*.gz` (a full disk
    named by `out`)."""
    with reporting_full_disk(out):
        _write_dataset(Path(out), train_per_class, test_per_class, seed)


def _write_dataset(out, train_per_class, test_per_class, seed):
    rng = np.random.default_rng(seed)
    glyphs = render_glyphs()
    sample_id = 0
    for split, folder, per_class in (("train", "Train", train_per_class),
                                     ("test", "Test", test_per_class)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        rng.shuffle(labels)
        images = np.empty((len(labels), 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            variant = rng.integers(len(FONT_VARIANTS))
            image = _mnist_frame(glyphs[label, variant], rng)
            images[i] = np.round(image * 255)
            sample_id += 1
            write_events(out / "NMNIST" / folder / str(label) / f"{sample_id:05d}.bin",
                         image_to_events(images[i] / 255.0, rng))
        (out / "MNIST").mkdir(parents=True, exist_ok=True)
        images_name, labels_name = FILES[split]
        write_idx(out / "MNIST" / f"{images_name}.gz", images)
        write_idx(out / "MNIST" / f"{labels_name}.gz", labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_dataset(args.out, args.train_per_class, args.test_per_class, args.seed)


if __name__ == "__main__":
    main()
