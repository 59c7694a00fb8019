"""The version of a solver plug-in, as it goes into a benchmark cell's resume key.

A row is only worth resuming from if the code that produced it is the code that would
run now. The package version alone does not say that while the project is developed
(it stays ``0.1.0`` across many commits), so a plug-in's version is its distribution's
version plus a hash of its source files::

    memplan.solvers.greedy:GreedySolver
        └─ plug-in tree: memplan.solvers (the solvers/ folder, every *.py below it)
             └─ "memplan 0.1.0+src.3fa2b1c9d0e1"

The *plug-in tree* is the package two levels below the top (``memplan.solvers``,
``acme.planners``) when the plug-in's module lies inside one, else the top-level
package, else the module's own file (a single-module plug-in such as a test helper).
The whole tree is hashed, not only the module's file, because plug-ins call each other
through the registry (the ILP warm-starts from the greedy, the greedy packs with the
allocators), which no import scan can follow. The core (``memplan.*`` outside the
tree) is covered by the package version only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import sys
from pathlib import Path

#: Files hashed at most per plug-in tree (a guard against a plug-in in a huge package).
MAX_SOURCE_FILES = 5000


def plugin_tree(module_name: str) -> str:
    """The package (or lone module) whose sources make up a plug-in's version.

    Args:
        module_name: the plug-in class's ``__module__``.

    Returns:
        A dotted name: ``a.b`` when it is a package, else ``a``.
    """
    parts = module_name.split(".")
    if len(parts) >= 2:
        candidate = ".".join(parts[:2])
        module = sys.modules.get(candidate) or importlib.import_module(candidate)
        if hasattr(module, "__path__"):
            return candidate
    return parts[0]


def _source_files(tree: str) -> list[tuple[str, Path]]:
    """(relative name, path) of every Python source of ``tree``, sorted by name."""
    module = sys.modules.get(tree) or importlib.import_module(tree)
    roots = list(getattr(module, "__path__", []))
    if not roots:  # a single module
        file = getattr(module, "__file__", None)
        return [(Path(file).name, Path(file))] if file else []
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            found.setdefault(path.relative_to(root).as_posix(), path)
            if len(found) >= MAX_SOURCE_FILES:
                break
    return sorted(found.items())


@functools.cache
def _distribution_version(top: str) -> str:
    """``name version`` of the distribution that provides the top-level package ``top``."""
    try:
        return f"{top} {importlib.metadata.version(top)}"
    except importlib.metadata.PackageNotFoundError:
        pass
    for name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"{top} (not installed)"


def tree_version(tree: str) -> str:
    """Distribution version plus a hash of the sources of ``tree`` as they are on disk.

    The sources are read every time (a few milliseconds), so a solver edited while a
    long-lived process runs gets a new version; only the distribution lookup is cached.
    """
    digest = hashlib.sha256()
    for name, path in _source_files(tree):
        digest.update(name.encode("utf-8") + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return f"{_distribution_version(tree.split('.')[0])}+src.{digest.hexdigest()[:12]}"


def plugin_version(cls: type) -> str:
    """The version of the plug-in class ``cls``: see the module docstring."""
    return tree_version(plugin_tree(cls.__module__))
