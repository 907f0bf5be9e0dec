"""The report from fake runs whose numbers are known: tables, statistics, figures, page."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from snnflow import SnnflowError
from snnflow.report.build import build_report
from snnflow.report.registry import FIGURE_FORMATS, TABLE_FORMATS, figure_names, table_names
from snnflow.runs import METRICS_COLUMNS, layer_names, sweep_variant, variant_label

LAYERS = layer_names(3)  # the study's network: three conv blocks

ENERGY = {"e_ac_pj": 0.9, "e_mac_pj": 4.6}
FINAL_ACC = {  # final test accuracy per model and seed
    "snn_T4": {0: 0.80, 1: 0.82, 2: 0.78},
    "snn_T16": {0: 0.90, 1: 0.95, 2: 0.91},
    "cnn": {0: 0.99, 1: 0.98, 2: 0.99},
}


def fake_run(folder, model, seed, final_acc, epochs=3, val_acc=None, sweep=None,
             firing=0.1):
    """A run's files as its job writes them; `val_acc`: a validation accuracy per epoch
    (none: no validation split), `sweep`: a sweep's record (snnflow.runs.sweep_variant)."""
    folder.mkdir(parents=True)
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 1 / e, "train_acc": final_acc * e / epochs,
             "test_loss": 1.1 / e, "test_acc": final_acc * e / epochs,
             "val_acc": val_acc[e - 1] if val_acc else None,
             "val_loss": 1.2 / e if val_acc else None,
             "train_seconds": 2.0 + seed, "test_seconds": 0.5} for e in range(1, epochs + 1)]
    pd.DataFrame(rows, columns=METRICS_COLUMNS).to_csv(folder / "metrics.csv", index=False)
    spiking = model != "cnn"
    layers = [{"epoch": e, "layer": layer, "neurons": 100,
               "firing_rate": firing * (k + 1) + 0.01 * seed if spiking else np.nan,
               "synaptic_ops": 10000.0 * firing * k if spiking else 0.0,
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
    label = "CNN" if T is None else f"SNN-{T}"
    if sweep is not None:
        label = variant_label(sweep["name"], sweep["values"])
    info = {"model": "cnn" if T is None else "snn", "name": model, "T": T, "seed": seed,
            "label": label, "sweep": sweep, "settings": {"lr": 1e-3},
            "device_name": "Test CPU (2 threads)",
            "versions": {"torch": "2.x"}, "code_fingerprint": "f00", "n_train": 100,
            "n_test": 100,
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
             names=np.array([f"{c}/x.bin" for c in range(10)]),
             classes=np.array([str(c) for c in range(10)]))


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


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def every_format(names, formats):
    """The files of `names` in every format: a table's CSV, LaTeX and Markdown, a
    figure's PNG, PDF and SVG."""
    return sorted(f"{name}.{extension}" for name in names for extension in formats)


def test_every_table_and_figure_and_a_self_contained_page(built):
    out = built
    html = (out / "report.html").read_text()
    figures = figure_names([4, 16], 16)  # without sweeps: no sweep table or figure
    assert files_in(out / "tables") == every_format(table_names(), TABLE_FORMATS)
    assert files_in(out / "figures") == every_format(figures, FIGURE_FORMATS)
    assert "sweeps" not in table_names() and "sweep_accuracy" not in figures
    assert html.count('src="data:image/png;base64,') == len(figures)
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


def damaged(folder, case):
    """Damage the run's files in `folder` as `case` says."""
    metrics, layers = (pd.read_csv(folder / name) for name in ("metrics.csv", "layers.csv"))
    info = json.loads((folder / "run.json").read_text())
    if case == "an epoch twice":  # two jobs appended to one run
        pd.concat([metrics, metrics.tail(1)]).to_csv(folder / "metrics.csv", index=False)
        pd.concat([layers, layers.tail(5)]).to_csv(folder / "layers.csv", index=False)
    elif case == "more epochs than run.json says":
        info["settings"]["epochs"] = 2
    elif case == "a layer twice":
        pd.concat([layers, layers.tail(1)]).to_csv(folder / "layers.csv", index=False)
    elif case == "a prediction missing":
        info["n_test"] = 101
    elif case == "a long text":
        info["device_name"] = "x" * 5000
    else:  # a huge run.json
        info["padding"] = ["y" * 1000] * 2000
    (folder / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("case, words", [
    ("an epoch twice", "metrics.csv: epoch 3 more than once (two jobs wrote this run?) - rerun "
                       "its training job"),
    ("more epochs than run.json says", "metrics.csv: 3 epochs, but run.json says the run "
                                       "trained 2"),
    ("a layer twice", "layers.csv: not each epoch's layers once, for the epochs of metrics.csv"),
    ("a prediction missing", "predictions.csv: 100 rows, but run.json says the test split has "
                             "101 samples"),
    ("a long text", "run.json: device_name is 5000 characters of text, more than 2000"),
    ("a huge run.json", "bytes, more than the 1048576 a run's run.json can be"),
])
def test_run_files_that_disagree_or_are_oversized_are_refused_naming_the_file(tmp_path, case,
                                                                               words):
    from snnflow.report.study import load_run

    folder = tmp_path / "runs" / "snn_T4" / "seed0"
    fake_run(folder, "snn_T4", 0, 0.8)
    info = json.loads((folder / "run.json").read_text())
    info["settings"]["epochs"], info["n_test"] = 3, 100
    (folder / "run.json").write_text(json.dumps(info))
    assert load_run(folder).metrics["epoch"].tolist() == [1, 2, 3]  # as written: whole
    damaged(folder, case)
    with pytest.raises(SnnflowError) as err:
        load_run(folder)
    message = str(err.value)
    assert message.startswith(str(folder / "")) and words in message and "\n" not in message, \
        message


def test_snakemakes_report_lists_the_sections_in_the_order_data_flows():
    from snnflow.report.registry import SECTIONS, report_category

    categories = [report_category(section) for section in SECTIONS]
    assert sorted(categories) == categories  # its menu sorts them alphabetically
    assert categories[0] == "1. Data" and categories[-1] == "9. Runs"


def test_without_a_validation_split_the_chosen_epoch_is_marked_optimistic(built):
    accuracy = pd.read_csv(built / "tables" / "accuracy.csv").set_index("model")
    acc = list(FINAL_ACC["snn_T16"].values())  # the test accuracy rises: the last is best
    assert accuracy.loc["SNN-16", "final_test_acc"] == pytest.approx(np.mean(acc))
    assert accuracy.loc["SNN-16", "chosen_test_acc"] == pytest.approx(np.mean(acc))
    assert (accuracy["chosen_on"] == "chosen on test (optimistic)").all()
    comparison = pd.read_csv(built / "tables" / "comparison.csv")
    assert set(comparison["epoch_kind"]) == {"last", "chosen on test (optimistic)"}
    assert "<td>chosen on test (optimistic)</td>" in (built / "report.html").read_text()


def test_with_a_validation_split_the_epoch_is_chosen_on_it(tmp_path):
    """Validation accuracy peaks at epoch 2 while the test accuracy still rises: the
    chosen epoch's test accuracy is epoch 2's, not the best test epoch's."""
    runs = {}
    for model, seeds in FINAL_ACC.items():
        for seed, final in seeds.items():
            folder = tmp_path / "runs" / model / f"seed{seed}"
            fake_run(folder, model, seed, final, val_acc=[0.5, 0.9, 0.7])
            runs.setdefault(model, {})[seed] = folder
    fake_data(tmp_path / "data")
    out = build((runs, tmp_path))
    accuracy = pd.read_csv(out / "tables" / "accuracy.csv").set_index("model")
    acc = np.array(list(FINAL_ACC["snn_T16"].values()))
    assert accuracy.loc["SNN-16", "chosen_test_acc"] == pytest.approx(np.mean(acc * 2 / 3))
    assert accuracy.loc["SNN-16", "final_test_acc"] == pytest.approx(np.mean(acc))
    assert accuracy.loc["SNN-16", "chosen_epoch"] == "2, 2, 2"
    assert accuracy.loc["SNN-16", "chosen_val_acc"] == pytest.approx(0.9)
    assert (accuracy["chosen_on"] == "chosen on validation").all()
    by_T = pd.read_csv(out / "tables" / "accuracy_by_T.csv").set_index("T")
    assert by_T.loc[16, "chosen_test_acc"] == pytest.approx(np.mean(acc * 2 / 3))
    html = (out / "report.html").read_text()
    assert "<td>chosen on validation</td>" in html
    assert "<td>chosen on test (optimistic)</td>" not in html


SWEEP = {  # (tau, alpha) -> final test accuracy per seed, firing rate scale
    (1.5, 2.0): ([0.70, 0.74], 0.05),
    (1.5, 8.0): ([0.80, 0.84], 0.2),
    (3.0, 2.0): ([0.60, 0.62], 0.3),
}


SWEEP_ENERGY = {"e_ac_pj": 0.1, "e_mac_pj": 4.6}  # the CNN costs more than the SNNs


def sweep_study(root):
    """The three-seed study and a two-seed sweep of tau x surrogate_alpha at T=16."""
    runs, _ = make_study(root)
    folders = []
    for (tau, alpha), (accs, firing) in SWEEP.items():
        variant = f"tau~{tau}/surrogate_alpha~{alpha}"
        for seed, acc in enumerate(accs):
            folder = root / "sweeps" / "ta" / variant / f"seed{seed}"
            fake_run(folder, "snn_T16", seed, acc, firing=firing,
                     sweep=sweep_variant("ta", variant, {"tau": tau, "surrogate_alpha": alpha}))
            folders.append(folder)
    out = root / "results"
    build_report([f for seeds in runs.values() for f in seeds.values()], 16, root / "data",
                 SWEEP_ENERGY, out / "report.html", out / "tables", out / "figures", folders)
    return out


def test_the_sweeps_section_and_the_pareto_front(tmp_path):
    out = sweep_study(tmp_path)
    assert files_in(out / "tables") == every_format(table_names(["sweeps"]), TABLE_FORMATS)
    assert files_in(out / "figures") == every_format(figure_names([4, 16], 16, ["sweeps"]),
                                                     FIGURE_FORMATS)
    sweeps = pd.read_csv(out / "tables" / "sweeps.csv")
    assert list(sweeps["variant"]) == ["ta: tau=1.5, surrogate_alpha=2.0",
                                       "ta: tau=1.5, surrogate_alpha=8.0",
                                       "ta: tau=3.0, surrogate_alpha=2.0"]
    first = sweeps.iloc[0]
    assert (first["tau"], first["surrogate_alpha"], first["n"], first["T"]) == (1.5, 2.0, 2, 16)
    assert first["final_test_acc"] == pytest.approx(0.72)
    assert first["final_test_acc_std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    sops = sum(10000.0 * 0.05 * k for k in range(5))
    assert first["synaptic_ops"] == pytest.approx(sops)
    assert first["energy_uj"] == pytest.approx((sops * 0.1 + 500 * 4.6) / 1e6)
    # all five layers have 100 neurons: the network's rate is their mean
    assert first["firing_rate"] == pytest.approx(np.mean([0.05 * (k + 1) for k in range(5)])
                                                 + 0.005)
    pareto = pd.read_csv(out / "tables" / "pareto.csv").set_index("run")
    assert len(pareto) == 3 + len(SWEEP)
    # pJ per inference: SNN-4 and SNN-16 3300 (80 %, 92 %), CNN 4600 (98.7 %); the
    # variants 2800 (72 %), 4300 (82 %), 5300 (61 %). The cheapest, SNN-16 (which beats
    # SNN-4 at its cost and the second variant for less) and the most accurate are left.
    assert pareto.loc["SNN-16", "energy_uj"] == pytest.approx(3300 / 1e6)
    assert sorted(pareto.index[pareto["on_front"]]) == [
        "CNN", "SNN-16", "ta: tau=1.5, surrogate_alpha=2.0"]
    html = (out / "report.html").read_text()
    for words in ("The sweeps&#39; variants", "Test accuracy against each swept setting",
                  "Accuracy against energy", "ta: tau=1.5, surrogate_alpha=8.0"):
        assert words in html, words


def test_pareto_front_keeps_exactly_the_undominated_points():
    from snnflow.report.tables import pareto_front

    accuracy = [0.9, 0.8, 0.8, 0.95, 0.7]
    energy = [2.0, 1.0, 1.5, 3.0, 1.0]
    assert pareto_front(accuracy, energy).tolist() == [True, True, False, True, False]


def test_a_sweep_run_where_a_study_run_belongs_is_refused(study):
    runs, root = study
    info = json.loads((runs["cnn"][0] / "run.json").read_text())
    info["sweep"] = sweep_variant("x", "tau~2.0", {"tau": 2.0})
    (runs["cnn"][0] / "run.json").write_text(json.dumps(info))
    with pytest.raises(SnnflowError, match="cnn/seed0/run.json: records a sweep's run"):
        build(study)


def test_the_nir_section_from_the_checks_rows_and_a_damaged_file_named(study, tmp_path):
    from snnflow.runs import NIR_COLUMNS

    runs, root = study
    good = tmp_path / "snn_T16_seed0.csv"
    row = dict(zip(NIR_COLUMNS, ["norse", "1.1.0", "SNN-16", 16, 0, 100, 3, 3, 0, 1, 1.0, 0.9,
                                 0.9, "equal", "norse.torch.from_nir"]))
    pd.DataFrame([row]).to_csv(good, index=False)
    out = root / "results"
    folders = [folder for seeds in runs.values() for folder in seeds.values()]
    build_report(folders, 16, root / "data", ENERGY, out / "report.html", out / "tables",
                 out / "figures", nir_checks=[good])
    assert pd.read_csv(out / "tables" / "nir.csv").iloc[0]["tie_mismatches"] == 3
    html = (out / "report.html").read_text()
    assert "Deploying the SNN (NIR)" in html and "<li>norse: norse.torch.from_nir</li>" in html
    bad = tmp_path / "snn_T4_seed0.csv"
    bad.write_text("importer\nnorse\n")
    with pytest.raises(SnnflowError, match="snn_T4_seed0.csv: not the NIR check's columns"):
        build_report(folders, 16, root / "data", ENERGY, out / "report.html", out / "tables",
                     out / "figures", nir_checks=[good, bad])


def test_the_page_sets_times_beside_the_reference_with_what_each_side_ran_on(built):
    """Time per epoch compared as rates: samples per epoch, device, and the seconds per the
    reference's 60,000-sample epoch; a synthetic study says so at the top."""
    html = (built / "report.html").read_text()
    timing = pd.read_csv(built / "tables" / "timing.csv")
    for column in ("device", "n_train", "train_seconds_per_60000", "reference_device",
                   "reference_train_seconds"):
        assert column in timing.columns
    row = timing.iloc[0]
    assert row["train_seconds_per_60000"] == pytest.approx(row["train_seconds"] * 600)
    for words in ("train samples", "train s per 60,000", "reference train s (60,000)",
                  "one NVIDIA RTX 3090", "Not the reference study's data:",
                  "reference study (not comparable: synthetic data here)"):
        assert words in html, words


def test_every_table_for_papers_holds_the_cells_the_page_shows(built):
    import html as html_module

    from snnflow.report.registry import TABLES

    page = (built / "report.html").read_text()
    for name, entry in TABLES.items():
        if entry.display is None or name not in table_names():
            continue
        section = page[page.index(f'<section id="tables-{name}">'):]
        body = section[section.index("<tbody>"):section.index("</tbody>")]
        rows = [[html_module.unescape(re.sub(r"<[^>]+>", "", cell))  # the text, as read
                 for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
                for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
        markdown = (built / "tables" / f"{name}.md").read_text().splitlines()[2:]
        shown = [[html_module.unescape(c.strip().replace("\\|", "|"))
                  for c in line.strip()[2:-2].split(" | ")] for line in markdown]
        assert shown == rows, name
    latex = (built / "tables" / "comparison.tex").read_text()
    assert latex.startswith("\\begin{tabular}") and "\\toprule" in latex
    assert "test accuracy (\\%)" in latex and "$99.60$" in latex  # a header in words
    assert re.search(r"\$\d+\.\d\d \\pm \d+\.\d\d\$", latex)  # a mean ± std over seeds


def test_vector_figures_keep_their_text_as_text(built):
    svg = (built / "figures" / "accuracy_vs_T.svg").read_text()
    assert "<text" in svg and "test accuracy (%)" in svg  # not outlines
    pdf = (built / "figures" / "accuracy_vs_T.pdf").read_bytes()
    assert b"/FontFile2" in pdf  # TrueType embedded (fonttype 42), not Type 3 outlines


def test_the_runs_table_shows_what_differs_not_every_setting(built):
    html = (built / "report.html").read_text()
    runs = pd.read_csv(built / "tables" / "runs.csv")
    assert {"settings", "settings_differing", "versions"} <= set(runs.columns)
    assert '"batch_size"' not in html  # the full settings stay in the CSV and run.json
    assert "settings (differing)" in html


def test_snakemakes_report_numbers_its_categories_without_gaps():
    from snnflow.report.registry import SECTIONS, report_category

    present = [s for s in SECTIONS if s != "Sweeps"]
    numbers = [int(report_category(s, present).split(".")[0]) for s in present]
    assert numbers == list(range(1, len(present) + 1))


def test_every_latex_table_compiles_with_pdflatex(built, tmp_path):
    """Every .tex table \\input into an article with booktabs, compiled by pdflatex (CI
    installs it: texlive-latex-base and texlive-latex-recommended), unscaled: none is wider
    than the text (pdflatex's "Overfull \\hbox"), its headers words, not identifiers."""
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (Debian: texlive-latex-base, "
                    "texlive-latex-recommended)")
    tables = sorted((built / "tables").glob("*.tex"))
    assert len(tables) == len(table_names())
    body = "\n".join(f"\\section*{{{t.stem.replace('_', ' ')}}}\n\\noindent\\input{{{t}}}\\par"
                      for t in tables)
    (tmp_path / "tables.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        "\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                             "tables.tex"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 10_000
    log = (tmp_path / "tables.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, log[log.find("Overfull"):][:1500]
    for table in tables:
        assert "\\_" not in table.read_text().split("\\midrule")[0], table.name  # no ids


def test_every_figure_fits_a_text_column_with_readable_text(built):
    """Placed in a thesis at its text column (16 cm), no figure is scaled down: none is
    drawn wider (a tight box adds 0.1 inch each side), and no text is below 7 pt."""
    from snnflow.report.figures import COLUMN_INCHES, SMALLEST_POINTS

    for svg in sorted((built / "figures").glob("*.svg")):
        text = svg.read_text()
        width = float(re.search(r'<svg[^>]*width="([\d.]+)pt"', text).group(1))
        assert width <= (COLUMN_INCHES + 0.2) * 72 + 0.5, (svg.name, width / 72)
        sizes = [float(size) for size in re.findall(r"font[^;\"]*?([\d.]+)px", text)]
        assert sizes and min(sizes) >= SMALLEST_POINTS, (svg.name, min(sizes))


def test_a_network_that_does_not_work_is_named_beside_each_of_its_numbers(tmp_path):
    """SNN-16 seed 0 as a silent job writes it (its output layer never spikes, every
    prediction class 0): the page's warning, column works: NO in the comparison, accuracy
    and Pareto tables, and its NIR rows' agreement marked as no evidence."""
    from snnflow.runs import NIR_COLUMNS

    runs, root = make_study(tmp_path)
    folder = runs["snn_T16"][0]
    layers = pd.read_csv(folder / "layers.csv")
    layers.loc[layers["layer"] == "fc2", "firing_rate"] = 0.0
    layers.to_csv(folder / "layers.csv", index=False)
    predictions = pd.read_csv(folder / "predictions.csv").assign(prediction=0)
    predictions.to_csv(folder / "predictions.csv", index=False)
    check = tmp_path / "snn_T16_seed0.csv"
    pd.DataFrame([dict(zip(NIR_COLUMNS, ["norse", "1.1.0", "SNN-16", 16, 0, 100, 0, 0, 0, 0,
                                         1.0, 0.1, 0.1, "equal", "-"]))]).to_csv(check,
                                                                                  index=False)
    out = root / "results"
    folders = [f for seeds in runs.values() for f in seeds.values()]
    build_report(folders, 16, root / "data", ENERGY, out / "report.html", out / "tables",
                 out / "figures", nir_checks=[check])
    tables = {name: pd.read_csv(out / "tables" / f"{name}.csv")
              for name in ("comparison", "accuracy", "pareto", "nir")}
    expected = ("NO - seed 0: its output layer never spiked, every prediction is class 0, its "
                "test accuracy 10.0 % is at chance (10.0 %)")
    for name, column in (("comparison", "model"), ("accuracy", "model"), ("pareto", "run")):
        table = tables[name]
        ours = table[table.get("source", pd.Series(["ours"] * len(table))).isin(
            ["ours", "study"])]
        marks = dict(zip(ours[column], ours["works"]))
        assert marks["SNN-16"] == expected, name
        assert marks["CNN"] == "yes", name
    assert tables["nir"]["evidence"].iloc[0].startswith("NO - the run's output never spiked")
    page = (out / "report.html").read_text()
    assert "SNN-16 seed 0 does not work in evaluation: its output layer never spiked" in page
    assert page.count(expected) >= 3


def test_each_model_row_says_what_it_trained_and_was_tested_on(built):
    comparison = pd.read_csv(built / "tables" / "comparison.csv")
    ours = comparison[comparison["source"] == "ours"]
    data = dict(zip(ours["model"], ours["data"]))
    assert data["SNN-16"].startswith("synthetic (")
    assert data["CNN"].startswith("MNIST (")
    timing = pd.read_csv(built / "tables" / "timing.csv")
    assert dict(zip(timing["model"], timing["data"]))["CNN"].startswith("MNIST (")


def test_the_models_table_says_what_each_network_is_beside_the_references(built):
    models = pd.read_csv(built / "tables" / "models.csv")
    ours = models[models["source"] == "ours"]
    assert list(ours["model"]) == ["SNN-4", "SNN-16", "CNN"]
    assert set(models[models["source"] == "reference study"]["channels"]) == {"32-64-128"}
    assert {"channels", "hidden", "parameters", "batch_size", "lr", "epochs", "optimizer",
            "loss", "neuron", "data"} <= set(models.columns)
    timing = pd.read_csv(built / "tables" / "timing.csv")
    assert all(n.startswith(("the reference's", "NOT the reference's")) for n in timing["network"])
    assert "The models: network and training settings" in (built / "report.html").read_text()
