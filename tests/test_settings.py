"""One source per setting: a field's `setting(...)` is its flag, its help, its CLI and its Python check."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass

import pytest

from nlp182 import cli
from nlp182.commands.flags import Parser, add_config_flags, config_from_args
from nlp182.errors import InvalidInputError
from nlp182.settings import check_settings, range_problem, setting


@dataclass
class Example:
    epochs: int = setting(10, positive=True, help="passes over the data")
    rate: float = setting(0.5, minimum=0, below=1, help="a share, 100% excluded")
    cell: str = setting("gru", choices=("gru", "lstm"), help="recurrent cell")
    budget: float | None = setting(None, positive=True, help="seconds (unset: no limit)")

    def __post_init__(self) -> None:
        check_settings(self)


def _parser() -> Parser:
    parser = Parser(prog="example")
    add_config_flags(parser, Example)
    return parser


def test_one_line_gives_the_flag_its_help_and_its_default() -> None:
    text = " ".join(_parser().format_help().split())
    assert "--epochs EPOCHS passes over the data (default: 10)" in text
    assert "--rate RATE a share, 100% excluded (default: 0.5)" in text  # % reaches argparse escaped
    assert "--cell {gru,lstm} recurrent cell (default: gru)" in text
    assert "--budget BUDGET seconds (unset: no limit)" in text  # None shows no default
    assert config_from_args(Example, _parser().parse_args(["--epochs", "3", "--cell", "lstm"])) == Example(
        epochs=3, cell="lstm")


@pytest.mark.parametrize(
    ("flags", "python", "message"),
    [
        (["--epochs", "0"], {"epochs": 0}, "must be at least 1, got 0"),
        (["--rate", "1"], {"rate": 1.0}, "must be less than 1, got 1"),
        (["--rate", "-0.5"], {"rate": -0.5}, "must be at least 0, got -0.5"),
        (["--budget", "0"], {"budget": 0.0}, "must be greater than 0, got 0"),
    ],
)
def test_the_cli_and_the_python_api_refuse_the_same_values_with_the_same_words(
    flags: list[str], python: dict, message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as stop:
        _parser().parse_args(flags)
    assert stop.value.code == 2 and f"{flags[0]} {message}" in capsys.readouterr().err
    with pytest.raises(InvalidInputError, match=f"{next(iter(python))} {message}"):
        Example(**python)


def test_choices_and_non_finite_numbers_are_refused_from_python() -> None:
    with pytest.raises(InvalidInputError, match="cell must be one of gru, lstm, got 'rnn'"):
        Example(cell="rnn")
    with pytest.raises(InvalidInputError, match="rate must be a finite number"):
        Example(rate=float("nan"))
    assert Example(budget=None).budget is None  # None means "chosen for you" and always passes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": "10"}, "epochs must be an integer, got '10'"),
        ({"epochs": 10.5}, "epochs must be an integer, got 10.5"),
        ({"epochs": True}, "epochs must be an integer, got True"),
        ({"rate": "0.5"}, "rate must be a number, got '0.5'"),
        ({"cell": 3}, "cell must be a string, got 3"),
        ({"budget": "60"}, "budget must be a number, got '60'"),
    ],
)
def test_a_value_of_another_type_is_refused_by_name(values: dict, message: str) -> None:
    """A hand-edited config.json ("beam_width": "5") loaded and then failed at every call with a
    raw TypeError, or never: a bool counted as the integer 1."""
    with pytest.raises(InvalidInputError, match=message):
        Example(**values)
    assert Example(rate=0, budget=60).rate == 0  # an integer is a number
    with pytest.raises(InvalidInputError, match=r"budget must be greater than 0, got 0$"):
        Example(budget=0)  # a number at 0, not an integer below 1 ("must be at least 1" before)
    import json

    import numpy as np

    from_numpy = Example(epochs=np.int64(3), rate=np.float32(0.25))  # a numpy scalar is a number
    assert type(from_numpy.epochs) is int and type(from_numpy.rate) is float
    json.dumps(dataclasses.asdict(from_numpy))  # saved as a run's config.json is
    from pathlib import Path

    assert Example(cell=Path("gru")).cell == "gru"  # a pathlib.Path where a string (a file) goes
    assert type(Example(epochs=1e1).epochs) is int  # 1e1 writes the integer 10


def test_a_damaged_run_config_is_one_error_naming_the_file(tmp_path) -> None:
    import json

    from nlp182.errors import FileFormatError
    from nlp182.seq2seq import Seq2SeqConfig, Translator
    from nlp182.seq2seq.model import ModelConfig

    with pytest.raises(InvalidInputError, match="model must be a ModelConfig, got None"):
        Seq2SeqConfig(model=None)
    with pytest.raises(InvalidInputError, match="hidden_size must be an integer"):
        ModelConfig(hidden_size=32.5)
    run = tmp_path / "run"
    run.mkdir()
    for saved, message in (({"beam_width": "5"}, "beam_width must be an integer"), (["x"], "not list"),
                           ({"model": "rnn"}, "model must be a ModelConfig")):  # fmt: skip
        (run / "config.json").write_text(json.dumps(saved))
        with pytest.raises(FileFormatError, match=f"config.json is not a seq2seq config: .*{message}"):
            Translator.load(run)


@pytest.mark.parametrize(
    ("value", "limits", "expected"),
    [
        (0, {"positive": True}, "must be at least 1"),
        (0.0, {"positive": True}, "must be greater than 0"),
        (3, {"positive": True, "even": True}, "must be a positive even number"),
        (4, {"positive": True, "even": True}, None),
        (70000, {"minimum": 0, "maximum": 65535}, "must be at most 65535"),
        (1.0, {"minimum": 0, "below": 1}, "must be less than 1"),
    ],
)
def test_range_problem_by_hand(value: float, limits: dict, expected: str | None) -> None:
    assert range_problem(value, limits) == expected


def _config_parsers() -> list[tuple[str, type]]:
    """(command, config class) for every command that maps a config dataclass onto its flags."""
    from nlp182.captioning.config import CaptionConfig
    from nlp182.course.optim_plot import OptimPlotConfig
    from nlp182.embeddings.registry import embedding_method, embedding_methods
    from nlp182.seq2seq.config import Seq2SeqConfig
    from nlp182.server.config import IndexConfig, ServeConfig
    from nlp182.vision.runs import DigitsRunConfig, ShapesRunConfig

    found = [("train caption", CaptionConfig), ("train seq2seq", Seq2SeqConfig),
             ("train digits", DigitsRunConfig), ("train shapes", ShapesRunConfig),
             ("optim plot", OptimPlotConfig), ("index", IndexConfig), ("serve", ServeConfig)]
    return found + [(f"train {name}", embedding_method(name).config) for name in embedding_methods()]


def _leaf_fields(config_class: type) -> list[dataclasses.Field]:
    hints = typing.get_type_hints(config_class)
    fields = []
    for field in dataclasses.fields(config_class):
        kind = next((a for a in typing.get_args(hints[field.name]) if a is not type(None)), hints[field.name])
        fields.extend(_leaf_fields(kind) if dataclasses.is_dataclass(kind) else [field])
    return fields


@pytest.mark.parametrize(("command", "config_class"), _config_parsers(), ids=str)
def test_every_flag_of_a_config_is_described_by_its_field_alone(command: str, config_class: type) -> None:
    """Every field carries its own help; the flag's help is that text (and the default), nothing else."""
    parser = cli.build_parser()
    sub = parser
    for word in command.split():
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    actions = {action.dest: action for action in sub._actions}
    for field in _leaf_fields(config_class):
        text = field.metadata.get("help")
        assert text, f"{config_class.__name__}.{field.name} has no setting(help=...)"
        assert actions[field.name].help.replace("%%", "%").startswith(text), field.name
        assert actions[field.name].choices == field.metadata.get("choices"), field.name


#: Names a concept had in some configs before the project chose one (the field's ``formerly``).
SYNONYMS = {"num_threads": "threads", "time_budget": "time_budget_s", "max_output_len": "max_len",
            "min_frequency": "min_count"}  # fmt: skip


@pytest.mark.parametrize(("command", "config_class"), _config_parsers(), ids=str)
def test_one_name_per_concept_in_every_config(command: str, config_class: type) -> None:
    names = {field.name for field in _leaf_fields(config_class)}
    assert not names & set(SYNONYMS), f"{command} still names a concept by another config's word"
    for field in _leaf_fields(config_class):
        for old in field.metadata.get("formerly", ()):
            assert SYNONYMS.get(old) == field.name, (field.name, old)


def _parse(argv: list[str]) -> argparse.Namespace:
    return cli.build_parser().parse_args(argv)


def test_a_former_name_is_still_a_flag_for_the_same_setting() -> None:
    seq2seq = ["train", "seq2seq", "--out", "unused"]
    old = _parse([*seq2seq, "--time-budget", "2700", "--max-output-len", "9", "--threads", "2"])
    new = _parse([*seq2seq, "--time-budget-s", "2700", "--max-len", "9", "--threads", "2"])
    assert (old.time_budget_s, old.max_len) == (new.time_budget_s, new.max_len) == (2700.0, 9)
    assert "time_budget" not in vars(old) and "max_output_len" not in vars(old)
    caption = _parse(["train", "caption", "--data", "digits", "--out", "unused", "--num-threads", "1"])
    assert caption.threads == 1


def test_a_refused_former_flag_is_named_by_its_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["train", "seq2seq", "--out", "unused", "--time-budget", "-1"])
    assert "error: --time-budget-s must be greater than 0, got -1" in capsys.readouterr().err


def test_copies_pickles_and_replace_keep_the_settings_the_user_gave() -> None:
    """A setting given at its default value must stay the user's choice through copy, deepcopy,
    pickle (multiprocessing) and `dataclasses.replace`, or `choose_defaults` would replace it."""
    import copy
    import pickle

    from nlp182.seq2seq.config import Seq2SeqConfig
    from nlp182.settings import given_settings

    config = Seq2SeqConfig(epochs=Seq2SeqConfig().epochs)
    for kept in (copy.copy(config), copy.deepcopy(config), pickle.loads(pickle.dumps(config))):
        assert kept == config and given_settings(kept) == frozenset({"epochs"})
    assert given_settings(dataclasses.replace(config, seed=config.seed + 1)) == frozenset({"epochs", "seed"})


def test_a_dataclass_subclass_remembers_the_settings_given_too() -> None:
    """A user's ``@dataclass`` subclass (a field of their own) gets a constructor from dataclass that
    the base's wrapper never sees: a setting given at its default was then left to the data."""
    import copy

    from nlp182.seq2seq.config import Seq2SeqConfig
    from nlp182.seq2seq.defaults import changed_fields
    from nlp182.settings import given_settings

    @dataclass
    class Experiment(Seq2SeqConfig):
        note: str = ""

    epochs = Seq2SeqConfig().epochs
    config = Experiment(epochs=epochs, note="baseline")
    assert given_settings(config) == frozenset({"epochs", "note"})
    assert "epochs" in changed_fields(config)  # kept, not chosen from the data
    assert given_settings(copy.deepcopy(config)) == frozenset({"epochs", "note"})  # as pickle restores
    assert given_settings(dataclasses.replace(config, seed=config.seed + 1)) == {"epochs", "note", "seed"}
    assert given_settings(Experiment()) == frozenset()
    assert given_settings(Seq2SeqConfig(epochs=epochs)) == {"epochs"}


def test_a_config_saved_under_former_names_loads() -> None:
    from nlp182.captioning.config import CaptionConfig
    from nlp182.seq2seq.config import Seq2SeqConfig
    from nlp182.settings import from_saved

    saved = {**Seq2SeqConfig().to_dict(), "time_budget": 30.0, "max_output_len": 9, "min_frequency": 2}
    for name in ("time_budget_s", "max_len", "min_count"):
        del saved[name]
    loaded = from_saved(Seq2SeqConfig, saved)
    assert (loaded.time_budget_s, loaded.max_len, loaded.min_count) == (30.0, 9, 2)
    assert loaded.model == Seq2SeqConfig().model  # the nested config is rebuilt too
    both = {**Seq2SeqConfig().to_dict(), "max_len": 7, "max_output_len": 9}
    assert from_saved(Seq2SeqConfig, both).max_len == 7  # the field's own name wins
    caption = {**CaptionConfig(data="digits").to_dict(), "num_threads": 3}
    del caption["threads"]
    assert from_saved(CaptionConfig, caption).threads == 3
    with pytest.raises(TypeError):
        from_saved(Seq2SeqConfig, {"no_such_setting": 1})


@pytest.mark.parametrize(("section", "name"), [(None, "max_len"), (None, "length_penalty"),
                                               ("model", "hidden_size"), ("model", "embed_dim")])
def test_null_in_a_saved_config_is_named_where_the_run_settled_a_value(section, name) -> None:
    """A hand-edited ``null`` passed (None means "chosen for you") and the translator or captioner
    failed with a TypeError traceback; a setting that may be None (threads) still loads as None."""
    from nlp182.captioning.config import CaptionConfig
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq.config import Seq2SeqConfig
    from nlp182.settings import from_saved

    saved = Seq2SeqConfig().to_dict()
    (saved if section is None else saved[section])[name] = None
    with pytest.raises(InvalidInputError, match=f"{name} is null; a saved run holds a value for it"):
        from_saved(Seq2SeqConfig, saved)
    caption = {**CaptionConfig(data="digits").to_dict(), "image_size": None}
    with pytest.raises(InvalidInputError, match="image_size is null"):
        from_saved(CaptionConfig, caption)
    assert from_saved(Seq2SeqConfig, {**Seq2SeqConfig().to_dict(), "threads": None}).threads is None
    with pytest.raises(InvalidInputError, match="image_size must be at most 1024"):  # 100000 was OOM-killed
        from_saved(CaptionConfig, {**CaptionConfig(data="digits").to_dict(), "image_size": 100_000})
