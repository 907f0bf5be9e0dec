import json

import pandas as pd
import pytest

from snnflow import METRICS_COLUMNS, SnnflowError
from snnflow.report import build_report


def fake_run(folder, model, epochs=3, final_acc=0.9):
    folder.mkdir(parents=True)
    rows = [{"epoch": e, "lr": 1e-3, "train_loss": 1 / e, "train_acc": final_acc * e / epochs,
             "test_loss": 1.1 / e, "test_acc": final_acc * e / epochs - 0.01,
             "train_seconds": 2.0, "test_seconds": 0.5} for e in range(1, epochs + 1)]
    pd.DataFrame(rows, columns=METRICS_COLUMNS).to_csv(folder / "metrics.csv", index=False)
    info = {"model": model, "settings": {"lr": 1e-3}, "device_name": "Test CPU (2 threads)",
            "versions": {"torch": "2.x"}, "code_fingerprint": "f00", "n_train": 100}
    (folder / "run.json").write_text(json.dumps(info))


@pytest.fixture
def runs(tmp_path):
    dirs = {f"snn_T{T}": tmp_path / "runs" / f"snn_T{T}" for T in (4, 16)}
    dirs["cnn"] = tmp_path / "runs" / "cnn"
    for model, folder in dirs.items():
        fake_run(folder, model)
    return dirs


def test_report_has_every_table_and_figure(tmp_path, runs):
    out = tmp_path / "results"
    build_report(runs, 16, out / "report.html", out / "tables", out / "figures")
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4 and "http" not in html.replace(
        "http-equiv", "")
    for words in ("CNN vs SNN-16", "reference study", "Time per epoch", "Test accuracy against T",
                  "Test CPU (2 threads)", "RTX 3090", "23.24"):
        assert words in html
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "acc_curves.png", "accuracy_vs_T.png", "loss_curves.png", "time_per_epoch.png"]
    timing = pd.read_csv(out / "tables" / "timing.csv")
    assert list(timing["model"]) == ["SNN-4", "SNN-16", "CNN"]
    assert timing.loc[timing.model == "SNN-16", "reference_train_seconds"].item() == 23.24
    assert timing["total_seconds"].tolist() == [2.5, 2.5, 2.5]
    comparison = pd.read_csv(out / "tables" / "comparison.csv")
    ours = comparison[comparison.source == "ours"]
    assert set(ours["model"]) == {"CNN", "SNN-16"} and set(ours["epoch_kind"]) == {"last", "best"}
    assert comparison[comparison.source == "reference study"]["test_acc"].tolist() == [0.9934, 0.996]
    by_T = pd.read_csv(out / "tables" / "accuracy_by_T.csv")
    assert by_T["T"].tolist() == [4, 16]


def test_report_refuses_a_run_without_epochs(tmp_path, runs):
    (runs["cnn"] / "metrics.csv").write_text(",".join(METRICS_COLUMNS) + "\n")
    with pytest.raises(SnnflowError, match="cnn/metrics.csv: no epochs"):
        build_report(runs, 16, tmp_path / "r.html", tmp_path / "t", tmp_path / "f")
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "t").exists()
