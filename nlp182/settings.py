"""One source per setting: a config field carries its default, help, choices and range once.

A field declared with :func:`setting` is everything the project knows about that setting:

```python
from dataclasses import dataclass

from nlp182.settings import check_settings, setting


@dataclass
class ExampleConfig:
    epochs: int = setting(10, help="passes over the training data", positive=True)
    lr: float = setting(1e-3, help="learning rate", positive=True)
    cell: str = setting("gru", help="recurrent cell", choices=("gru", "lstm"))

    def __post_init__(self) -> None:
        check_settings(self)
```

The command line derives one flag per field from it (``nlp182.commands.flags.add_config_flags``:
``--epochs``, its help with the default, the range checked where the flag is parsed), the Python
API checks the same range in ``__post_init__`` (:func:`check_settings`), and the documentation
lists it. Adding a setting is adding one such line.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
import types
import typing
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Keys a range may have: ``minimum``/``maximum`` (inclusive), ``positive`` (> 0), ``below``
#: (exclusive upper bound), ``even``.
RANGE_KEYS = ("minimum", "maximum", "positive", "below", "even")
Limits = Mapping[str, Any]


#: The largest seed every consumer takes: numpy's legacy ``RandomState`` (gensim) and scikit-learn's
#: ``random_state`` stop at 2**32 - 1, torch's generators at 2**64 - 1.
MAX_SEED = 2**32 - 1


#: The ``device`` values settings and flags take (``nlp182.device`` resolves them), kept apart from
#: torch so that the command line builds its flags without importing it.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


#: The most CPU threads a setting takes: past any machine's cores, where OpenMP fails to start them
#: (libgomp runs out of memory at tens of thousands) rather than refusing.
MAX_THREADS = 1024


def seed_setting(default: int, help: str) -> Any:
    """A random seed: a :func:`setting` from 0 to :data:`MAX_SEED`, so a seed such as the clock's
    nanoseconds is refused where the flag is read rather than deep in a library."""
    return setting(default, minimum=0, maximum=MAX_SEED, help=help)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    below: float | None = None,
    even: bool = False,
    formerly: Sequence[str] = (),
) -> Any:
    """A dataclass field with its help, choices and range in its metadata.

    ``help`` says what the setting does (and, for a default of None, what None means); a number
    outside ``minimum``..``maximum`` (inclusive), not ``positive``, not ``below`` or not ``even`` is
    refused, as is a value outside ``choices``. None always passes: it means "chosen for you".
    ``formerly`` lists names the setting had before it took the project's one name for its concept:
    the command line still accepts them as flags, and :func:`from_saved` reads a ``config.json``
    written under them.
    """
    metadata: dict[str, Any] = {"help": help}
    if formerly:
        metadata["formerly"] = tuple(formerly)
    if choices is not None:
        metadata["choices"] = tuple(choices)
    for key, value in (("minimum", minimum), ("maximum", maximum), ("below", below)):
        if value is not None:
            metadata[key] = value
    if positive:
        metadata["positive"] = True
    if even:
        metadata["even"] = True
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def _show(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def range_problem(value: float, limits: Limits) -> str | None:
    """What is wrong with ``value`` under ``limits`` (``"must be at least 1"``), or None if nothing."""
    integer = isinstance(value, int)
    if limits.get("even") and limits.get("positive") and (value < 1 or value % 2):
        return "must be a positive even number"
    if limits.get("positive") and value <= 0:
        return "must be at least 1" if integer else "must be greater than 0"
    if "minimum" in limits and value < limits["minimum"]:
        return f"must be at least {_show(limits['minimum'])}"
    if "maximum" in limits and value > limits["maximum"]:
        return f"must be at most {_show(limits['maximum'])}"
    if "below" in limits and value >= limits["below"]:
        return f"must be less than {_show(limits['below'])}"
    if limits.get("even") and value % 2:
        return "must be an even number"
    return None


def limits_of(field: dataclasses.Field) -> dict[str, Any]:
    """The range a :func:`setting` field declares (empty when it has none)."""
    return {key: value for key, value in field.metadata.items() if key in RANGE_KEYS}


def same_setting(config_class: type, name: str) -> Any:
    """A new field with the default, help and range of ``config_class``'s field ``name``: a config
    that carries another's setting (``ServeConfig``'s ``max_k`` is ``Limits``'s) declares it once."""
    source = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return dataclasses.field(default=source.default, default_factory=source.default_factory,
                             metadata=source.metadata)  # fmt: skip


def from_saved(config_class: type, values: Mapping[str, Any]) -> Any:
    """``config_class`` built from saved ``values`` (a run's ``config.json``), a key written under a
    field's former name (``setting(formerly=...)``) read as the field, nested configs included.

    A key that is neither a field nor a former name is refused as the constructor refuses it, and
    so is ``null`` for a setting that has a value by default and whose type has no None: a saved
    run settled it (None is "chosen for you" where a caller builds a config, not in a saved one).
    """
    from nlp182.errors import InvalidInputError

    if not isinstance(values, Mapping):
        raise TypeError(f"a config is a JSON object of settings, not {type(values).__name__}")
    hints = _hints(config_class)
    renamed = dict(values)
    for field in dataclasses.fields(config_class):
        for old in field.metadata.get("formerly", ()):
            if old in renamed:  # the field's own name wins where both were saved
                renamed.setdefault(field.name, renamed.pop(old))
        nested = hints.get(field.name)
        if field.name in renamed and renamed[field.name] is None and field.default is not None and (
                nested is not None and type(None) not in typing.get_args(nested)):
            raise InvalidInputError(f"{field.name} is null; a saved run holds a value for it")
        if dataclasses.is_dataclass(nested) and isinstance(renamed.get(field.name), Mapping):
            renamed[field.name] = from_saved(nested, renamed[field.name])
    return config_class(**renamed)


@functools.cache
def _hints(config_class: type) -> dict[str, Any]:
    """The field annotations of ``config_class``, resolved (empty where they cannot be)."""
    try:
        return typing.get_type_hints(config_class)
    except (NameError, TypeError):
        return {}


def _declared(hint: Any) -> tuple[Any, ...]:
    """The types an annotation names, in order, None left out (``float | None`` -> ``(float,)``)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(hint) if arg is not type(None))
    return (hint,)


def _admitted(hint: Any) -> tuple[type, ...] | None:
    """The types a value of a field annotated ``hint`` may have (``None``: not checked here, as a
    tuple or a callable); None itself is always admitted (it means "chosen for you")."""
    admitted: list[type] = []
    for kind in _declared(hint):
        if kind is float:
            admitted += [float, int]
        elif kind in (int, str, bool) or dataclasses.is_dataclass(kind):
            admitted.append(kind)
        else:
            return None
    return tuple(admitted)


_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _as_meant(value: Any, hint: Any) -> Any:
    """``value`` as the field annotated ``hint`` keeps it, so it saves as JSON: a numpy scalar as
    Python's number, a whole float where only an integer goes as that integer (``max_vocab=1e5``),
    a ``pathlib.Path`` where a string (a file name) goes as the string it names."""
    if isinstance(value, np.generic):
        value = value.item()
    declared = _declared(hint)
    if isinstance(value, float) and value.is_integer() and int in declared and float not in declared:
        return int(value)
    if isinstance(value, os.PathLike) and str in declared:
        return os.fspath(value)
    return value


def _type_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with the type of ``value`` for a field annotated ``hint``, or None: a string
    where a number goes, a float or a bool where an integer goes (a hand-edited config.json)."""
    admitted = _admitted(hint)
    if value is None and dataclasses.is_dataclass(hint):  # a nested config is never "chosen for you"
        return f"must be a {hint.__name__}"
    if admitted is None or value is None:
        return None
    if isinstance(value, admitted) and not (isinstance(value, bool) and bool not in admitted):
        return None
    shown = [t for t in admitted if not (t is int and float in admitted)]  # an int is a number too
    kinds = dict.fromkeys(_KINDS.get(t, f"a {t.__name__}") for t in shown)
    return "must be " + " or ".join(kinds)


def check_settings(config: Any) -> None:
    """Refuse a value of ``config`` of another type than its field's annotation (a string for a
    number, a float for an integer, not a nested config where one goes), or outside its field's
    choices or range: ``InvalidInputError`` naming the field, what it must be and what it got. None
    passes (it means "chosen for you"), and nested configs check themselves when they are built."""
    from nlp182.errors import InvalidInputError

    hints = _hints(type(config))
    for field in dataclasses.fields(config):
        hint = hints.get(field.name)
        given = getattr(config, field.name)
        value = _as_meant(given, hint)
        if value is not given:
            object.__setattr__(config, field.name, value)
        problem = _type_problem(value, hint)
        if problem:
            raise InvalidInputError(f"{field.name} {problem}, got {value!r}")
        if value is None or dataclasses.is_dataclass(value):
            continue
        choices = field.metadata.get("choices")
        if choices is not None and value not in choices:
            names = ", ".join(map(str, choices))
            raise InvalidInputError(f"{field.name} must be one of {names}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"{field.name} must be a finite number, got {value}")
        if isinstance(value, int) and _declared(hint) == (float,):
            value = float(value)  # alpha=0 is a number at 0, not an integer below 1
        problem = range_problem(value, limits_of(field))
        if problem:
            raise InvalidInputError(f"{field.name} {problem}, got {_show(value)}")


def flag(name: str) -> str:
    """The command-line flag of the setting ``name``: ``batch_size`` is ``--batch-size``."""
    return "--" + name.replace("_", "-")


def flags_set(config: Any, names: Iterable[str]) -> list[str]:
    """The flags of those of ``names`` whose value in ``config`` is not its class default: what the
    user set, for naming the settings a run then ignores (``--compile`` with the native kernel)."""
    defaults = type(config)()
    return [flag(name) for name in names if getattr(config, name) != getattr(defaults, name)]


def remember_given(config_class: type) -> type:
    """Make ``config_class`` (a dataclass) remember the settings its constructor was given, by
    keyword or position, so that a value equal to the default counts as the caller's choice:
    ``Seq2SeqConfig(epochs=10)`` keeps 10 epochs where settings chosen from the data would have
    replaced a value merely equal to the default. Copies (``copy``, ``deepcopy``, pickle) remember
    what the original was given; ``dataclasses.replace`` passes every setting to the constructor,
    so its result remembers the original's and those whose value it changed (a setting passed to
    ``replace`` at the value it already had cannot be told from one left alone: give it to the
    constructor). A ``@dataclass`` subclass (a user's config with a field of their own) remembers
    too: ``dataclass`` writes it a constructor of its own, which is wrapped the same way when the
    first one is made. Kept beside the object, not in its ``__dict__``: ``Config(**vars(config))``
    would pass it back as a setting. Read it with :func:`given_settings`."""
    _remember_init(config_class)

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        if not getattr(cls.__init__, _REMEMBERS, False):  # a subclass's own constructor
            _remember_init(cls)
        return object.__new__(cls)  # the arguments go to __init__, which reads them

    def __getstate__(self: Any) -> dict[str, Any]:
        return {**self.__dict__, _GIVEN_STATE: given_settings(self)}

    def __setstate__(self: Any, state: dict[str, Any]) -> None:
        state = dict(state)
        given = state.pop(_GIVEN_STATE, frozenset())
        self.__dict__.update(state)  # as object's own restore does, past a frozen class's __setattr__
        _remember(self, given)

    config_class.__new__ = __new__  # type: ignore[assignment]
    config_class.__getstate__ = __getstate__  # type: ignore[attr-defined]
    config_class.__setstate__ = __setstate__  # type: ignore[attr-defined]
    return config_class


def _remember_init(config_class: type) -> None:
    """Wrap ``config_class``'s own constructor to record the settings it is given."""
    init = config_class.__init__
    names = [item.name for item in dataclasses.fields(config_class) if item.init]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        given = frozenset(names[: len(args)]) | frozenset(kwargs)
        original = _replaced(sys._getframe(1), type(self))
        if original is not None:
            given = given_settings(original) | {name for name in names
                                                if getattr(self, name) != getattr(original, name)}
        _remember(self, given)

    setattr(__init__, _REMEMBERS, True)
    config_class.__init__ = __init__  # type: ignore[misc]


#: Marks a constructor that records the settings it is given.
_REMEMBERS = "_remembers_given_settings"
#: The settings each live remembering config was constructed with, by ``id`` (dataclasses with
#: ``eq`` are not hashable, so not weak keys); an entry goes with its object.
_GIVEN: dict[int, frozenset[str]] = {}
#: The key a copied or pickled config carries its given settings under.
_GIVEN_STATE = "__given_settings__"
#: ``dataclasses.replace``'s code (``_replace``'s too, where it builds the object on 3.13+).
_REPLACE_CODES = frozenset(getattr(dataclasses, name).__code__ for name in ("replace", "_replace")
                           if hasattr(dataclasses, name))


def _remember(config: Any, given: frozenset[str]) -> None:
    key = id(config)
    _GIVEN[key] = frozenset(given)
    weakref.finalize(config, _GIVEN.pop, key, None)


def _replaced(caller: types.FrameType, kind: type) -> Any:
    """The object ``dataclasses.replace`` is copying when it is the constructor's ``caller``, else
    None: it passes every setting, the unchanged ones read from that object."""
    if caller.f_code not in _REPLACE_CODES:
        return None
    original = caller.f_locals.get("obj", caller.f_locals.get("self"))
    return original if type(original) is kind else None


def given_settings(config: Any) -> frozenset[str]:
    """The settings ``config``'s constructor was given, or its original's when it is a copy (empty
    for a class without :func:`remember_given`)."""
    return _GIVEN.get(id(config), frozenset())
