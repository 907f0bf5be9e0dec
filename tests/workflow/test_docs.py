"""The user's guide and its references: a README of at most 300 lines, a configuration
reference that is what the schema makes, every link and named section that exists, and
the small-study recipe's config planning the jobs it promises."""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO, dry_run_plan, make_nmnist_tree

DOCS = sorted((REPO / "docs").glob("*.md"))


def keys(node, path=()):
    """The dotted keys of a config mapping's values."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from keys(value, (*path, key))
        else:
            yield ".".join((*path, key))


def test_the_readme_is_a_guide_of_at_most_300_lines():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
    headings = [line for line in lines if line.startswith("## ")]
    for recipe in ("## 1. The offline demo", "## 2. A small study on your own copies",
                   "## 3. The full study on a GPU machine", "## 4. Several GPUs",
                   "## 5. A SLURM cluster", "## 6. The workflow as a module"):
        assert any(heading.startswith(recipe) for heading in headings), recipe


def test_the_configuration_reference_is_what_the_schema_makes():
    from snnflow.plan import config_reference

    assert config_reference.undescribed() == []
    assert (REPO / "docs" / "configuration.md").read_text() == config_reference.render(), \
        "docs/configuration.md is stale - run make config-reference"
    schema_keys = [key for key, _, _ in config_reference.leaves(
        yaml.safe_load(config_reference.SCHEMA.read_text()))]
    defaults = yaml.safe_load((REPO / "config.yaml").read_text())

    assert sorted(keys(defaults)) == sorted(schema_keys)  # config.yaml: every key, a default


SCHEMA_KEYWORDS = {"description", "type", "properties", "required", "additionalProperties",
                   "items", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                   "enum", "default", "allOf", "anyOf", "oneOf", "$ref", "$defs", "minItems",
                   "maxItems", "uniqueItems", "pattern", "minLength", "maxLength", "$schema",
                   "definitions",
                   "title", "not", "const", "if", "then", "else"}


def test_every_schema_node_holds_only_json_schema_keywords():
    """A comma in an unquoted description inside a YAML flow mapping splits it into a key
    of its own ("slower)"), cutting the description the reference shows."""
    from snnflow.plan import config_reference

    stray = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if path and path[-1] in ("properties", "$defs", "definitions"):
                    walk(value, (*path, key))
                    continue
                if key not in SCHEMA_KEYWORDS:
                    stray.append(".".join((*path, str(key))))
                walk(value, (*path, key))
        elif isinstance(node, list):
            for value in node:
                walk(value, path)
    walk(yaml.safe_load(config_reference.SCHEMA.read_text()), ())
    assert stray == []


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip("# ").strip().lower())
    return text.replace(" ", "-")


def headings(path):
    return {line.strip("# ").strip() for line in path.read_text().splitlines()
            if line.startswith("#")}


def test_every_link_and_named_section_resolves():
    broken = []
    for page in [REPO / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, fragment = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
            elif fragment and fragment not in {anchor(h) for h in headings(path)}:
                broken.append(f"{page.name}: {target} (no such section)")
    # a docs page or the README named with a section, in comments, messages and docs
    sources = [REPO / "config.yaml", REPO / "Makefile", *DOCS,
               *(REPO / "workflow").rglob("*.py"), *(REPO / "workflow").rglob("*.smk"),
               *(REPO / "profiles").rglob("*.yaml"), *(REPO / "tests").rglob("*.py")]
    named = re.compile(r"""(docs/[\w-]+\.md|README)[\\]*"?,? *[\\]*"([A-Z][^"\\]+)[\\]*\"""")
    for source in sources:
        for file, section in named.findall(source.read_text()):
            path = REPO / ("README.md" if file == "README" else file)
            if not path.exists() or not any(heading.startswith(section)
                                            for heading in headings(path)):
                broken.append(f"{source.relative_to(REPO)}: {file} \"{section}\"")
    assert broken == []


def test_the_small_study_config_plans_what_its_recipe_says(tmp_path, rng):
    from snnflow.data.idx import ALL_FILES, write_idx

    make_nmnist_tree(tmp_path / "NMNIST", 1, rng)
    (tmp_path / "MNIST").mkdir()
    for name in ALL_FILES:
        images = "images" in name
        data = (rng.integers(0, 256, (10, 28, 28), dtype=np.uint8) if images
                else np.arange(10, dtype=np.uint8))
        write_idx(tmp_path / "MNIST" / f"{name}.gz", data)
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "2",
         "--configfile", str(REPO / "workflow" / "small.yaml"), "--config",
         f"nmnist_dir={tmp_path / 'NMNIST'}", f"mnist_dir={tmp_path / 'MNIST'}"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = dry_run_plan(result.stdout)
    assert plan["train_snn"] == 2 and plan["train_cnn"] == 1 and plan["frames"] == 2, plan
    assert "results-small/report.html" in result.stdout


@pytest.mark.parametrize("name", ["demo.yaml", "small.yaml"])
def test_the_shipped_configs_set_only_known_keys(name):
    from snnflow.plan.config_reference import SCHEMA, leaves

    known = {key for key, _, _ in leaves(yaml.safe_load(SCHEMA.read_text()))}

    assert set(keys(yaml.safe_load((REPO / "workflow" / name).read_text()))) <= known


def test_the_layout_names_every_subpackage_and_module_and_nothing_gone():
    """docs/development.md's layout of workflow/snnflow/, one bullet per subpackage with
    its modules in backticks, against the folders."""
    text = (REPO / "docs" / "development.md").read_text()
    layout = text[text.index("- `workflow/snnflow/`"):text.index("- `workflow/snakemake_")]
    package = REPO / "workflow" / "snnflow"
    bullets = dict(re.findall(r"^  - `(\w+)/`(.*?)(?=^  - `|\Z)", layout, re.M | re.S))
    folders = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert set(bullets) == folders
    for name, bullet in bullets.items():
        modules = {p.stem for p in (package / name).glob("*.py") if p.stem != "__init__"}
        named = set(re.findall(r"`(\w+)`", bullet))
        assert named == modules, (name, sorted(modules - named), sorted(named - modules))
