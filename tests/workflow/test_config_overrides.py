"""Dotted keys on Snakemake's command line: `--config snn.epochs=2 snn.T=[4,8]` sets the
nested keys (workflow/snakemake_logger_plugin_snnflow), checked as a config file's are; an
unknown key names the closest known one."""

import subprocess
import sys

import pytest

from conftest import REPO, dry_run_plan

pytestmark = pytest.mark.workflow


def dry_run(tmp_path, *config):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                             "-n", "--cores", "1", "--config", *config], cwd=tmp_path,
                            capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def test_dotted_keys_set_the_nested_keys_typed_as_in_a_config_file(tmp_path):
    rc, output = dry_run(tmp_path, "snn.epochs=2", "snn.T=[4,8]", "snn.main_T=8",
                         "validation.fraction=0.1", "seeds=[0]")
    assert rc == 0, output
    plan = dry_run_plan(output)
    assert plan["train_snn"] == 2 and plan["frames"] == 2 and plan["train_cnn"] == 1, plan


def test_the_reader_nests_dotted_keys_and_leaves_the_rest_to_snakemake():
    from snakemake_logger_plugin_snnflow import read_config_entries

    assert read_config_entries(["snn.epochs=2", "snn.T=[4,8]", "gpus=2", "a.b.c=x",
                                "snn.lr=0.5"]) == {
        "snn": {"epochs": 2, "T": ["4", "8"], "lr": 0.5}, "gpus": 2, "a": {"b": {"c": "x"}}}
    with pytest.raises(SystemExit):
        read_config_entries(["snn..epochs=2"])


@pytest.mark.parametrize("config, line", [
    (["snn.epochs=two"], "error: config key snn.epochs: 'two' is not of type 'integer' - fix "
                         "the config"),
    (["snn.T=[4,8"], "error: config key snn.T: '[4,8' is not of type 'array'"),
    (["snn.epoch=2"], "error: config key snn.epoch: unknown key (did you mean snn.epochs?) - "
                      "fix the config"),
    (["validaton.fraction=0.1"], "error: config key validaton: unknown key (did you mean "
                                 "validation?)"),
    (["snn.épochs=2"], "error: --config snn.épochs=2: snn.épochs is not a dotted config key"),
    (["snn..epochs=2"], "error: --config snn..epochs=2: snn..epochs is not a dotted config"),
    (["snn.=2"], "error: --config snn.=2: snn. is not a dotted config key"),
    (([".".join(["a"] * 3000) + "=1"]), "error: --config a.a.a.a"),
    (["snn=5", "snn.epochs=2"], "error: --config snn.epochs=2: sets a key inside snn, which "
                                "snn=5 set to a single value - give one of them"),
    (["snn.epochs=2", "snn=5"], "error: --config snn=5: sets snn, which snn.epochs=2 set too"),
])
def test_a_bad_value_or_an_unknown_key_is_one_line_naming_it(tmp_path, config, line):
    rc, output = dry_run(tmp_path, *config)
    errors = [text for text in output.splitlines() if text.startswith("error: ")]
    assert rc == 1 and len(errors) == 1 and errors[0].startswith(line), output
    assert "Traceback" not in output
