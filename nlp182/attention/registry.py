"""Attention kinds by name: each module file registers its own builder with :func:`register_attention`.

A new kind is one new file in ``nlp182/attention/`` that decorates a builder; :func:`build_attention`
finds it (every module of the package is imported on the first lookup), so models and the CLI can
choose it with a string and nothing else needs editing — the pattern of timm's ``register_model``.

Every builder has the same signature, ``builder(query_dim, key_dim, *, num_heads, dropout)``, and
returns a module that follows the :class:`~nlp182.attention.base.Attention` call protocol.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

from nlp182.errors import InvalidInputError
from nlp182.registry import Builder, Registry


def _discover() -> None:
    """Import every module of ``nlp182.attention`` so that their decorators have run."""
    package = importlib.import_module("nlp182.attention")
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"nlp182.attention.{info.name}")


KINDS = Registry("attention", _discover)


def register_attention(name: str, *, same_dims: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(query_dim, key_dim, *, num_heads, dropout) -> nn.Module`` as ``name``.

    ``same_dims=True`` says the kind compares queries with keys directly, so ``build_attention``
    rejects ``query_dim != key_dim`` with a clear error before building anything.
    """
    return KINDS.register(name, same_dims=same_dims)


def attention_kinds() -> tuple[str, ...]:
    """The registered kind names, in registration order."""
    return KINDS.names()


def build_attention(
    kind: str, query_dim: int, key_dim: int, num_heads: int = 4, dropout: float = 0.0
) -> nn.Module:
    """Return the attention module ``kind`` for queries of size ``query_dim`` and keys of size ``key_dim``.

    ``num_heads`` and ``dropout`` go to the kinds that use them (``multihead``; ``scaled_dot`` and
    ``multihead``) and are ignored by the others.
    """
    entry = KINDS.entry(kind)
    if entry.meta["same_dims"] and query_dim != key_dim:
        raise InvalidInputError(f"{kind} attention needs query_dim == key_dim, got {query_dim} and {key_dim}")
    return entry.builder(query_dim, key_dim, num_heads=num_heads, dropout=dropout)
