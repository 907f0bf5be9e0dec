"""Code fingerprints: a short hash of exactly the code a job script runs.

Snakemake reruns a job when its script changes, not when a module the script imports
does; each rule therefore passes `code_fingerprint(<script>)` as a param. The files
are found by following imports with `ast`, so none can be forgotten and none is added
by hand: module boundaries decide what reruns. This module must import quickly (the
Snakefile calls it at parse time).
"""

import ast
import hashlib
import re
from pathlib import Path

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
PACKAGE = "snnflow"
KERNEL_SOURCES = Path("snnflow/kernels/csrc")
FILE_NAME = re.compile(r"\w[\w-]*(\.\w+)+")  # "prep.c", "page.html.j2"


def code_files(script):
    """The files job script `script` runs, relative to workflow/: the script, every snnflow
    module it imports directly or through other modules (absolute, relative and dotted
    imports), the __init__.py of every package on the way, and the data files those
    modules name: a string constant equal to the name of a kernel source in
    kernels/csrc/ or of a file beside the module (a page template, say)."""
    kernel_sources = WORKFLOW_DIR / KERNEL_SOURCES
    script_path = WORKFLOW_DIR / "scripts" / f"{script}.py"
    files, todo = {script_path}, [(script_path, None)]
    while todo:
        path, module = todo.pop()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                files.update(_named_file(node.value, (kernel_sources, path.parent)))
            for imported in _imported_modules(node, module, path.name == "__init__.py"):
                for dotted, file in _module_files(imported):
                    if file not in files:
                        files.add(file)
                        todo.append((file, dotted))
    return sorted(str(f.relative_to(WORKFLOW_DIR)) for f in files)


def _named_file(text, folders):
    """The non-Python file called `text` in the first of `folders` that holds one."""
    if not FILE_NAME.fullmatch(text) or text.endswith(".py"):
        return []
    for folder in folders:
        if (folder / text).is_file():
            return [folder / text]
    return []


def _imported_modules(node, module, is_package):
    """Dotted names of the snnflow modules (or packages) an import node may bring in:
    `import snnflow.a.b`, `from snnflow.a import b` (b may be a module or a name in a),
    and the relative forms inside the package (`module`: the importing module's name)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        if module is None:
            return []
        parts = module.split(".")
        parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != PACKAGE:
        return []
    return [base] + [f"{base}.{a.name}" for a in node.names]


def _module_files(dotted):
    """(dotted name, file) of a module and of each package above it, for those that exist
    (a name imported from a module is not a module: it yields only its parents)."""
    found, parts = [], dotted.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        folder = WORKFLOW_DIR.joinpath(*parts[:depth])
        if (folder / "__init__.py").is_file():
            found.append((name, folder / "__init__.py"))
        elif folder.with_suffix(".py").is_file():
            found.append((name, folder.with_suffix(".py")))
        else:
            break
    return found


def code_fingerprint(script):
    """Short hash of the files a job script runs (`code_files`), for its rule's params."""
    digest = hashlib.sha256()
    for name in code_files(script):
        digest.update(name.encode())
        digest.update((WORKFLOW_DIR / name).read_bytes())
    return digest.hexdigest()[:16]
