"""A griffe extension for the API reference: Sphinx roles in docstrings read as inline code.

The docstrings name other objects the Sphinx way (``:class:`~nlp182.train.Trainer```,
``:func:`masked_softmax```), which Markdown would show as stray ``:class:`` text. This turns each
role into the code span a reader expects, keeping only the last component after ``~`` as Sphinx
does: ``Trainer``, ``masked_softmax``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([^`]+)`")


def plain_roles(text: str) -> str:
    """``:role:`target``` -> ```target```; ``:role:`~a.b.C``` -> ```C```."""
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring as it is loaded, before it is parsed."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
