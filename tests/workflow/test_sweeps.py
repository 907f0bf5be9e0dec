"""Sweep tables (snnflow.plan.sweeps): every cell checked and named, stable paths."""

import copy

import pytest
import yaml

from conftest import REPO
from snnflow import SnnflowError
from snnflow.plan.sweeps import read_sweeps

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def sweeps_of(tmp_path, text, name="ta.tsv", **sweep):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    config = copy.deepcopy(CONFIG)
    config["sweep"] = {"file": str(path), "T": None, **sweep}
    return read_sweeps(config, SCHEMA)


def test_rows_become_paramspace_patterns_with_stable_numbers(tmp_path):
    (sweep,) = sweeps_of(tmp_path, "# a comment\ntau\tsurrogate_alpha\tbatch_size\n"
                                   "1.5\t4\t64\n\n3\t8.00\t128\n")
    assert (sweep.name, sweep.T, sweep.columns) == ("ta", 16, ("tau", "surrogate_alpha",
                                                               "batch_size"))
    assert list(sweep.variants) == [
        "tau~1.5/surrogate_alpha~4.0/batch_size~64", "tau~3.0/surrogate_alpha~8.0/batch_size~128"]
    values = sweep.variants["tau~3.0/surrogate_alpha~8.0/batch_size~128"]
    assert values == {"tau": 3.0, "surrogate_alpha": 8.0, "batch_size": 128}
    assert isinstance(values["batch_size"], int) and isinstance(values["tau"], float)


def test_a_choice_column_takes_its_choices_names(tmp_path):
    """snn.loss is a name, not a number: its cells are kept as written, checked against
    the schema's choices."""
    (sweep,) = sweeps_of(tmp_path, "loss\tdropout\nmse_rate\t0\nce_rate\t0.25\n")
    assert list(sweep.variants) == ["loss~mse_rate/dropout~0.0", "loss~ce_rate/dropout~0.25"]
    assert sweep.variants["loss~ce_rate/dropout~0.25"] == {"loss": "ce_rate", "dropout": 0.25}
    with pytest.raises(SnnflowError, match=r"row 1 \(line 2\), column loss: 'mse' is not one "
                                           "of mse_rate, ce_rate - fix the cell"):
        sweeps_of(tmp_path, "loss\nmse\n")
    with pytest.raises(SnnflowError, match="column dropout: 1.0 is greater than or equal to "
                                           "the maximum of 1"):
        sweeps_of(tmp_path, "dropout\n1\n")
    # dataset.framing, the one column outside the snn section
    (sweep,) = sweeps_of(tmp_path, "framing\ncount\ntime\n")
    assert sweep.variants["framing~time"] == {"framing": "time"}
    with pytest.raises(SnnflowError, match="column framing: 'events' is not one of count, time"):
        sweeps_of(tmp_path, "framing\nevents\n")


def test_the_sweeps_T_is_its_own(tmp_path):
    assert sweeps_of(tmp_path, "tau\n2\n", T=4)[0].T == 4


@pytest.mark.parametrize("text, message", [
    ("tau\tsurrogate_alpha\n1.5\t4\n2\tfour\n",
     "ta.tsv: row 2 (line 3), column surrogate_alpha: 'four' is not a number - fix the cell"),
    ("tau\n1.5\n1.0\n",
     "ta.tsv: row 2 (line 3), column tau: 1.0 is less than or equal to the minimum of 1 - fix "
     "the cell (limits: workflow/schemas/config.schema.yaml)"),
    ("batch_size\n64\n32.0\n",
     "ta.tsv: row 2 (line 3), column batch_size: '32.0' is not an integer - fix the cell"),
    ("hidden\n0\n", "ta.tsv: row 1 (line 2), column hidden: 0 is less than the minimum of 1"),
    ("lr\nnan\n", "ta.tsv: row 1 (line 2), column lr: nan is not a finite number"),
    ("tau\t\tlr\n", "ta.tsv: line 1, column '' is not a setting a sweep varies"),
    ("T\n4\n", "ta.tsv: line 1, column 'T' is not a setting a sweep varies - use some of "
               "tau, v_threshold"),
    ("tau\ttau\n2\t3\n", "ta.tsv: line 1: column tau appears twice"),
    ("tau\tlr\n2\n", "ta.tsv: row 1 (line 2) has 1 cells, the header 2 columns"),
    ("tau\n", "ta.tsv: no variants under the header"),
    ("# nothing\n", "ta.tsv: no header line"),
    ("tau\n2\n2.0\n", "ta.tsv: row 2 (line 3) repeats the variant of "),
    ("v_reset\n1.0\n", "ta.tsv: row 1 (line 2), column v_reset: v_threshold 1.0 is not above "
                       "v_reset 1.0"),
])
def test_a_bad_table_is_named_by_file_row_and_column(tmp_path, text, message):
    with pytest.raises(SnnflowError) as err:
        sweeps_of(tmp_path, text)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_file_and_a_name_that_cannot_be_a_folder(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["sweep"] = {"file": str(tmp_path / "absent.tsv"), "T": None}
    with pytest.raises(SnnflowError, match="config key sweep.file: .*absent.tsv does not exist"):
        read_sweeps(config, SCHEMA)
    with pytest.raises(SnnflowError, match="may hold only letters, digits, _ and -"):
        sweeps_of(tmp_path, "tau\n2\n", name="my sweep.tsv")


def test_two_sweeps_may_not_share_a_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "s.tsv").write_text("tau\n2\n")
    config = copy.deepcopy(CONFIG)
    config["sweep"] = {"file": [str(tmp_path / "a" / "s.tsv"), str(tmp_path / "b" / "s.tsv")],
                       "T": None}
    with pytest.raises(SnnflowError, match="would both write results/sweeps/s/"):
        read_sweeps(config, SCHEMA)


def test_the_shipped_example_sweeps_are_valid():
    config = copy.deepcopy(CONFIG)
    config["sweep"]["file"] = [str(REPO / "sweeps" / "tau_alpha.tsv"),
                               str(REPO / "sweeps" / "demo.tsv")]
    example, demo = read_sweeps(config, SCHEMA)
    assert len(example.variants) == 9 and example.columns == ("tau", "surrogate_alpha")
    assert list(demo.variants) == ["tau~1.5", "tau~3.0"]


def refused_within(seconds, read):
    """The SnnflowError `read()` raises, which must come within `seconds` (a FIFO would
    block an open() forever, /dev/zero fill the memory)."""
    import threading

    found = []

    def run():
        try:
            read()
        except SnnflowError as err:
            found.append(str(err))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still reading after {seconds} s"
    assert found, "accepted"
    return found[0]


@pytest.mark.parametrize("kind, words", [
    ("fifo", "is not a regular file - point it at a tab-separated table"),
    ("link to /dev/zero", "is not a regular file"),
    ("large", "is 2097156 bytes, more than 1048576 - point it at a tab-separated table"),
])
def test_a_sweep_file_that_is_no_table_is_refused_unread(tmp_path, kind, words):
    import os

    path = tmp_path / "ta.tsv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "large":
        path.write_text("tau\n" + "2\n" * (1 << 20))
    else:
        path.symlink_to("/dev/zero")
    config = copy.deepcopy(CONFIG)
    config["sweep"] = {"file": str(path), "T": None}
    message = refused_within(10, lambda: read_sweeps(config, SCHEMA))
    assert message.startswith(f"config key sweep.file: {path} ") and words in message


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    (sweep,) = sweeps_of(tmp_path, "\ufefftau\tlr\n1.5\t0.01\n")
    assert sweep.columns == ("tau", "lr")
