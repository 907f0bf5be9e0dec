"""The conda environments named by the rules match the pip dependencies."""

import re
import tomllib

import yaml

from conftest import REPO

# conda-forge names of the pip packages the jobs import
CONDA_NAMES = {"torch": "pytorch", "seaborn": "seaborn", "pandas": "pandas", "numpy": "numpy",
               "h5py": "h5py"}


def rule_envs():
    envs = {}
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", rules.read_text(), re.M):
            match = re.search(r'conda:\n\s+"([^"]+)"', body)
            envs[rule] = match and (rules.parent / match.group(1)).resolve()
    return envs


def test_every_rule_names_an_existing_conda_env():
    envs = rule_envs()
    assert {"frames", "train_snn", "train_cnn", "report"} <= set(envs)
    for rule, env in envs.items():
        assert env is not None and env.exists(), f"rule {rule}: conda env missing"


def env_packages(path):
    packages = set()
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        packages |= {re.split(r"[<>=! ]", item)[0] for item in items}
    return packages


def test_envs_cover_the_pip_dependencies_the_jobs_import():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_names = {re.split(r"[<>=! \[]", d)[0] for d in project["dependencies"]}
    in_envs = set().union(*(env_packages(p) for p in (REPO / "envs").glob("*.yaml")))
    for pip_name, conda_name in CONDA_NAMES.items():
        assert pip_name in pip_names
        assert conda_name in in_envs, f"{conda_name} missing from envs/"
    assert "tonic" in pip_names and "tonic" in in_envs
