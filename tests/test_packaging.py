"""The installed package: `server/` and `corpora/` live under the `nlp182` name, `bench/` is not installed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_folder_is_installed_under_the_nlp182_name() -> None:
    listed = set(_setuptools()["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "nlp182").rglob("__init__.py")}
    found |= {"nlp182.server", "nlp182.corpora"}
    assert found == listed, f"add to / remove from pyproject's packages: {sorted(found ^ listed)}"
    assert all(name == "nlp182" or name.startswith("nlp182.") for name in listed)


def test_server_and_corpora_folders_map_to_nlp182_subpackages() -> None:
    mapping = _setuptools()["package-dir"]
    assert mapping["nlp182.server"] == "server" and mapping["nlp182.corpora"] == "corpora"
    assert "bench" not in mapping


def test_server_imports_as_nlp182_server() -> None:
    import nlp182.corpora.prepare
    import nlp182.server.app

    assert Path(nlp182.server.app.__file__).resolve() == ROOT / "server" / "app.py"
    assert Path(nlp182.corpora.prepare.__file__).resolve() == ROOT / "corpora" / "prepare.py"


def test_every_c_kernel_source_ships_as_package_data() -> None:
    """The kernels compile from their .c files on first use, so an install without them fails late."""
    globs = _setuptools()["package-data"]["nlp182"]
    sources = {path.relative_to(ROOT / "nlp182") for path in (ROOT / "nlp182").rglob("*.c")}
    assert sources and all(any(source.match(pattern) for pattern in globs) for source in sources), globs
