"""The whole DAG through Snakemake on a tiny synthetic dataset, then what reruns."""

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow, dry_run_plan, ensure_debian_packages, started_watch
from conftest import tensorboard_get

pytestmark = pytest.mark.workflow

TINY = {
    "gpus": 2,  # two GPU slots (none exist here: the jobs claim slots and train on CPU)
    "seeds": [0, 1],
    "synthetic": {"enabled": True, "train_per_class": 20, "test_per_class": 8, "seed": 0},
    "snn": {"T": [2, 4], "main_T": 4, "epochs": 2, "batch_size": 20, "lr": 0.01,
            "channels": [4, 8, 8], "hidden": 16},
    "cnn": {"epochs": 2, "batch_size": 20, "lr": 0.01, "channels": [4, 8, 8], "hidden": 16},
    "validation": {"fraction": 0.25, "seed": 0},  # 5 of each class's 20 training samples
    "sweep": {"file": "sweeps/tiny.tsv", "T": 2},
}
# An ablation of neuron x surrogate (choices swept by their names), four variants with
# seeds 0 and 1, at a tau of their own (snn.tau's changes leave them).
TINY_SWEEP = ("tau\tneuron\tsurrogate\n1.5\tlif\tsigmoid\n1.5\tlif\tatan\n"
              "1.5\tplif\tsigmoid\n1.5\tplif\tatan\n")
VARIANTS = [f"tau~1.5/neuron~{neuron}/surrogate~{surrogate}"
            for neuron in ("lif", "plif") for surrogate in ("sigmoid", "atan")]
LABELS = [f"tiny: tau=1.5, neuron={neuron}, surrogate={surrogate}"
          for neuron in ("lif", "plif") for surrogate in ("sigmoid", "atan")]


def snakemake(workdir, *args, check=True, cores=2, runtime_only=False):
    """Snakemake in `workdir`; with `runtime_only`, without what only the test extras
    install (tests/runtime_only.py), as in the environment `make demo` builds."""
    runner = [str(REPO / "tests" / "runtime_only.py")] if runtime_only else []
    result = subprocess.run([sys.executable, *runner, "-m", "snakemake", "--cores", str(cores),
                             *args], cwd=workdir, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


CORES = 4  # the finished run's: on the CPU the training threads (cores / GPU slots) count


def planned_jobs(workdir, config):
    """{rule: count} of what a dry run with `config` would run."""
    (workdir / "variant.yaml").write_text(yaml.safe_dump(config))
    return dry_run_plan(snakemake(workdir, "-n", "--configfile", "variant.yaml",
                                  cores=CORES).stdout)


def variant(**changes):
    """TINY with changes: snn__tau=3.0 sets snn.tau, seeds=[...] sets seeds."""
    config = yaml.safe_load(yaml.safe_dump(TINY))
    for dotted, value in changes.items():
        *sections, key = dotted.split("__")
        node = config
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    return config


RUNS = [(model, seed) for model in ("snn_T2", "snn_T4", "cnn") for seed in (0, 1)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A copy of the workflow that has run the complete tiny study once."""
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    (workdir / "sweeps").mkdir()
    (workdir / "sweeps" / "tiny.tsv").write_text(TINY_SWEEP)
    snakemake(workdir, "--configfile", "tiny.yaml", "--resources", "gpu=2", cores=CORES)
    return workdir


def test_complete_study_produces_csvs_and_report(finished_run):
    from snnflow.report.registry import FIGURE_FORMATS, TABLE_FORMATS, figure_names, table_names

    results = finished_run / "results"
    for model, seed in RUNS:
        folder = results / "runs" / model / f"seed{seed}"
        metrics = pd.read_csv(folder / "metrics.csv")
        assert list(metrics["epoch"]) == [1, 2]
        joules = ["train_joules", "test_joules"]  # measured on a GPU only
        assert metrics.drop(columns=joules).notna().all().all()  # validation columns too
        assert metrics[joules].isna().all().all()
        assert (folder / "model.pt").stat().st_size > 0
        assert len(pd.read_csv(folder / "layers.csv")) == 2 * 5
        assert len(pd.read_csv(folder / "predictions.csv")) == 80
        log = (results / "logs" / f"train_{model}_seed{seed}.log").read_text()
        assert re.search(r"kernel check: (passed, max grad diff|nothing to check)", log)
        assert re.search(r"epoch 1/2: .* \| elapsed 0:\d\d:\d\d \| ends ~\d\d:\d\d \(in ", log)
        assert re.search(r"epoch 2/2: .* \| elapsed 0:\d\d:\d\d\n", log)
        assert "done: 2 epochs (2 in this job), last test acc " in log
        assert (results / "benchmarks" / f"train_{model}_seed{seed}.tsv").exists()
    seed0, seed1 = (pd.read_csv(results / "runs" / "snn_T4" / f"seed{s}" / "metrics.csv")
                    for s in (0, 1))
    assert not seed0["train_loss"].equals(seed1["train_loss"])  # two seeds, two runs
    cnn = pd.read_csv(results / "runs" / "cnn" / "seed0" / "metrics.csv")
    assert cnn["test_acc"].iloc[-1] > 0.2  # chance is 0.1
    html = (results / "report.html").read_text()
    figures = figure_names([2, 4], 4, ["sweeps", "nir"])
    assert html.count("data:image/png;base64,") == len(figures)
    assert sorted(p.name for p in (results / "figures").iterdir()) == sorted(
        f"{name}.{extension}" for name in figures for extension in FIGURE_FORMATS)
    for table in table_names(["sweeps", "nir"]):
        for extension in TABLE_FORMATS:
            assert (results / "tables" / f"{table}.{extension}").exists(), (table, extension)
    for words in ("CNN vs SNN-4", "SNN-2", "reference study", "Time per epoch",
                  "2 seeds each", "Spikes and energy", "synthetic (snnflow.data.synthetic"):
        assert words in html
    for table in ("comparison", "timing", "accuracy", "accuracy_by_T", "significance", "energy",
                  "layers", "pareto", "sweeps", "per_class_accuracy", "confusion", "dataset",
                  "runs", "models"):
        assert (results / "tables" / f"{table}.csv").exists()
    for table in ("comparison", "timing", "accuracy"):  # each row: what it trained on
        rows = pd.read_csv(results / "tables" / f"{table}.csv")
        rows = rows[rows["source"] == "ours"] if "source" in rows else rows
        data = dict(zip(rows["model"], rows["data"]))
        assert data["CNN"].startswith("MNIST (") and data["SNN-4"].startswith("synthetic (")
    models = pd.read_csv(results / "tables" / "models.csv")
    assert models[models["model"] == "CNN"]["parameters"].iloc[0] > 0
    for log in ("synthetic_dataset", "nmnist_events", "frames_T2", "frames_T4", "mnist_cache",
                "data_summary", "report"):
        assert (results / "logs" / f"{log}.log").exists()


def test_the_sweeps_runs_and_the_chosen_epochs(finished_run):
    results = finished_run / "results"
    for variant, seed in itertools.product(VARIANTS, (0, 1)):
        folder = results / "sweeps" / "tiny" / variant / f"seed{seed}"
        info = json.loads((folder / "run.json").read_text())
        values = dict(part.split("~") for part in variant.split("/"))
        assert info["sweep"] == {"name": "tiny", "variant": variant,
                                 "values": {"tau": 1.5, "neuron": values["neuron"],
                                            "surrogate": values["surrogate"]}}
        assert info["T"] == 2 and info["settings"]["tau"] == 1.5
        assert info["settings"]["neuron"] == values["neuron"]
        assert info["settings"]["surrogate"] == values["surrogate"]
        assert (info["learned_tau"] is None) == (values["neuron"] == "lif")
        assert info["settings"]["epochs"] == 2  # the rest from the config's snn section
        assert len(pd.read_csv(folder / "metrics.csv")) == 2
        assert (results / "logs" / "sweeps" / "tiny" / variant / f"seed{seed}.log").exists()
    sweeps = pd.read_csv(results / "tables" / "sweeps.csv")
    assert list(sweeps["path"]) == VARIANTS and (sweeps["n"] == 2).all()
    # the same 50 validation samples in every run, trained on the other 150
    splits = {json.dumps(json.loads(p.read_text())["validation"], sort_keys=True)
              for p in (results / "runs").glob("snn_T*/seed*/run.json")}
    splits |= {json.dumps(json.loads(p.read_text())["validation"], sort_keys=True)
               for p in (results / "sweeps").rglob("run.json")}
    (split,) = splits
    assert json.loads(split)["n_validation"] == 50
    accuracy = pd.read_csv(results / "tables" / "accuracy.csv")
    assert (accuracy["chosen_on"] == "chosen on validation").all()
    html = (results / "report.html").read_text()
    assert "The sweeps&#39; variants" in html and LABELS[3] in html
    sweeps_table = sweeps.set_index("variant")  # the ablation: one row per neuron x surrogate
    assert list(sweeps_table.index) == LABELS
    assert list(sweeps_table["neuron"]) == ["lif", "lif", "plif", "plif"]
    assert list(sweeps_table["surrogate"]) == ["sigmoid", "atan", "sigmoid", "atan"]


def test_two_training_jobs_ran_at_once_on_their_own_gpu_slots(finished_run):
    runs = [json.loads((finished_run / "results" / "runs" / model / f"seed{seed}" / "run.json")
                       .read_text()) for model, seed in RUNS]
    for info in runs:
        assert info["gpu_slot"] in (0, 1) and info["cuda_visible_devices"] == str(info["gpu_slot"])
        assert info["device"] == "cpu" and "(2 threads)" in info["device_name"]  # 4 cores / 2
    runs += [json.loads(p.read_text())  # the sweep's runs claim slots too
             for p in (finished_run / "results" / "sweeps").rglob("run.json")]
    overlapping = [(a, b) for a, b in itertools.combinations(runs, 2)
                   if a["started"] < b["finished"] and b["started"] < a["finished"]]
    assert overlapping, "the --resources gpu=2 run never ran two training jobs at once"
    assert all(a["gpu_slot"] != b["gpu_slot"] for a, b in overlapping)
    html = (finished_run / "results" / "report.html").read_text()
    assert html.count("claimed GPU slot") == len(RUNS) + 8  # and the sweep's eight runs


def test_snakemakes_own_report_holds_every_figure_and_table(finished_run):
    """`snakemake --report` with the runtime dependencies only (pygments comes with
    Snakemake's `reports` extra, not only with pytest)."""
    import zipfile

    from snnflow.report.registry import TABLES, figure_names

    (finished_run / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(finished_run, "--configfile", "tiny.yaml", "--report",
              "results/snakemake-report.zip", runtime_only=True)
    with zipfile.ZipFile(finished_run / "results" / "snakemake-report.zip") as zf:
        names = zf.namelist()
    for figure in figure_names([2, 4], 4, ["sweeps", "nir"]):
        assert any(name.endswith(f"/{figure}.png") for name in names), figure
    for table in TABLES:
        assert any(name.endswith(f"/{table}.csv") for name in names), table
    assert sum(name.endswith("/report.html") for name in names) == 2  # ours, inside theirs


def machine_paths(workdir):
    """Absolute paths of this machine that a shared output must not show."""
    return [str(workdir), str(workdir.resolve()), str(Path.home()), str(REPO)]


def test_what_people_share_shows_no_path_of_this_machine(finished_run):
    """The page, every CSV and table, and Snakemake's report archive show folders as the
    user wrote them (relative; the home folder as ~), never the machine's resolved paths."""
    import zipfile

    results = finished_run / "results"
    shared = [results / "report.html", *results.glob("tables/*"), *results.glob("data/*.csv")]
    texts = {str(path): path.read_text(errors="replace") for path in shared}
    archive = results / "snakemake-report.zip"
    if not archive.exists():
        snakemake(finished_run, "--configfile", "tiny.yaml", "--report",
                  "results/snakemake-report.zip", runtime_only=True)
    with zipfile.ZipFile(archive) as zf:
        texts.update({name: zf.read(name).decode(errors="replace") for name in zf.namelist()
                      if name.endswith((".html", ".csv", ".txt", ".rst", ".json", ".js"))})
    for name, text in texts.items():
        for path in machine_paths(finished_run):
            assert path not in text, (name, path)


def test_the_page_in_a_real_browser(finished_run):
    """Every image decodes, nothing is fetched from outside the file, no console error."""
    import headless_chromium

    reason = ensure_debian_packages(["chromium"], ["chromium"])
    if reason:
        pytest.skip(reason)
    chromium = headless_chromium.find_chromium()
    page = finished_run / "results" / "report.html"
    seen = headless_chromium.visit(chromium, page.as_uri(), width=1400, measure=LAYOUT)
    assert len(seen.images) == html_images(page) and seen.images
    for alt, complete, width in seen.images:
        assert complete and width > 0, f"image '{alt}' did not decode"
    outside = [url for url in seen.requests if url != page.as_uri() and not url.startswith("data:")]
    assert outside == [], "the page is not self-contained"
    assert seen.console_errors == []
    screenshot = finished_run / "results" / "report-screenshot.png"
    screenshot.write_bytes(seen.screenshot)
    assert seen.screenshot.startswith(b"\x89PNG") and len(seen.screenshot) > 10_000
    layout = seen.measured  # at 1400 px: no table wider than the page, a compact runs table
    assert layout["page"] == 1400 and layout["too_wide"] == [], layout
    assert layout["runs_rows"] and max(layout["runs_rows"]) < 100, layout["runs_rows"]
    assert layout["names"] > 10 and layout["wrapped_names"] == [], layout  # SNN-4 never breaks
    assert layout["models_rows"] >= 3, layout  # what each network is, visible


# What the page looks like at the width it was measured at (headless_chromium.visit)
LAYOUT = """JSON.stringify({
  page: document.documentElement.clientWidth,
  models_rows: document.querySelectorAll("#tables-models tbody tr").length,
  too_wide: Array.from(document.querySelectorAll("table.table")).filter(
      t => t.getBoundingClientRect().right > document.documentElement.clientWidth
           || t.parentElement.scrollWidth > t.parentElement.clientWidth + 1).map(
      t => t.closest("section").id),
  runs_rows: Array.from(document.querySelectorAll("#tables-runs tbody tr")).map(
      r => Math.round(r.getBoundingClientRect().height)),
  wrapped_names: Array.from(document.querySelectorAll("table.table span.name")).filter(
      name => name.getClientRects().length > 1).map(name => name.textContent),
  names: document.querySelectorAll("table.table span.name").length
})"""


def html_images(page):
    return page.read_text().count("<img ")


def test_make_watch_takes_a_folder_with_a_space(tmp_path):
    """`make watch RESULTS_DIR="my results"` serves that folder, making no stray ones."""
    results = tmp_path / "my results"
    process, _ = started_watch(results)
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)
    assert (results / "tensorboard").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my results"]


def tensorboard_run(results, run):
    """TensorBoard's name of the curves of `run` (a run folder below `results`): its
    one computation's folder (snnflow.train.curves.attempt_folder)."""
    (attempt,) = (results / "tensorboard" / run).iterdir()
    return f"{run}/{attempt.name}"


def test_make_watch_serves_every_runs_curves_equal_to_its_csvs(finished_run):
    """A real TensorBoard (make watch, loopback) over the study's results/tensorboard: its
    scalars and hparams routes give, for an SNN run, a CNN run and a sweep variant, each
    epoch's metrics.csv and layers.csv values and the run's settings."""
    import urllib.parse
    import urllib.request

    from snnflow.train import curves

    results = finished_run / "results"
    runs = {tensorboard_run(results, run): results / run for run in (
        "runs/snn_T4/seed0", "runs/cnn/seed1", f"sweeps/tiny/{VARIANTS[1]}/seed0")}
    process, url = started_watch(results)
    try:
        def get(route, body=None):
            return tensorboard_get(url, route, body)

        deadline = time.monotonic() + 120
        while not set(runs) <= set(get("data/runs")):  # TensorBoard loads in the background
            assert time.monotonic() < deadline, get("data/runs")
            time.sleep(1)
        time.sleep(6)  # a reload (every 5 s) after the runs appeared: every file read
        for run, folder in runs.items():
            def points(tag):
                query = urllib.parse.urlencode({"run": run, "tag": tag})
                return [(step, value) for _, step, value in
                        get(f"data/plugin/scalars/scalars?{query}")]

            metrics = pd.read_csv(folder / "metrics.csv")
            for column in ("train_loss", "val_acc", "test_loss", "test_acc", "lr",
                           "train_seconds"):
                assert points(curves.METRIC_TAGS[column]) == [
                    (e, float(np.float32(v))) for e, v in zip(metrics["epoch"], metrics[column])]
            layers = pd.read_csv(folder / "layers.csv")
            for layer, rows in layers.groupby("layer"):
                if rows["firing_rate"].isna().all():  # the CNN's: not spiking
                    continue
                for column, tag in curves.LAYER_TAGS.items():
                    assert points(tag.format(layer=layer)) == [
                        (e, float(np.float32(v))) for e, v in zip(rows["epoch"], rows[column])]
            assert len(points(curves.RUNNING_LOSS_TAG)) == 2 * 7  # 8 batches, the last not
        groups = get("data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 1000,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"],
            "colParams": [{"hparam": "seed"}, {"hparam": "tau"},
                          {"metric": {"tag": curves.FINAL_TAGS["chosen"], "group": ""}}]})
        sessions = {group["name"]: group for group in groups["sessionGroups"]}
        assert len(sessions) == len(RUNS) + 8  # and the sweep's eight runs
        for run, folder in runs.items():
            info = json.loads((folder / "run.json").read_text())
            hparams = sessions[run]["hparams"]
            assert (hparams["seed"], hparams["model"]) == (info["seed"], info["model"])
            assert hparams.get("tau") == info["settings"].get("tau")
            values = {m["name"]["tag"]: m["value"] for m in sessions[run]["metricValues"]}
            metrics = pd.read_csv(folder / "metrics.csv")
            assert values[curves.FINAL_TAGS["final"]] == float(
                np.float32(metrics["test_acc"].iloc[-1]))
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # make and the TensorBoard it started
        process.wait(timeout=30)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_nothing_reruns_without_a_change(finished_run):
    assert planned_jobs(finished_run, variant()) == {}


NIR_JOBS = {"export_nir": 4, "verify_nir": 4}  # one each per SNN run
SCORING = {"neurobench": 6, "neurobench_sweep": 8}  # one per trained run


def test_snn_setting_reruns_the_snn_jobs_and_the_report(finished_run):
    assert planned_jobs(finished_run, variant(snn__tau=3.0)) == {
        "train_snn": 4, **NIR_JOBS, "neurobench": 4, "report": 1, "all": 1}


def test_adding_a_T_builds_its_frames_and_run_only(finished_run):
    assert planned_jobs(finished_run, variant(snn__T=[2, 4, 8])) == {
        "frames": 1, "data_summary": 1, "train_snn": 2, "export_nir": 2, "verify_nir": 2,
        "neurobench": 2, "report": 1, "all": 1}


def test_cnn_learning_rate_reruns_the_cnn_and_the_report(finished_run):
    assert planned_jobs(finished_run, variant(cnn__lr=0.02)) == {
        "train_cnn": 2, "neurobench": 2, "report": 1, "all": 1}


def planned_after_editing(workdir, relative_path, comment):
    """What a dry run plans once `relative_path` (under workflow/snnflow) is edited."""
    path = workdir / "workflow" / "snnflow" / relative_path
    original = path.read_text()
    path.write_text(original + f"\n{comment}\n")
    try:
        return planned_jobs(workdir, variant())
    finally:
        path.write_text(original)


def test_adding_a_seed_runs_only_its_training_jobs_and_the_report(finished_run):
    assert planned_jobs(finished_run, variant(seeds=[0, 1, 2])) == {
        "train_snn": 2, "train_cnn": 1, "train_sweep": 4, "export_nir": 2, "verify_nir": 2,
        "neurobench": 3, "neurobench_sweep": 4, "report": 1, "all": 1}


def planned_with_sweep(workdir, table):
    """What a dry run plans with the sweep's table replaced by `table`."""
    path = workdir / "sweeps" / "tiny.tsv"
    try:
        path.write_text(table)
        return planned_jobs(workdir, variant())
    finally:
        path.write_text(TINY_SWEEP)


def test_adding_a_sweep_row_runs_only_its_jobs_and_the_report(finished_run):
    assert planned_with_sweep(finished_run, TINY_SWEEP + "1.5\tif\tsigmoid\n") == {
        "train_sweep": 2, "neurobench_sweep": 2, "report": 1, "all": 1}


def test_removing_a_sweep_row_drops_it_from_the_report_only(finished_run):
    assert planned_with_sweep(finished_run, TINY_SWEEP.rsplit("1.5\tplif\tatan", 1)[0]) == {
        "report": 1, "all": 1}


def test_a_sweep_at_another_T_builds_its_frames_and_runs(finished_run):
    assert planned_jobs(finished_run, variant(sweep__T=8)) == {
        "frames": 1, "train_sweep": 8, "neurobench_sweep": 8, "report": 1, "all": 1}


def test_the_validation_split_reruns_the_training_jobs_and_the_report(finished_run):
    retrained = {"train_snn": 4, "train_cnn": 2, "train_sweep": 8, **NIR_JOBS, **SCORING,
                 "report": 1, "all": 1}
    assert planned_jobs(finished_run, variant(validation__fraction=0.0)) == retrained
    assert planned_jobs(finished_run, variant(validation__seed=1)) == retrained


def test_the_nir_check_follows_its_switch_and_its_sample_count(finished_run):
    assert planned_jobs(finished_run, variant(nir__enabled=False)) == {"report": 1, "all": 1}
    assert planned_jobs(finished_run, variant(nir__samples=10)) == {
        "verify_nir": 4, "report": 1, "all": 1}


def test_neurobench_follows_its_switch_and_its_sample_count(finished_run):
    assert planned_jobs(finished_run, variant(neurobench__enabled=False)) == {
        "report": 1, "all": 1}
    assert planned_jobs(finished_run, variant(neurobench__samples=10)) == {
        **SCORING, "report": 1, "all": 1}


def test_every_run_is_scored_by_neurobench_in_agreement_with_the_projects_counts(
        finished_run):
    from snnflow.scoring import NEUROBENCH_METRICS

    results = finished_run / "results"
    folders = [results / "runs" / model / f"seed{seed}" for model, seed in RUNS]
    folders += [results / "sweeps" / "tiny" / variant / f"seed{seed}"
                for variant in VARIANTS for seed in (0, 1)]
    for folder in folders:
        scores = pd.read_csv(folder / "neurobench.csv")
        assert list(scores["metric"]) == list(NEUROBENCH_METRICS)
        assert set(scores["agrees"]) == {"yes", "not compared"}, scores
        assert (scores["samples"] == 80).all()
    table = pd.read_csv(results / "tables" / "neurobench.csv")
    assert list(table["model"]) == ["SNN-2", "SNN-4", "CNN", *LABELS]
    assert table["agreement"].str.startswith("yes").all()
    assert len(pd.read_csv(results / "tables" / "neurobench_agreement.csv")) == 14 * 8
    assert (results / "logs" / "neurobench_cnn_seed1.log").exists()
    assert (results / "benchmarks" / "neurobench_snn_T2_seed0.tsv").exists()
    html = (results / "report.html").read_text()
    assert "NeuroBench&#39;s metrics of every model and variant" in html \
        or "NeuroBench's metrics of every model and variant" in html


def test_every_snn_run_is_exported_and_checked_in_the_importers(finished_run):
    results = finished_run / "results"
    nir = pd.read_csv(results / "tables" / "nir.csv")
    assert len(nir) == 4 * 3  # SNN-2 and SNN-4, two seeds, three importers
    assert set(nir["importer"]) == {"spikingjelly", "norse", "snntorch"}
    installed = nir[nir["version"].notna()]
    assert (installed["samples"] == 80).all() and (installed["prediction_agreement"] == 1).all()
    assert (installed["other_mismatches"] == 0).all()
    for T, seed in itertools.product((2, 4), (0, 1)):
        assert (results / "runs" / f"snn_T{T}" / f"seed{seed}" / "model.nir").stat().st_size
        assert (results / "logs" / f"verify_nir_T{T}_seed{seed}.log").exists()
    assert "Deploying the SNN (NIR)" in (results / "report.html").read_text()


def test_a_bad_sweep_cell_stops_before_any_job_naming_file_row_and_column(finished_run):
    (finished_run / "sweeps" / "bad.tsv").write_text("tau\tlr\n2\t0.01\n3\t-1\n")
    (finished_run / "bad.yaml").write_text(yaml.safe_dump(variant(sweep__file="sweeps/bad.tsv")))
    result = snakemake(finished_run, "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: sweeps/bad.tsv: row 2 (line 3), column lr: -1.0 is less than or "
                      "equal to the minimum of 0 - fix the cell (limits: "
                      "workflow/schemas/config.schema.yaml)"]


def test_the_energy_constants_rerun_only_the_report(finished_run):
    assert planned_jobs(finished_run, variant(energy__e_ac_pj=0.5)) == {"report": 1, "all": 1}


# the scoring runs the SNN's modules (the CNN's runs share its script)
SNN_AND_REPORT = {"train_snn": 4, "train_sweep": 8, **NIR_JOBS, **SCORING, "report": 1,
                  "all": 1}
EDITS = {  # a file under workflow/snnflow: what an edit to it reruns
    # the network, and a module train_snn.py reaches only through snn.py
    "model/neuron.py": SNN_AND_REPORT,
    "model/fused_block.py": SNN_AND_REPORT,
    # the training kernels: the training jobs that load them, not the data jobs
    "kernels/cpu_ops.py": SNN_AND_REPORT,
    "kernels/csrc/lif.cpp": SNN_AND_REPORT,
    # the training loop: both models' training jobs
    "train/loop.py": {"train_snn": 4, "train_cnn": 2, "train_sweep": 8, **NIR_JOBS, **SCORING,
                      "report": 1, "all": 1},
    # the data-prep kernels: the event store, the frames and what is made from them; not
    # the synthetic data, nor the MNIST cache and the CNN
    "kernels/csrc/prep.c": {"nmnist_events": 1, "frames": 2, "data_summary": 1,
                            "train_snn": 4, "train_sweep": 8, **NIR_JOBS, "neurobench": 4,
                            "neurobench_sweep": 8, "report": 1, "all": 1},
    # the MNIST reader: the MNIST cache and what is made from it
    "data/mnist.py": {"mnist_cache": 1, "data_summary": 1, "train_cnn": 2, **SCORING,
                      "report": 1, "all": 1},
    # the scoring: every run's NeuroBench job and the report
    "scoring/harness.py": {**SCORING, "report": 1, "all": 1},
    # report code: the report only
    "report/tables.py": {"report": 1, "all": 1},
    "report/page.html.j2": {"report": 1, "all": 1},
}


@pytest.mark.parametrize("edited", EDITS)
def test_an_edit_reruns_exactly_the_jobs_that_run_the_edited_code(finished_run, edited):
    comment = {".py": "# an edit", ".j2": "{# an edit #}"}.get(Path(edited).suffix,
                                                                "/* an edit */")
    assert planned_after_editing(finished_run, edited, comment) == EDITS[edited]


def test_a_caption_edit_reruns_the_report_only(finished_run):
    caption = finished_run / "workflow" / "report" / "tables" / "comparison.rst"
    original = caption.read_text()
    caption.write_text(original + "\nAn edit.\n")
    try:
        assert planned_jobs(finished_run, variant()) == {"report": 1, "all": 1}
    finally:  # the caption as it was, and the report marked up to date again
        caption.write_text(original)
        snakemake(finished_run, "--configfile", "variant.yaml", "--touch", cores=CORES)


def test_bad_config_stops_before_any_job_naming_the_key(finished_run):
    (finished_run / "bad.yaml").write_text(yaml.safe_dump(variant(snn__T=[0, 4])))
    result = snakemake(finished_run, "-n", "--configfile", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "config key snn.T[0]: 0 is less than the minimum of 1" in result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_explains_itself():
    """`snakemake --list-rules` prints each rule's docstring beside its name."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rules = [line for line in result.stdout.splitlines() if line and not line[0].isspace()]
    assert len(rules) >= 12 and all(" (" in line for line in rules), rules


def test_a_second_config_shows_only_its_runs_and_the_firsts_leftovers_are_listed(
        finished_run, tmp_path):
    """One study per results folder: after T [2, 4] and two sweep rows, a run with T [4]
    and one row leaves the page, the tables and Snakemake's report with the second
    config's runs only, and `python -m snnflow.plan.stale` (make stale) names the first
    config's leftovers, then removes them on request."""
    import zipfile

    workdir = tmp_path / "study"
    shutil.copytree(finished_run, workdir, symlinks=True)
    second = variant(snn__T=[4])
    (workdir / "second.yaml").write_text(yaml.safe_dump(second))
    (workdir / "sweeps" / "tiny.tsv").write_text("tau\tneuron\tsurrogate\n1.5\tlif\tsigmoid\n")
    snakemake(workdir, "--configfile", "second.yaml", "--resources", "gpu=2", cores=CORES)
    results = workdir / "results"
    html = (results / "report.html").read_text()
    assert "SNN-2" not in html and "neuron=plif" not in html and "SNN-4" in html
    for table in ("timing", "accuracy", "runs", "pareto"):
        text = (results / "tables" / f"{table}.csv").read_text()
        assert "SNN-2" not in text and "neuron=plif" not in text, table
    snakemake(workdir, "--configfile", "second.yaml", "--report", "results/second.zip",
              runtime_only=True)
    with zipfile.ZipFile(results / "second.zip") as zf:
        assert not [name for name in zf.namelist() if "snn_T2" in name or "neuron~plif" in name]

    def stale(*options):
        result = subprocess.run([sys.executable, "-m", "snnflow.plan.stale", *options, "--cores",
                                 "1", "--configfile", "second.yaml"], cwd=workdir,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()

    listed = stale()
    assert listed[0] == "make stale: the study in results/ (the config of: --configfile " \
                        "second.yaml)"
    listed = listed[1:]
    leftovers = listed[:-1]
    assert "results/runs/snn_T2/seed0/metrics.csv" in leftovers
    assert "results/frames/nmnist_T2.h5" not in leftovers  # the sweep still trains at T=2
    assert "results/checkpoints/snn_T2_seed1.pt" in leftovers
    assert "results/checkpoints/snn_T2_seed1.log" in leftovers  # every attempt's log
    assert "results/checkpoints/snn_T2_seed1.pt.lock" in leftovers  # the run's lock
    assert f"results/checkpoints/sweeps/tiny/{VARIANTS[1]}/seed0.pt.lock" in leftovers
    assert [line for line in leftovers if line.startswith(
        f"results/tensorboard/sweeps/tiny/{VARIANTS[1]}/seed1/settings-")
        and "/events.out.tfevents." in line]  # its curves (snnflow.train.curves)
    assert "results/logs/train_snn_T2_seed0.log" in leftovers
    assert "results/benchmarks/train_snn_T2_seed0.tsv" in leftovers
    assert f"results/sweeps/tiny/{VARIANTS[1]}/seed0/run.json" in leftovers
    assert all("snn_T4" not in line and VARIANTS[0] not in line for line in leftovers)
    assert not [line for line in leftovers if line.startswith("results/raw/")]
    assert listed[-1].startswith(f"{len(leftovers)} files (") and "REMOVE=1" in listed[-1]
    assert stale("--remove")[-1].startswith(f"removed {len(leftovers)} files")
    assert not (results / "runs" / "snn_T2").exists()
    assert (results / "runs" / "snn_T4" / "seed0" / "metrics.csv").exists()
    assert (results / "checkpoints" / "snn_T4_seed0.pt").exists()
    assert list((results / "tensorboard" / "runs" / "snn_T4" / "seed0").iterdir())
    assert stale()[1:] == ["results/ holds nothing that the current config no longer makes"]
    assert planned_jobs(workdir, second) == {}  # nothing the study needs was removed


def test_the_demo_writes_its_own_folder_never_the_studys(tmp_path):
    """`make demo` then the study: the demo's every output lies in results-demo/."""
    workdir = tmp_path / "copy"
    workdir.mkdir()
    copy_workflow(workdir, ("workflow", "envs", "sweeps"))
    summary = snakemake(workdir, "--configfile", "workflow/demo.yaml", "--summary").stdout
    outputs = [line.split("\t")[0] for line in summary.splitlines()[1:]]
    assert outputs and all(path.startswith("results-demo/") for path in outputs), outputs[:5]
    study = snakemake(workdir, "--summary").stdout.splitlines()[1:]
    assert all(line.startswith("results/") for line in study)
