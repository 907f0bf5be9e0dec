"""The report from fake runs whose numbers are known: tables, statistics, figures, page."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from snnflow import SnnflowError
from snnflow.report.build import build_report
from snnflow.report.registry import FIGURES, TABLES
from snnflow.runs import LAYERS, METRICS_COLUMNS

ENERGY = {"e_ac_pj": 0.9, "e_mac_pj": 4.6}
FINAL_ACC = {  # final test accuracy per model and seed
    "snn_T4": {0: 0.80, 1: 0.82, 2: 0.78},
    "snn_T16": {0: 0.90, 1: 0.95, 2: 0.91},
    "cnn": {0: 0.99, 1: 0.98, 2: 0.99},
}


def fake_run(folder, model, seed, final_acc, epochs=3):
    folder.mkdir(parents=True)
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 1 / e, "train_acc": final_acc * e / epochs,
             "test_loss": 1.1 / e, "test_acc": final_acc * e / epochs,
             "train_seconds": 2.0 + seed, "test_seconds": 0.5} for e in range(1, epochs + 1)]
    pd.DataFrame(rows, columns=METRICS_COLUMNS).to_csv(folder / "metrics.csv", index=False)
    spiking = model != "cnn"
    layers = [{"epoch": e, "layer": layer, "neurons": 100,
               "firing_rate": 0.1 * (k + 1) + 0.01 * seed if spiking else np.nan,
               "synaptic_ops": 1000.0 * k if spiking else 0.0,
               "macs": (500.0 if k == 0 else 0.0) if spiking else 200.0}
              for e in range(1, epochs + 1) for k, layer in enumerate(LAYERS)]
    pd.DataFrame(layers).to_csv(folder / "layers.csv", index=False)
    labels = np.repeat(np.arange(10), 10)
    predicted = labels.copy()
    wrong = int(round((1 - final_acc) * 100))
    predicted[:wrong] = (labels[:wrong] + 1) % 10  # the first classes' errors
    pd.DataFrame({"index": range(100), "label": labels, "prediction": predicted}).to_csv(
        folder / "predictions.csv", index=False)
    T = None if model == "cnn" else int(model.split("_T")[1])
    info = {"model": "cnn" if T is None else "snn", "name": model, "T": T, "seed": seed,
            "label": "CNN" if T is None else f"SNN-{T}", "settings": {"lr": 1e-3},
            "device_name": "Test CPU (2 threads)",
            "versions": {"torch": "2.x"}, "code_fingerprint": "f00", "n_train": 100,
            "placement": "claimed GPU slot 0 of 1", "backend": "cpp"}
    (folder / "run.json").write_text(json.dumps(info))


def fake_data(folder):
    folder.mkdir(parents=True)
    pd.DataFrame([{"dataset": "N-MNIST", "split": "train", "samples": 100,
                   **{f"class_{c}": 10 for c in range(10)}, "events_mean": 4000.5,
                   "events_min": 3000, "events_max": 5000, "source": "synthetic"}]).to_csv(
        folder / "dataset.csv", index=False)
    rng = np.random.default_rng(0)
    np.savez(folder / "examples.npz", digits=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8),
             frames_T4=rng.integers(0, 3, (10, 4, 2, 34, 34), dtype=np.uint8),
             frames_T16=rng.integers(0, 3, (10, 16, 2, 34, 34), dtype=np.uint8),
             names=np.array([f"{c}/x.bin" for c in range(10)]))


def make_study(root):
    runs = {model: {seed: root / "runs" / model / f"seed{seed}" for seed in seeds}
            for model, seeds in FINAL_ACC.items()}
    for model, seeds in runs.items():
        for seed, folder in seeds.items():
            fake_run(folder, model, seed, FINAL_ACC[model][seed])
    fake_data(root / "data")
    return runs, root


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path)


def build(study, runs=None):
    all_runs, root = study
    out = root / "results"
    folders = [folder for seeds in (runs or all_runs).values() for folder in seeds.values()]
    build_report(folders, 16, root / "data", ENERGY, out / "report.html",
                 out / "tables", out / "figures")
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the three-seed study, built once for the tests that only read it."""
    return build(make_study(tmp_path_factory.mktemp("study")))


def test_every_table_and_figure_and_a_self_contained_page(built):
    out = built
    html = (out / "report.html").read_text()
    assert sorted(p.stem for p in (out / "tables").iterdir()) == sorted(TABLES)
    assert sorted(p.stem for p in (out / "figures").iterdir()) == sorted(FIGURES)
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert "http" not in html.replace("http-equiv", "")
    for words in ("CNN vs SNN-16", "reference study", "Time per epoch", "Spikes and energy",
                  "Horowitz, ISSCC 2014", "not a measurement", "paired t-test",
                  "Test CPU (2 threads)", "claimed GPU slot 0 of 1", "RTX 3090", "23.24",
                  "<details>"):
        assert words in html, words


def test_accuracies_show_as_percentages_with_the_spread_over_seeds(built):
    out = built
    html = (out / "report.html").read_text()
    acc = list(FINAL_ACC["snn_T16"].values())
    assert f"{100 * np.mean(acc):.2f} ± {100 * np.std(acc, ddof=1):.2f} %" in html
    assert "99.60 %" in html  # the reference's SNN-16 test accuracy
    by_T = pd.read_csv(out / "tables" / "accuracy_by_T.csv").set_index("T")
    assert by_T.loc[16, "last_test_acc"] == pytest.approx(np.mean(acc))  # fractions in CSV
    assert by_T.loc[16, "last_test_acc_std"] == pytest.approx(np.std(acc, ddof=1))
    assert by_T.loc[4, "n"] == 3 and by_T.loc[4, "last_test_acc_min"] == pytest.approx(0.78)


def test_the_paired_test_over_seeds(built):
    out = built
    row = pd.read_csv(out / "tables" / "significance.csv").iloc[0]
    differences = np.subtract(list(FINAL_ACC["snn_T16"].values()),
                              list(FINAL_ACC["snn_T4"].values()))
    t = differences.mean() / (differences.std(ddof=1) / np.sqrt(3))
    assert row["comparison"] == "SNN-16 vs SNN-4" and row["n"] == 3
    assert row["t"] == pytest.approx(t) and 0 < row["p_value"] < 0.05
    assert row["mean_difference"] == pytest.approx(differences.mean())


def test_with_fewer_than_three_seeds_no_test_is_made(study):
    runs, _ = study
    two = {model: {s: f for s, f in seeds.items() if s < 2} for model, seeds in runs.items()}
    out = build(study, two)
    row = pd.read_csv(out / "tables" / "significance.csv").iloc[0]
    assert np.isnan(row["p_value"]) and "fewer than 3" in row["note"]
    assert "no test is possible" in (out / "report.html").read_text()


def test_energy_is_sops_times_e_ac_plus_macs_times_e_mac(built):
    out = built
    energy = pd.read_csv(out / "tables" / "energy.csv").set_index("model")
    sops = sum(1000.0 * k for k in range(5))  # per sample, from the fake layers.csv
    assert energy.loc["SNN-16", "energy_uj"] == pytest.approx((sops * 0.9 + 500 * 4.6) / 1e6)
    assert energy.loc["CNN", "energy_uj"] == pytest.approx(5 * 200 * 4.6 / 1e6)


def test_errors_per_class_and_confusion(built):
    out = built
    per_class = pd.read_csv(out / "tables" / "per_class_accuracy.csv")
    cnn = per_class[per_class.model == "CNN"].set_index("class")
    assert cnn.loc[0, "accuracy"] == pytest.approx(np.mean([0.9, 0.8, 0.9]))  # 1, 2, 1 wrong
    assert cnn.loc[5, "accuracy"] == 1.0 and cnn.loc[5, "n_test"] == 10
    confusion = pd.read_csv(out / "tables" / "confusion.csv")
    cnn = confusion[confusion.model == "CNN"].set_index(["true", "predicted"])
    assert cnn.loc[(0, 1), "count"] == 4 and cnn["count"].sum() == 300  # 3 seeds x 100


def test_the_report_job_runs_without_torch(study):
    """The report rule's conda environment (envs/report.yaml) has no torch."""
    runs, root = study
    script = f"""
import sys, json
sys.path.insert(0, {str(REPO / 'workflow')!r})
from pathlib import Path
from snnflow.report.build import build_report
runs = json.loads({json.dumps([str(f) for v in runs.values() for f in v.values()])!r})
out = Path({str(root / 'no-torch')!r})
build_report(runs, 16, {str(root / 'data')!r}, {ENERGY!r}, out / "r.html", out / "t", out / "f")
assert "torch" not in sys.modules, "the report imported torch"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_report_refuses_a_run_without_epochs(study):
    runs, root = study
    (runs["cnn"][0] / "metrics.csv").write_text(",".join(METRICS_COLUMNS) + "\n")
    with pytest.raises(SnnflowError, match="cnn/seed0/metrics.csv: no rows - rerun"):
        build(study)
    assert not (root / "results" / "report.html").exists()


def test_snakemakes_report_lists_the_sections_in_the_order_data_flows():
    from snnflow.report.registry import SECTIONS, report_category

    categories = [report_category(section) for section in SECTIONS]
    assert sorted(categories) == categories  # its menu sorts them alphabetically
    assert categories[0] == "1. Data" and categories[-1] == "6. Runs"
