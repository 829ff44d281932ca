"""The documentation cannot drift from the code.

Every Python block of the README and the docs runs (each page in a fresh process, in an empty
folder, its blocks in order as a reader would run them); every ``nlp182`` command line in their
shell blocks parses with the real CLI parser; the benchmark pages and the README's headline
table are what ``python -m bench.pages`` generates from ``bench/results``; every public name of
the library has an API reference entry whose docstring gives the shapes of its tensor arguments;
the README stays a front door; and no file speaks of the project's history.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench import pages
from nlp182.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TEMPLATES = DOCS / "benchmarks" / "templates"
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$', re.M)
REFERENCED_PACKAGES = ("attention", "train", "optim", "embeddings", "seq2seq", "captioning", "vision")
# A shape as the docstrings write it: ``(B, T, D)``, ``(V,)``, ``(N, ...)``, ``(...)``.
SHAPE = re.compile(r"\((?:[A-Za-z0-9_]+|\.\.\.)(?:,\s*(?:[A-Za-z0-9_ +*/]+|\.\.\.))*,?\)")


def expand(text: str) -> str:
    """The page as the site shows it: snippet includes (``--8<-- "FILE"``) replaced by the file."""
    return INCLUDE.sub(lambda m: (ROOT / m.group(1)).read_text(encoding="utf-8"), text)


def doc_pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [p for p in found if TEMPLATES not in p.parents]


def blocks(path: Path, language: str) -> list[str]:
    text = expand(path.read_text(encoding="utf-8"))
    return [body for lang, body in BLOCK.findall(text) if lang == language]


PYTHON_PAGES = [p for p in doc_pages() if blocks(p, "python")]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(page: Path, tmp_path: Path) -> None:
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks(page, "python")), encoding="utf-8")
    env = {**os.environ, "NLP182_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{page.relative_to(ROOT)}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def command_lines(text: str) -> list[list[str]]:
    """The ``nlp182`` invocations of shell blocks, as argument lists after ``nlp182``.

    Continuation lines are joined; ``&&``, ``;``, ``|`` and ``&`` separate commands; redirections
    and comments are dropped; ``torchrun ... -m nlp182.cli ARGS`` counts as ``nlp182 ARGS``.
    """
    found = []
    for body in (b for lang, b in BLOCK.findall(text) if lang in ("sh", "bash")):
        for line in body.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars="&;|<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            command: list[str] = []
            for token in [*lexer, ";"]:
                if token and set(token) <= set("&;|<>"):
                    found += _nlp182_args(command)
                    command = []
                    if ">" in token or "<" in token:
                        command = ["<redirect>"]
                elif command[:1] == ["<redirect>"]:
                    command = ["<redirected>"]
                elif command[:1] != ["<redirected>"]:
                    command.append(token)
    return found


def _nlp182_args(command: list[str]) -> list[list[str]]:
    if command[:1] == ["nlp182"]:
        return [command[1:]]
    if command[:1] == ["torchrun"] and "nlp182.cli" in command:
        return [command[command.index("nlp182.cli") + 1:]]
    return []


CLI_PAGES = [p for p in doc_pages() if command_lines(expand(p.read_text(encoding="utf-8")))]


@pytest.mark.parametrize("page", CLI_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_command_lines_parse_with_the_cli_parser(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    # The guides show GPU commands (--device cuda); they must parse as on a machine with a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    parser = build_parser()
    for argv in command_lines(expand(page.read_text(encoding="utf-8"))):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page.relative_to(ROOT)}: `nlp182 {shlex.join(argv)}` does not parse")
        assert args.command, argv


def test_command_line_extraction_follows_the_shell() -> None:
    text = (
        "```sh\nnlp182 index runs/w2v --kind hnsw && kill -HUP \"$(cat pid)\"   # reload\n"
        "nlp182 train seq2seq --data cmudict \\\n    --epochs 40 > g2p.log 2>&1\n"
        "torchrun --standalone -m nlp182.cli train w2v --out runs/x\ncurl 'http://x/?a=1&b=2'\n```\n"
        "```python\nnlp182 = 1\n```\n"
    )
    assert command_lines(text) == [
        ["index", "runs/w2v", "--kind", "hnsw"],
        ["train", "seq2seq", "--data", "cmudict", "--epochs", "40"],
        ["train", "w2v", "--out", "runs/x"],
    ]


def test_a_wrong_flag_in_the_docs_would_be_caught() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "w2v", "--no-such-flag"])


def test_benchmark_pages_and_headline_are_generated_from_the_results() -> None:
    assert pages.main(["--check"]) == 0, "run python -m bench.pages and commit the pages"


def test_a_changed_result_makes_the_pages_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pages.load

    def changed(name: str) -> dict:
        data = real(name)
        if name == "vectors-cpu":
            data["scenarios"]["mmap"]["ratio"]["peak_rss_mb"] = 0.25
        return data

    monkeypatch.setattr(pages, "load", changed)
    assert pages.main(["--check"]) == 1


def test_every_figure_names_its_machine_date_and_command() -> None:
    for page in (DOCS / "benchmarks").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for figure in text.split("\n### ")[1:]:
            assert "**Command:** `" in figure and "**Measured:** `bench/results/" in figure, page.name
            assert re.search(r"committed \d{4}-\d{2}-\d{2}", figure), (page.name, figure[:80])


def test_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert readme.index("make demo") < readme.index("make test") < readme.index("## ")
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


def _public(package: str) -> list[tuple[str, str, object]]:
    """``(module, name, object)`` of a package's public names: its ``__all__``, or else the classes
    and functions defined in its modules."""
    module = importlib.import_module(f"nlp182.{package}")
    if hasattr(module, "__all__"):
        return [(module.__name__, name, getattr(module, name)) for name in module.__all__]
    found = []
    for info in pkgutil.iter_modules(module.__path__):
        sub = importlib.import_module(f"{module.__name__}.{info.name}")
        found += [(sub.__name__, name, obj) for name, obj in vars(sub).items()
                  if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                  and obj.__module__ == sub.__name__]
    return found


def _takes_arrays(obj: object) -> bool:
    if inspect.isclass(obj):
        functions = [vars(obj)[m] for m in ("__init__", "forward") if m in vars(obj)]
    else:
        functions = [obj]
    for function in functions:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            continue
        if any("Tensor" in str(p.annotation) or "ndarray" in str(p.annotation) for p in parameters):
            return True
    return False


def _docstrings(obj: object) -> str:
    parts = [obj.__doc__ or ""]
    if inspect.isclass(obj):
        parts += [vars(obj)[m].__doc__ or "" for m in ("__init__", "forward") if m in vars(obj)]
    return "\n".join(parts)


@pytest.mark.parametrize("package", REFERENCED_PACKAGES)
def test_every_public_name_has_a_reference_entry_with_shapes(package: str) -> None:
    reference = (DOCS / "reference" / f"{package}.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: (nlp182\.[\w.]+)$", reference, re.M))
    names = _public(package)
    assert names
    for module, name, obj in names:
        assert module in documented, f"{module} has no ::: entry in docs/reference/{package}.md"
        if not (inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj)):
            continue
        assert (obj.__doc__ or "").strip(), f"{module}.{name} has no docstring"
        if _takes_arrays(obj):
            assert SHAPE.search(_docstrings(obj)), f"{module}.{name} takes arrays but names no shape"


@pytest.mark.parametrize("package", REFERENCED_PACKAGES)
def test_every_public_name_has_a_docstring_the_reference_renders(package: str) -> None:
    """The reference shows only what has a docstring as griffe reads the source (not at run time)."""
    griffe = pytest.importorskip("griffe", reason="the docs extra (make docs) installs griffe")
    loaded = griffe.load(f"nlp182.{package}", search_paths=[str(ROOT)])
    for module, name, _ in _public(package):
        path = ".".join([*module.split(".")[2:], name])
        docstring = loaded[path].docstring
        assert docstring is not None and docstring.value.strip(), f"{module}.{name} shows no docstring"


def test_nothing_speaks_of_the_project_history() -> None:
    words = re.compile(r"this\s+stop|previous\s+stop|issue\s+[0-9]+", re.I)
    found = []
    for top in ("README.md", "docs", "nlp182", "tests", "bench"):
        paths = [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*"))
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                text = path.read_bytes().decode("utf-8", errors="ignore")
                found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in words.finditer(text)]
    assert not found, found


def test_sphinx_roles_in_docstrings_read_as_code_in_the_reference() -> None:
    spec = importlib.util.spec_from_file_location("rst_roles", DOCS / "hooks" / "rst_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "see :class:`~nlp182.train.Trainer`, :func:`masked_softmax` and :mod:`nlp182.attention`."
    assert module.plain_roles(text) == "see `Trainer`, `masked_softmax` and `nlp182.attention`."
