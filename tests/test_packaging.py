"""The installed package: all modules live under `nlp182/`; `server/`, `corpora/` and `bench/` are not."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_folder_is_installed_under_the_nlp182_name() -> None:
    """Every folder of modules is a package, and so is every folder of data (setuptools warned that
    it would ignore the page's folder, listed only as the server's data); the package says it is
    typed (``py.typed``)."""
    listed = set(_setuptools()["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "nlp182").rglob("__init__.py")}
    data = {".".join(path.relative_to(ROOT).parts) for path in (ROOT / "nlp182").rglob("*")
            if path.is_dir() and path.name != "__pycache__" and not any(path.glob("*.py"))}
    found |= data
    assert data == {"nlp182.server.static"}
    static = ROOT / "nlp182" / "server" / "static"
    shipped = {path.name for pattern in _setuptools()["package-data"]["nlp182.server.static"]
               for path in static.glob(pattern)}
    assert {path.name for path in static.iterdir()} == shipped
    assert (ROOT / "nlp182" / "py.typed").is_file() and "py.typed" in _setuptools()["package-data"]["nlp182"]
    assert found == listed, f"add to / remove from pyproject's packages: {sorted(found ^ listed)}"
    assert all(name == "nlp182" or name.startswith("nlp182.") for name in listed)
    assert "package-dir" not in _setuptools(), "no folder outside nlp182/ is mapped into the package"


def test_no_python_module_outside_the_package_but_benches_and_tests() -> None:
    stray = [path.relative_to(ROOT).as_posix() for folder in ("server", "corpora")
             for path in (ROOT / folder).rglob("*.py")]
    assert not stray, f"server/ holds deployment files and corpora/ data only: {stray}"


def test_an_uninstalled_checkout_imports_the_server_and_corpora_with_pythonpath_alone(tmp_path: Path) -> None:
    code = ("import nlp182.server.app, nlp182.corpora.prepare, pathlib, sys\n"
            "print(pathlib.Path(nlp182.server.app.__file__).resolve())\n"
            "print(pathlib.Path(nlp182.corpora.prepare.__file__).resolve())\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == [str(ROOT / "nlp182" / "server" / "app.py"),
                                   str(ROOT / "nlp182" / "corpora" / "prepare.py")]


def test_every_c_kernel_source_ships_as_package_data() -> None:
    """The kernels compile from their .c files on first use, so an install without them fails late."""
    globs = _setuptools()["package-data"]["nlp182"]
    sources = {path.relative_to(ROOT / "nlp182") for path in (ROOT / "nlp182").rglob("*.c")}
    assert sources and all(any(source.match(pattern) for pattern in globs) for source in sources), globs


def test_the_license_is_declared_and_its_text_ships() -> None:
    """A package without a license cannot be used by anyone who reads the law: the metadata names
    it as an SPDX expression and the wheel carries its text."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "nlp182 authors" in text


def test_the_version_is_written_once_and_the_metadata_reads_it_from_the_package() -> None:
    """Runs record the version that wrote them, so it must be the one the package reports: the
    project file reads it from ``nlp182.__version__``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nlp182.__version__"}


def test_the_source_distribution_holds_the_package_and_no_tests(tmp_path: Path) -> None:
    """setuptools adds ``tests/test*.py`` by itself: a dozen of the tests, without the corpora,
    fixtures and benches they read, which failed when run from the unpacked archive."""
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "nlp182"), str(ROOT / "tests"), str(tmp_path)], check=True)
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "sdist", "-d", "dist"],
                   cwd=tmp_path, check=True, capture_output=True)
    (archive,) = (tmp_path / "dist").glob("nlp182-*.tar.gz")
    with tarfile.open(archive) as sdist:
        tops = {Path(name).parts[1] for name in sdist.getnames() if len(Path(name).parts) > 1}
    assert "nlp182" in tops and "LICENSE" in tops
    assert "tests" not in tops
