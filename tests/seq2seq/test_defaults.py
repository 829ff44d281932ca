"""``--data cmudict`` alone trains the measured recipe; a user's TSV gets sizes from its pairs; what the
user typed is never overridden; the log says what was chosen and why on one line."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import pickle
from pathlib import Path

import pytest

from nlp182.commands import seq2seq as command
from nlp182.commands.flags import config_from_args, given_fields
from nlp182.seq2seq import ModelConfig, Seq2SeqConfig
from nlp182.seq2seq.defaults import choose_defaults, summary_line

#: The flags of the CMUdict run that met the goal (test WER 27.6%, PER 6.57%), as typed then.
RECIPE_FLAGS = (
    "--cell lstm --hidden-size 256 --embed-dim 64 --no-input-feeding --attention general --batch-size 128 "
    "--lr 0.003 --lr-schedule plateau --label-smoothing 0.1 --epochs 40 --max-len 40"
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nlp182")
    command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["train", "seq2seq", "--out", "x", *argv])


def _settled(*argv: str, pairs: list[tuple[str, str]] | None = None) -> tuple[Seq2SeqConfig, dict[str, str]]:
    args = _args(*argv)
    return choose_defaults(config_from_args(Seq2SeqConfig, args), pairs or [], given_fields(args))


def test_data_cmudict_alone_is_the_recipe() -> None:
    alone, chosen = _settled("--data", "cmudict", "--time-budget", "2700", "--threads", "2")
    typed = config_from_args(Seq2SeqConfig, _args("--data", "cmudict", *RECIPE_FLAGS.split()))
    typed.time_budget_s, typed.threads = 2700.0, 2
    assert alone == typed
    assert len(chosen) == 11 and chosen["cell"] == "lstm"
    line = summary_line("cmudict", chosen)
    assert "\n" not in line and line.startswith("seq2seq defaults for cmudict: cell lstm, hidden_size 256")
    assert "test WER 27.6%, PER 6.57% (beam 5)" in line
    from_python, _ = choose_defaults(Seq2SeqConfig(data="cmudict"), [])
    assert from_python.model == typed.model and from_python.lr_schedule == "plateau"


def test_a_typed_flag_wins_even_when_it_is_the_default_value() -> None:
    config, chosen = _settled("--data", "cmudict", "--cell", "gru", "--epochs", "10")  # gru is the default
    assert (config.model.cell, config.epochs) == ("gru", 10)
    assert "cell" not in chosen and "epochs" not in chosen
    assert config.model.hidden_size == 256 and config.batch_size == 128


def test_dates_keep_their_own_defaults() -> None:
    config, chosen = _settled("--data", "dates")
    assert chosen == {} and config == Seq2SeqConfig()


def test_a_spelling_tsv_is_read_letter_by_letter_and_sized_from_its_pairs() -> None:
    pairs = [(f"word{i}", " ".join(["W", "O", "R", "D"][: 1 + i % 4])) for i in range(300)]
    config, chosen = _settled("--data", "g2p.tsv", pairs=pairs)
    assert (config.source_tokenizer, config.target_tokenizer) == ("char", None)  # targets are 1-4 words
    assert chosen["source_tokenizer"] == "char (100% of the sources are one word: read letter by letter)"
    assert config.model.hidden_size == 128 and chosen["hidden_size"].startswith(
        "128 (300 training pairs < 5000"
    )
    assert config.batch_size == 16  # 300 / 50 = 6, raised to the floor of 16
    assert chosen["embed_dim"] == "64 (14 distinct tokens on the larger side <= 5000)"  # w o r d 0-9, letters
    assert config.max_len == 11 and "longest training target (4 word tokens)" in chosen["max_len"]
    line = summary_line("g2p.tsv", chosen)
    assert (
        line.startswith("seq2seq defaults chosen from the data: source_tokenizer char (") and "\n" not in line
    )


def test_max_len_counts_the_tokens_the_decoder_emits() -> None:
    """"2002 01 20" is 3 words but 11 tokens (digits split, a word-start mark before each word):
    a length counted in words would cut every output short and score 0."""
    pairs = [(f"{d} Jan 2002", f"2002 01 {d:02d}") for d in range(1, 29)] * 11
    config, chosen = _settled("--data", "dates.tsv", pairs=pairs)
    assert config.max_len == 22 and "longest training target (11 word tokens)" in chosen["max_len"]


def test_the_vocabulary_is_counted_as_the_tokenizer_splits_it() -> None:
    """6,000 different numbers are ten digits to a tokenizer that splits digits (the default), and
    words glued to punctuation are the words and the marks."""
    pairs = [(f"on {i}, at {i}.", f"{i}") for i in range(6000)]
    config, chosen = _settled("--data", "numbers.tsv", pairs=pairs)
    assert config.model.embed_dim == 64
    # on, at, ',', '.', ten digits and the word-start mark a split digit leaves alone
    assert chosen["embed_dim"].startswith("64 (15 distinct tokens on the larger side")
    config, chosen = _settled("--data", "numbers.tsv", "--no-split-digits", pairs=pairs)
    assert config.model.embed_dim == 128 and chosen["embed_dim"].startswith("128 (6004 distinct tokens")


def test_targets_read_letter_by_letter_are_scored_by_exact_match_and_cer() -> None:
    """Spelled targets (phonemes in, a word out) would get a word-level PER equal to 1 - exact match
    and a BLEU of 0; sentences keep PER and BLEU, and typed metrics stay."""
    spelled = [(" ".join(["K", "AE", "T"][: 1 + i % 3]), f"cat{i}") for i in range(300)]
    config, _ = _settled("--data", "p2g.tsv", pairs=spelled)
    assert config.target_tokenizer == "char" and config.metric_names() == ["exact_match", "cer"]
    config, _ = _settled("--data", "p2g.tsv", "--tokenizer", "word", pairs=spelled)
    assert config.metric_names() == ["exact_match", "per", "bleu"]
    sentences = [(f"the cat number {i} sat", f"le chat numero {i} assis") for i in range(300)]
    config, _ = _settled("--data", "fr.tsv", pairs=sentences)
    assert config.metric_names() == ["exact_match", "per", "bleu"]
    config, _ = _settled("--data", "p2g.tsv", "--metrics", "per,exact_match", pairs=spelled)
    assert config.metric_names() == ["per", "exact_match"]


def _name(number: int) -> str:
    """A distinct lower-case word for each number (base 26 after an "n": no French or English word)."""
    letters = "n"
    while True:
        number, digit = divmod(number, 26)
        letters += chr(ord("a") + digit)
        if not number:
            return letters


def test_a_large_sentence_tsv_gets_a_bigger_model_and_batch() -> None:
    pairs = [(f"the cat {_name(i)} sat", f"le chat {_name(i)} assis la") for i in range(6000)]
    config, chosen = _settled("--data", "fr.tsv", "--batch-size", "8", pairs=pairs)
    assert config.source_tokenizer is None and "source_tokenizer" not in chosen  # sentences: words
    assert config.model.hidden_size == 256 and config.batch_size == 8  # the typed batch stays
    assert config.max_len == 13  # 1.5 x 5 words + 5
    assert config.model.embed_dim == 128  # 6000 names + 4 words on the target side
    assert chosen["embed_dim"].startswith("128 (6004 distinct tokens on the larger side > 5000")
    config, _ = _settled("--data", "fr.tsv", pairs=pairs)
    assert config.batch_size == 64  # 6000 / 50 = 120 -> 64, the power of two below
    assert (
        choose_defaults(Seq2SeqConfig(data="fr.tsv", model=ModelConfig(hidden_size=64)), pairs)[
            0
        ].model.hidden_size
        == 64
    )


def test_each_size_chosen_from_the_data_takes_its_documented_side_at_the_boundary() -> None:
    """The rules as the defaults module states them: 128 below 5000 pairs, else 256; embeddings 64
    wide up to 5000 distinct tokens, else 128; letter by letter when at least 90% of lines are one word."""
    pairs = [(f"the {_name(i)}", f"le {_name(i)}") for i in range(4999)]  # 5000 distinct tokens a side
    config, chosen = _settled("--data", "fr.tsv", pairs=pairs)
    assert (config.model.hidden_size, config.model.embed_dim) == (128, 64)
    assert chosen["embed_dim"].startswith("64 (5000 distinct tokens on the larger side <= 5000)")
    config, chosen = _settled("--data", "fr.tsv", pairs=[*pairs, pairs[0]])  # 5000 pairs, no new token
    assert (config.model.hidden_size, config.model.embed_dim) == (256, 64)
    assert chosen["hidden_size"] == "256 (5000 training pairs >= 5000)"
    config, _ = _settled("--data", "fr.tsv", pairs=[*pairs, ("the extra", "le extra")])  # 5001 tokens
    assert config.model.embed_dim == 128
    one_word = [(f"word{i}", "a b") for i in range(9)]
    config, chosen = _settled("--data", "g2p.tsv", pairs=[*one_word, ("two words", "a b")])  # 9 of 10
    assert config.source_tokenizer == "char" and chosen["source_tokenizer"].startswith("char (90% of")
    two_words = [("two words", "a b"), ("two more", "a b")]
    config, _ = _settled("--data", "g2p.tsv", pairs=[*one_word[:8], *two_words])
    assert config.source_tokenizer is None  # 8 of 10: words


def test_cli_logs_the_choice_once_and_saves_the_settled_config(tmp_path: Path, caplog, capsys) -> None:
    rows = [f"{w}\t{' '.join(reversed(w))}" for w in ("abc", "bca", "cab", "acb", "bac", "cba") * 8]
    data = tmp_path / "toy.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    argv = ["--out", str(run), "--data", str(data), "--epochs", "1", "--no-progress"]
    argv += ["--embed-dim", "8", "--hidden-size", "16", "--threads", "1", "--num-heatmaps", "0"]
    args = _args(*argv)  # the last --out wins
    with caplog.at_level(logging.INFO, logger="nlp182.seq2seq.train"):
        assert args.func(args) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("seq2seq defaults")]
    assert len(lines) == 1 and "source_tokenizer char (100% of the sources are one word" in lines[0]
    assert "hidden_size" not in lines[0]  # typed
    saved = json.loads((run / "config.json").read_text())
    assert (
        saved["source_tokenizer"] == "char"
        and saved["batch_size"] == 16
        and saved["model"]["hidden_size"] == 16
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["chosen"]) == {"source_tokenizer", "batch_size", "max_len"}  # embed_dim typed
    assert isinstance(metrics["warnings"], list)
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    assert ("WARNING" in closing) == bool(metrics["warnings"])


def test_transformer_settings_it_cannot_train_with_are_refused_up_front() -> None:
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq import ModelConfig, Seq2SeqConfig

    transformer = ModelConfig(architecture="transformer")
    with pytest.raises(InvalidInputError, match="full teacher forcing"):
        Seq2SeqConfig(model=transformer, teacher_forcing=0.5)
    with pytest.raises(InvalidInputError, match="at most the model's 1024 positions, got 5000"):
        Seq2SeqConfig(model=transformer, max_len=5000)
    assert Seq2SeqConfig(model=transformer, max_len=1024).max_len == 1024  # <bos> + 1,023 outputs fit
    assert Seq2SeqConfig(model=ModelConfig(), teacher_forcing=0.5, max_len=5000).max_len == 5000


def test_a_target_file_beside_a_tsv_of_pairs_is_refused() -> None:
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq import Seq2SeqConfig

    with pytest.raises(InvalidInputError, match=r"pairs\.TSV is a TSV of pairs"):
        Seq2SeqConfig(data="pairs.TSV", target_file="t.txt")
    with pytest.raises(InvalidInputError, match=r"v\.tsv is a TSV of pairs"):
        Seq2SeqConfig(data="s.txt", target_file="t.txt", valid_data="v.tsv", valid_target_file="vt.txt")
    assert Seq2SeqConfig(data="s.txt", target_file="t.txt").target_file == "t.txt"


@pytest.mark.parametrize("split", ["valid", "test"])
def test_a_held_out_target_file_without_its_source_side_is_refused(split: str) -> None:
    """``--valid-target-file vt.txt`` without ``--valid-data`` was ignored: the validation split was
    cut from the training data as if the file had not been named."""
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq import Seq2SeqConfig

    with pytest.raises(InvalidInputError, match=f"--{split}-target-file is the target side of --{split}-"):
        Seq2SeqConfig(data="s.txt", target_file="t.txt", **{f"{split}_target_file": "vt.txt"})


def test_the_batch_shrinks_until_its_logits_fit_for_long_targets_over_a_large_vocabulary() -> None:
    """2,000 pairs would take a batch of 32; 400-character targets over 6,000 characters make each
    pair's logits 29 MB (with their softmax and gradient), so 16 fit the 512 MiB budget."""
    import numpy as np

    rng = np.random.default_rng(0)
    alphabet = [chr(0x4E00 + i) for i in range(6000)]
    pairs = [(f"item {i}", "".join(rng.choice(alphabet, 400))) for i in range(2000)]
    config = Seq2SeqConfig(data="mine.tsv", target_tokenizer="char", max_length=500)  # trains them all
    settled, chosen = choose_defaults(config, pairs)
    assert settled.batch_size == 16 and "fit 512 MiB" in chosen["batch_size"]
    short = [(f"item {i}", "ab") for i in range(2000)]
    assert choose_defaults(Seq2SeqConfig(data="mine.tsv"), short)[0].batch_size == 32


def test_output_length_and_epochs_follow_the_pairs_training_keeps() -> None:
    """One 391-token target over max_length set max_len 592 for a model trained on targets of at
    most 6 tokens; 300 pairs in batches of 16 trained 170 steps, a copy task still learning."""
    pairs = [(f"the {w} dog", f"the {w} dog") for w in ("big", "red", "old")] * 100
    pairs.append(("long", " ".join(["word"] * 391)))
    config, chosen = choose_defaults(Seq2SeqConfig(data="copy.tsv"), pairs)
    assert config.max_len == 10  # ceil(1.5 x 3 word tokens) + 5
    assert config.batch_size == 16 and config.epochs == 100  # 19 steps an epoch: 2,000 needs 106
    assert config.early_stopping_patience == 20 and "a fifth of the 100 epochs" in chosen[
        "early_stopping_patience"]
    large = [(f"a{i} b", f"c{i} d") for i in range(60000)]
    config, chosen = choose_defaults(Seq2SeqConfig(data="big.tsv"), large)
    assert config.epochs == 10 and "epochs" not in chosen  # 469 steps an epoch: ten are enough
    config, chosen = choose_defaults(Seq2SeqConfig(data="copy.tsv", epochs=7), pairs)
    assert config.epochs == 7 and config.early_stopping_patience is None  # what the user gave


def test_a_setting_passed_from_python_is_kept_even_at_its_default_value() -> None:
    """Seq2SeqConfig(epochs=10, batch_size=64) trained 100 epochs in batches of 16: only values
    unlike the defaults counted as the caller's."""
    pairs = [(f"the {w} dog", f"the {w} dog") for w in ("big", "red", "old")] * 100
    given = Seq2SeqConfig(data="copy.tsv", epochs=10, batch_size=64, model=ModelConfig(hidden_size=256))
    config, chosen = choose_defaults(given, pairs)
    assert (config.epochs, config.batch_size, config.model.hidden_size) == (10, 64, 256)
    assert not {"epochs", "batch_size", "hidden_size", "early_stopping_patience"} & set(chosen)
    assert "embed_dim" in chosen  # what was not given is still chosen



@pytest.mark.parametrize("copy_of", ["deepcopy", "pickle", "replace"])
def test_copies_and_replace_keep_what_the_caller_gave_and_leave_the_rest_to_the_data(copy_of: str) -> None:
    """A deep copy or a pickle forgot the given settings (100 epochs for ``epochs=10``);
    ``dataclasses.replace`` counted every setting as given (nothing chosen from the data)."""
    pairs = [(f"the {w} dog", f"the {w} dog") for w in ("big", "red", "old")] * 100
    given = Seq2SeqConfig(data="copy.tsv", epochs=10, model=ModelConfig(hidden_size=256))
    if copy_of == "deepcopy":
        other = copy.deepcopy(given)
    elif copy_of == "pickle":
        other = pickle.loads(pickle.dumps(given))
    else:
        other = dataclasses.replace(given, seed=7)
    assert other == given or copy_of == "replace"
    config, chosen = choose_defaults(other, pairs)
    assert (config.epochs, config.model.hidden_size) == (10, 256)
    assert {"batch_size", "embed_dim", "max_len"} <= set(chosen)
    assert "epochs" not in chosen and "hidden_size" not in chosen


def test_settings_of_the_other_architecture_are_named(caplog) -> None:
    """--architecture transformer --cell lstm --no-input-feeding trained a Transformer silently."""
    from nlp182.seq2seq.train import _warn_unused_model_settings

    _warn_unused_model_settings(ModelConfig(architecture="transformer", cell="lstm", input_feeding=False))
    assert "--cell, --input-feeding have no effect on the transformer model" in caplog.text
    caplog.clear()
    _warn_unused_model_settings(ModelConfig(cell="lstm"))
    assert "no effect" not in caplog.text


def test_a_warmup_without_its_schedule_and_date_sizes_without_the_dates_are_named(caplog) -> None:
    from nlp182.seq2seq.train import _warn_unused_settings

    _warn_unused_settings(Seq2SeqConfig(data="mine.tsv", warmup_steps=100, date_train=50))
    said = "--warmup-steps, --date-train have no effect with --lr-schedule none and --data mine.tsv"
    assert said in caplog.text
    caplog.clear()
    _warn_unused_settings(Seq2SeqConfig(data="dates", lr_schedule="warmup-cosine", warmup_steps=100,
                                        date_train=50))
    assert "no effect" not in caplog.text


def test_a_held_out_file_of_training_pairs_is_named_in_a_warning(tmp_path, caplog) -> None:
    """The training file given as --valid-data was taken without a word: the best epoch was then
    picked on pairs the model trained on."""
    from nlp182.seq2seq import Seq2SeqConfig
    from nlp182.seq2seq.train import load_pairs

    lines = [f"w{i}\tv{i}\n" for i in range(40)]
    (tmp_path / "train.tsv").write_text("".join(lines))
    (tmp_path / "part.tsv").write_text("".join(lines[:10]))
    (tmp_path / "new.tsv").write_text("".join(f"n{i}\tm{i}\n" for i in range(10)))
    with caplog.at_level("WARNING"):
        load_pairs(Seq2SeqConfig(data=str(tmp_path / "train.tsv"), valid_data=str(tmp_path / "new.tsv"),
                                 test_fraction=0.0))
    assert "training pairs too" not in caplog.text
    with caplog.at_level("WARNING"):
        load_pairs(Seq2SeqConfig(data=str(tmp_path / "train.tsv"), valid_data=str(tmp_path / "part.tsv"),
                                 test_fraction=0.0))
    assert "10 of the 10 validation pairs of" in caplog.text and "are training pairs too" in caplog.text
