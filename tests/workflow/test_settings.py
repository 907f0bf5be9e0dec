import copy

import pytest
import yaml

from conftest import REPO
from snnflow import SnnflowError
from snnflow.plan.settings import cnn_settings, snn_settings, validate_config

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_configs_are_valid(config):
    validate_config(config, SCHEMA)
    demo = copy.deepcopy(config)
    for key, value in yaml.safe_load((REPO / "workflow" / "demo.yaml").read_text()).items():
        demo[key] = {**demo[key], **value} if isinstance(value, dict) else value
    validate_config(demo, SCHEMA)


def set_key(config, dotted, value):
    *parents, last = dotted.split(".")
    node = config
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize("key, value, words", [
    ("snn.T", [4, 0], "config key snn.T[1]: 0 is less than the minimum of 1"),
    ("snn.T", [4, 4, 16], "config key snn.T: .*non-unique"),
    ("snn.T", [], "config key snn.T: .* should be non-empty"),
    ("snn.T", [4.5], "config key snn.T[0]: 4.5 is not of type 'integer'"),
    ("device", "gpu", "config key device: 'gpu' does not match"),
    ("cnn.lr", -0.1, "config key cnn.lr: -0.1 is less than or equal to the minimum of 0"),
    ("snn.epochs", 0, "config key snn.epochs: 0 is less than the minimum of 1"),
    ("snn.batch_size", 0, "config key snn.batch_size"),
    ("snn.engine", "fast", "config key snn.engine: 'fast' is not one of"),
    ("snn.channels", [], "config key snn.channels: .* should be non-empty"),
    ("snn.tau", 1.0, "config key snn.tau"),
    ("snn.main_T", 5, "config key snn.main_T: 5 is not one of snn.T"),
    ("snn.lr_typo", 0.1, "config key snn.lr_typo: unknown key"),
    ("nmnist_dir", "/no/such/folder",
     "config key nmnist_dir: folder /no/such/folder does not exist"),
    ("nmnist_dir", "/data/{T}", "config key nmnist_dir: /data/{T} holds '{' or '}'"),
    ("mnist_dir", "/data/x}", "config key mnist_dir: /data/x} holds '{' or '}'"),
    ("snn.main_T", 4.0, "config key snn.main_T: 4.0 is not of type 'integer'"),
    ("snn.T", [4.0], "config key snn.T[0]: 4.0 is not of type 'integer'"),
    ("seeds", [0, 0], "config key seeds: [0, 0] has non-unique elements"),
    ("seeds", [], "config key seeds: [] should be non-empty"),
    ("energy.e_ac_pj", 0, "config key energy.e_ac_pj: 0 is less than or equal to the minimum"),
    ("snn.epochs", 1.0, "config key snn.epochs: 1.0 is not of type 'integer'"),
    ("cnn.batch_size", 4.0, "config key cnn.batch_size: 4.0 is not of type 'integer'"),
    ("snn.channels", [4.0, 8, 8], "config key snn.channels[0]: 4.0 is not of type 'integer'"),
    ("snn.lr", float("nan"), "config key snn.lr: nan is not a finite number"),
    ("snn.v_threshold", float("nan"), "config key snn.v_threshold: nan is not a finite number"),
    ("download.timeout_seconds", float("inf"), "config key download.timeout_seconds: inf is not"),
    ("mnist_dir", "/no/such/folder", "config key mnist_dir: folder /no/such/folder does not exist"),
    ("validation.fraction", 0.6, "config key validation.fraction: 0.6 is greater than the maximum"),
    ("validation.fraction", -0.1, "config key validation.fraction: -0.1 is less than the minimum"),
    ("validation.seed", -1, "config key validation.seed: -1 is less than the minimum of 0"),
    ("sweep.T", 0, "config key sweep.T: 0 is less than the minimum of 1"),
    ("sweep.file", 3, "config key sweep.file: 3 is not valid under any of the given schemas"),
    ("sweep.file", [], "config key sweep.file: [] is not valid under any"),
])
def test_bad_values_name_the_key(config, key, value, words):
    set_key(config, key, value)
    with pytest.raises(SnnflowError, match=words.replace("[", r"\[").replace("]", r"\]")) as err:
        validate_config(config, SCHEMA)
    assert "\n" not in str(err.value)


def test_missing_key_is_named(config):
    del config["snn"]["tau"]
    with pytest.raises(SnnflowError, match="config key snn: 'tau' is missing"):
        validate_config(config, SCHEMA)


def test_nmnist_dir_needs_train_and_test(config, tmp_path):
    (tmp_path / "Train").mkdir()
    config["nmnist_dir"] = str(tmp_path)
    with pytest.raises(SnnflowError, match="has no Test/ folder"):
        validate_config(config, SCHEMA)
    (tmp_path / "Test").mkdir()
    validate_config(config, SCHEMA)


def test_job_settings_carry_only_what_the_job_uses(config):
    snn = snn_settings(config, "16", "3")
    assert snn["T"] == 16 and snn["seed"] == 3 and snn["tau"] == 2.0 and snn["model"] == "snn"
    cnn = cnn_settings(config, "0")
    assert "tau" not in cnn and "T" not in cnn and cnn["lr"] == config["cnn"]["lr"]
    config["snn"]["lr"] = 0.5
    config["energy"]["e_ac_pj"] = 1.0  # the report's, not a training setting
    assert cnn_settings(config, "0") == cnn
    assert {k: v for k, v in snn_settings(config, "16", "3").items() if k != "lr"} == {
        k: v for k, v in snn.items() if k != "lr"}


def test_text_from_a_nested_command_line_override_becomes_numbers(config):
    # snakemake --config 'snn={T: [4, 8], main_T: 4, lr: 1e-3}' delivers strings
    config["snn"].update(T=["4", "8"], main_T="4", lr="1e-3")
    config["synthetic"]["enabled"] = "true"
    validate_config(config, SCHEMA)
    assert config["snn"]["T"] == [4, 8] and config["snn"]["main_T"] == 4
    assert config["snn"]["lr"] == 0.001 and config["synthetic"]["enabled"] is True


def test_null_from_a_nested_command_line_override_is_null(config):
    # snakemake --config 'sweep={file: sweeps/tau_alpha.tsv, T: null}' delivers 'null'
    config["sweep"] = {"file": "sweeps/tau_alpha.tsv", "T": "null"}
    validate_config(config, SCHEMA)
    assert config["sweep"] == {"file": "sweeps/tau_alpha.tsv", "T": None}


def test_the_validation_seed_is_a_setting_only_with_a_split(config):
    assert snn_settings(config, 16, 0)["validation_seed"] is None  # fraction 0
    config["validation"] = {"fraction": 0.1, "seed": 7}
    settings = snn_settings(config, 16, 0)
    assert (settings["validation_fraction"], settings["validation_seed"]) == (0.1, 7)
    assert cnn_settings(config, 0)["validation_seed"] == 7


def test_a_sweeps_values_replace_the_snn_sections(config):
    settings = snn_settings(config, 4, 1, {"tau": 3.0, "batch_size": 64})
    assert (settings["tau"], settings["batch_size"], settings["T"]) == (3.0, 64, 4)
    assert settings["lr"] == config["snn"]["lr"]


def test_an_unquoted_off_that_yaml_read_as_false_is_the_word_off(config):
    config["performance"]["kernels"] = yaml.safe_load("kernels: off")["kernels"]
    validate_config(config, SCHEMA)
    assert config["performance"]["kernels"] == "off"
    config["performance"]["kernels"] = True  # no word of the list reads as true
    with pytest.raises(SnnflowError, match="config key performance.kernels: True is not one"):
        validate_config(config, SCHEMA)


def test_text_that_is_not_a_number_names_the_key_and_how_a_command_line_value_is_read(config):
    config["snn"]["T"] = ["four"]
    with pytest.raises(SnnflowError, match=r"config key snn.T\[0\]: 'four' is not of type "
                                           r"'integer' - .*a value given with --config is read "
                                           r"as YAML: --config snn.T=\[4,8\]"):
        validate_config(config, SCHEMA)


def test_a_missing_mnist_file_names_the_key(config, tmp_path):
    config["mnist_dir"] = str(tmp_path)
    with pytest.raises(SnnflowError, match="config key mnist_dir: .* holds neither "
                                           "train-images-idx3-ubyte.gz nor"):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize("other", [{"autocast": "fp16"}, {"compile": True}])
def test_cuda_graphs_refuse_fp16_and_compile(config, other):
    config["performance"].update(cuda_graphs=True, **other)
    with pytest.raises(SnnflowError, match="config key performance.cuda_graphs: a CUDA graph"):
        validate_config(config, SCHEMA)
    config["performance"].update(autocast="bf16", compile=False)
    validate_config(config, SCHEMA)


def test_dataset_folders_are_shown_as_the_user_wrote_them(monkeypatch):
    """What people share never shows the machine's resolved path: the home folder is ~
    again (the config check expanded it), a relative folder stays relative."""
    from snnflow.plan.settings import as_written

    monkeypatch.setenv("HOME", "/home/ada")
    assert as_written("/home/ada/data/nmnist") == "~/data/nmnist"
    assert as_written("/home/ada") == "~"
    assert as_written("/home/adam/nmnist") == "/home/adam/nmnist"  # another folder
    assert as_written("data/nmnist") == "data/nmnist"
    assert as_written("/srv/nmnist") == "/srv/nmnist"
    assert as_written(None) is None


def test_a_results_folder_with_a_wildcard_is_refused_and_home_is_expanded(config, monkeypatch):
    config["results_dir"] = "results-{T}"
    with pytest.raises(SnnflowError, match=r"^config key results_dir: results-\{T\} holds"):
        validate_config(config, SCHEMA)
    monkeypatch.setenv("HOME", "/home/ada")
    config["results_dir"] = "~/studies/a/"
    validate_config(config, SCHEMA)
    assert config["results_dir"] == "/home/ada/studies/a"
