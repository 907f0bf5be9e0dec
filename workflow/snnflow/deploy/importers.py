"""The NIR importers the check runs (snnflow.deploy.nir_check), by their PyPI names, and
their installed versions. Importable without torch (the Snakefile reads the versions)."""

from importlib import metadata

IMPORTER_PACKAGES = ("spikingjelly", "norse", "snntorch")


def installed_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def importer_versions():
    """{package: installed version or None}."""
    return {name: installed_version(name) for name in IMPORTER_PACKAGES}
