"""Imports only go downward: read every import statement (lazy ones inside functions too) with ``ast``.

The layers, top to bottom: ``cli``/``commands``, ``server`` and the ``course`` demos (they use
everything, and the library imports none of them); models
(``seq2seq``, ``captioning``, ``vision``); ``train``; ``optim`` and ``attention``; the basics
(``device``, ``errors``, ``io``, ``progress``). A lower layer importing a higher one makes the
higher one impossible to change or test alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (the folder whose modules are checked, the modules they must not import)
RULES = [
    ("nlp182/optim", ("nlp182.train", "nlp182.seq2seq", "nlp182.vision", "nlp182.captioning",
                      "nlp182.commands", "nlp182.cli")),
    ("nlp182/attention", ("nlp182.seq2seq", "nlp182.captioning", "nlp182.train", "nlp182.commands",
                          "nlp182.cli")),
    ("nlp182/train", ("nlp182.seq2seq", "nlp182.captioning", "nlp182.vision", "nlp182.commands",
                      "nlp182.cli")),
    ("nlp182/server", ("nlp182.commands", "nlp182.cli", "nlp182.course")),
]
LIBRARY = ("attention", "optim", "train", "text", "embeddings", "seq2seq", "captioning", "vision", "corpora")
for folder in LIBRARY:
    RULES.append((f"nlp182/{folder}", ("nlp182.server", "nlp182.commands", "nlp182.cli", "nlp182.course")))

# Known violations that another change removes; each must still exist (else delete it here).
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    """``nlp182/optim/sgd.py`` -> ``nlp182.optim.sgd`` (``__init__`` names its package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Modules that ``source`` (the text of ``module``) imports; ``from x import y`` gives ``x`` and ``x.y``.

    Relative imports are resolved against ``module``'s package; imports inside functions count.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations() -> set[tuple[str, str]]:
    found = set()
    for folder, forbidden in RULES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            for name in imported_modules(source, module_name(path), path.name == "__init__.py"):
                for prefix in forbidden:
                    if within(name, prefix):
                        found.add((path.relative_to(ROOT).as_posix(), prefix))
    return found


def test_imports_only_go_downward() -> None:
    new = violations() - KNOWN
    assert not new, f"imports against the layering (file, forbidden module): {sorted(new)}"


def test_known_violations_are_still_there() -> None:
    fixed = KNOWN - violations()
    assert not fixed, f"these no longer import upward; delete them from KNOWN: {sorted(fixed)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import nlp182.train\n", {"nlp182.train"}),
        ("from nlp182.train import Trainer\n", {"nlp182.train", "nlp182.train.Trainer"}),
        ("def f():\n    from ..train import trainer\n", {"nlp182.train", "nlp182.train.trainer"}),
        ("from . import sgd\n", {"nlp182.optim", "nlp182.optim.sgd"}),
    ],
)
def test_the_parser_sees_lazy_and_relative_imports(source: str, expected: set[str]) -> None:
    assert imported_modules(source, "nlp182.optim.probe") == expected
    assert imported_modules("from .sgd import SGD\n", "nlp182.optim", is_package=True) == {
        "nlp182.optim.sgd", "nlp182.optim.sgd.SGD"}
    assert within("nlp182.train.trainer", "nlp182.train") and not within("nlp182.trainer", "nlp182.train")
