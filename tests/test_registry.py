"""The shared name -> builder registry behind attention kinds, vision models and embedding methods."""

from __future__ import annotations

import pytest

from nlp182.errors import InvalidInputError
from nlp182.registry import Registry


def test_register_filter_and_look_up() -> None:
    calls = []
    things = Registry("thing", lambda: calls.append(1))

    @things.register("a", size="small")
    def build_a() -> str:
        return "A"

    things.register("b", size="large")(lambda: "B")
    assert build_a() == "A"  # the decorator hands the builder back unchanged
    assert things.names() == ("a", "b") and things.names(size="large") == ("b",)
    assert things.entry("b").builder() == "B" and things.entry("a").meta == {"size": "small"}
    assert calls  # discovery runs before every listing
    things.register("a", size="small")(build_a)  # registering the same builder again is harmless
    with pytest.raises(InvalidInputError, match="thing 'a' is registered twice"):
        things.register("a")(lambda: "other")
    with pytest.raises(InvalidInputError, match="unknown thing 'c'; use one of a, b"):
        things.entry("c")
    things.unregister("b")  # a test's throwaway builder leaves no trace
    assert things.names() == ("a",)
