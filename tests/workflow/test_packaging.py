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


# conda packages that are toolchains, not Python packages the jobs import: left unpinned
TOOLCHAIN = {"c-compiler", "cxx-compiler", "ninja", "pip"}
PIP_NAMES = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def installed(name):
    import importlib.metadata
    import platform

    if name == "python":  # the envs pin the minor release: conda picks the patch release
        return ".".join(platform.python_version_tuple()[:2])
    return importlib.metadata.version(name).split("+")[0]  # 2.13.0+cpu -> 2.13.0


def pinned(path):
    """{package: version} of an env file; every non-toolchain package must be pinned."""
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, version = re.fullmatch(r"([\w.-]+)\s*(?:==?(\S+))?", item).groups()
            if name in TOOLCHAIN:
                continue
            assert version, f"{path.name}: {item} is not pinned to an exact version"
            pins[PIP_NAMES.get(name, name)] = version
    return pins


def test_conda_envs_pin_the_versions_the_tests_run_with():
    for path in (REPO / "envs").glob("*.yaml"):
        for name, version in pinned(path).items():
            assert installed(name) == version, f"{path.name}: {name} {version}, installed " \
                                               f"{installed(name)}"


def test_pip_constraints_are_what_is_installed_and_agree_with_the_envs():
    constraints = dict(line.split("==") for line in
                       (REPO / "envs" / "pip-constraints.txt").read_text().splitlines()
                       if line and not line.startswith("#"))
    for name, version in constraints.items():
        assert installed(name) == version, f"pip-constraints.txt: {name}"
    for path in (REPO / "envs").glob("*.yaml"):
        for name, version in pinned(path).items():
            if name in constraints:
                assert constraints[name] == version, f"{path.name} and pip-constraints: {name}"


def test_the_data_env_pins_tonics_own_dependencies():
    """pip, installing tonic into the data env, finds each of tonic's requirements there
    already, pinned: it adds nothing unpinned beside conda's packages."""
    import importlib.metadata

    env = pinned(REPO / "envs" / "data.yaml")
    normal = {name.lower().replace("-", "_"): name for name in env}
    for requirement in importlib.metadata.requires("tonic"):
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~ ;\[]", requirement)[0].lower().replace("-", "_")
        assert name in normal, f"envs/data.yaml: tonic needs {requirement}, not pinned there"
