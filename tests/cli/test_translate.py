"""``nlp182 translate``: unreliable long inputs are flagged on stderr; heatmaps follow their extension and
stay readable for long inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nlp182.cli import main
from nlp182.errors import InvalidInputError
from nlp182.plots import HEATMAP_MAX_INCHES, attention_heatmap, clean_token
from nlp182.seq2seq import Seq2SeqConfig
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.train import build_translator


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained run whose longest training input is 3 tokens (its output is not the point)."""
    pairs = [("one two", "two one"), ("three four five", "five four three")]
    config = Seq2SeqConfig(max_length=3, model=ModelConfig(embed_dim=8, hidden_size=8), beam_width=1)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    build_translator(config, pairs).save(run)
    return run


def test_input_longer_than_training_warns_on_stderr_and_stdout_holds_translations_alone(
    small_run, capsys, caplog
) -> None:
    """``translate RUN TEXT > out.txt`` wrote the warning into the translation's line."""
    texts = ["one two", "one two three four five one"]
    assert main(["translate", str(small_run), *texts, "--max-len", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and not any("unreliable" in line or "\t" in line for line in lines)
    assert "sentence 2 has 6 tokens, more than the longest training input (3)" in caplog.text


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_heatmap_format_follows_the_extension(small_run, tmp_path, suffix, capsys) -> None:
    path = tmp_path / f"map{suffix}"
    assert main(["translate", str(small_run), "one two", "--heatmap", str(path), "--max-len", "3"]) == 0
    head = path.read_bytes()[:5]
    assert head == {".png": b"\x89PNG\r", ".pdf": b"%PDF-", ".svg": b"<?xml"}[suffix]
    assert main(["translate", str(small_run), "one two", "--heatmap", str(path)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err


def test_heatmap_of_a_long_input_is_capped_and_tokens_are_clean(tmp_path) -> None:
    source = [f"Ġword{i}" for i in range(400)]
    target = ["▁out", "put", "<eos>"]
    weights = np.full((3, 400), 1 / 400)
    path = tmp_path / "long.png"
    attention_heatmap(weights, source, target, path)
    width, height = Image.open(path).size
    assert width <= (HEATMAP_MAX_INCHES + 6) * 120 and height < 800
    assert clean_token("Ġword") == "word" and clean_token("##ing") == "ing" and clean_token("▁") == "␣"
    with pytest.raises(InvalidInputError, match=r"\.png, \.pdf or \.svg"):
        attention_heatmap(weights, source, target, tmp_path / "x.jpg")


def test_the_longest_training_input_recorded_by_training_wins(small_run, tmp_path, capsys, caplog) -> None:
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    (run / "metrics.json").write_text(json.dumps({"longest_source_tokens": 1}))
    assert main(["translate", str(run), "one two", "--max-len", "3"]) == 0
    assert "unreliable" not in capsys.readouterr().out
    assert "more than the longest training input (1)" in caplog.text


def test_a_line_longer_than_the_transformer_reads_stays_blank_and_the_rest_translate(
    tmp_path, capsys, caplog
) -> None:
    from nlp182.seq2seq.transformer import MAX_POSITIONS
    from nlp182.seq2seq.translator import Translator

    pairs = [("one two", "two one"), ("three four five", "five four three")]
    model = ModelConfig(architecture="transformer", hidden_size=8, num_heads=2, num_layers=1)
    run = tmp_path / "transformer"
    run.mkdir()
    build_translator(Seq2SeqConfig(model=model, beam_width=1), pairs).save(run)
    lines = tmp_path / "lines.txt"
    lines.write_text("one two\n" + "one " * (MAX_POSITIONS + 10) + "\n\nthree four\n")
    assert main(["translate", str(run), "--input", str(lines), "--max-len", "3"]) == 0
    out = capsys.readouterr().out.split("\n")
    assert len(out) == 5 and out[1] == "" and out[2] == "" and out[0] and out[3]  # one line per line
    assert "1 input lines are longer than the model reads (1024 tokens)" in caplog.text
    translator = Translator.load(run, device="cpu")
    with pytest.raises(InvalidInputError, match=r"text 1 .*has 10\d\d tokens and this model reads at most"):
        translator.translate(["one two", "one " * (MAX_POSITIONS + 10)])
    with pytest.raises(InvalidInputError, match=r"text 0 .*blank"):
        translator.translate(["   ", "one two"])


def test_a_run_of_the_other_model_is_named_for_what_it_is(tmp_path, capsys) -> None:
    import json

    from nlp182.captioning import Captioner
    from nlp182.errors import FileFormatError

    captions, pairs = tmp_path / "captions", tmp_path / "pairs"
    for folder, model in ((captions, {"encoder": "small"}), (pairs, {"architecture": "rnn"})):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model": model}))
    assert main(["translate", str(captions), "hello"]) == 2
    assert f"{captions} is a caption run, not a seq2seq run" in capsys.readouterr().err
    with pytest.raises(FileFormatError, match="is a seq2seq run, not a captioning run"):
        Captioner.load(pairs, device="cpu")


def test_held_out_pairs_past_four_times_max_length_are_left_out_of_scoring(caplog) -> None:
    from nlp182.seq2seq.train import bounded_held_out

    pairs = [("one two", "two one"), ("three four five", "five four three")]
    translator = build_translator(Seq2SeqConfig(model=ModelConfig(embed_dim=8, hidden_size=8)), pairs)
    held_out = [("one two", "two one"), ("one " * 50, "two one"), ("one two", "two " * 41)]
    assert bounded_held_out(translator, held_out, 10, "validation") == held_out[:1]
    assert "2 validation pairs are longer than 40 tokens on a side and are left out of scoring" in caplog.text
    assert bounded_held_out(translator, held_out, 100, "test") == held_out


def test_the_validation_loss_is_per_target_token_whatever_the_batch_size() -> None:
    from nlp182.seq2seq.batching import make_loader
    from nlp182.seq2seq.train import encode_pairs, make_eval_fn

    pairs = [("one two", "two one"), ("three four five", "five four three five four three"), ("one", "one")]
    translator = build_translator(Seq2SeqConfig(model=ModelConfig(embed_dim=8, hidden_size=8)), pairs)
    ids = encode_pairs(translator, pairs)
    evaluate = make_eval_fn(translator, pairs, ["exact_match"], 4)
    translator.model.eval()  # as the Trainer validates: no dropout
    by_two = evaluate(translator.model, make_loader(ids, 2, shuffle=False))["valid_loss"]
    whole = evaluate(translator.model, make_loader(ids, 8, shuffle=False))["valid_loss"]
    assert by_two == pytest.approx(whole, rel=1e-5)


def test_sentences_after_the_options_and_spaces_around_them_translate_as_typed(small_run, capsys) -> None:
    """`translate RUN --beam-width 1 "one two"` was refused (unrecognized arguments), and " one two"
    was read with an unknown leading space and translated otherwise, without a word."""
    assert main(["translate", str(small_run), "one two", "--max-len", "3"]) == 0
    plain = capsys.readouterr().out
    assert main(["translate", str(small_run), "--max-len", "3", "--beam-width", "1", "one two"]) == 0
    assert capsys.readouterr().out == plain
    assert main(["translate", str(small_run), "  one two ", "--max-len", "3"]) == 0
    assert capsys.readouterr().out == plain
    with pytest.raises(SystemExit) as refused:  # argparse's own exit
        main(["translate", str(small_run), "--max-len", "3", "one", "--bogus"])
    assert refused.value.code == 2 and "unrecognized arguments: one --bogus" in capsys.readouterr().err
    # after "--" a sentence may start with a dash, before or after the options
    assert main(["translate", str(small_run), "--", "-one two"]) == 0
    dashed = capsys.readouterr().out
    assert main(["translate", str(small_run), "--beam-width", "1", "--", "-one two"]) == 0
    assert capsys.readouterr().out == dashed


def _seeded_run(folder: Path, **settings: float) -> None:
    """Save into ``folder`` an untrained run of fixed-seed weights, where length penalties 0 and 1
    choose different outputs; the caller's random state is left as it was."""
    import torch

    from nlp182.device import random_state_kept

    pairs = [("one two", "two one"), ("three four five", "five four three")]
    config = Seq2SeqConfig(max_length=3, model=ModelConfig(embed_dim=8, hidden_size=8), **settings)
    with random_state_kept():
        torch.manual_seed(0)
        build_translator(config, pairs).save(folder)


def test_the_length_penalty_is_used_for_input_files_as_for_sentences(tmp_path, capsys) -> None:
    """``--input FILE`` translates in batches on its own path: ``--length-penalty`` must reach it too,
    or a file is searched with the run's penalty while the same lines typed out are not."""
    from nlp182.seq2seq.translator import Translator

    run = tmp_path / "run"
    run.mkdir()
    _seeded_run(run)
    texts = ["one two", "three four five", "one"]
    lines = tmp_path / "in.txt"
    lines.write_text("\n".join(texts) + "\n")
    flags = ["--beam-width", "5", "--length-penalty", "0", "--max-len", "3"]
    assert main(["translate", str(run), "--input", str(lines), *flags]) == 0
    from_file = capsys.readouterr().out.split("\n")[:-1]
    assert main(["translate", str(run), *flags, *texts]) == 0
    assert capsys.readouterr().out.split("\n")[:-1] == from_file
    translator = Translator.load(run, device="cpu")
    searched = [translator.translate(texts, beam_width=5, max_len=3, length_penalty=penalty, warn=False)
                for penalty in (0.0, translator.config.length_penalty)]
    assert from_file == [result.text for result in searched[0]]
    assert from_file != [result.text for result in searched[1]]  # the run's own penalty (1) reads otherwise


def test_a_loaded_run_searches_with_its_saved_length_penalty(tmp_path: Path) -> None:
    """``Translator.load`` keeps the run's ``length_penalty``: a run trained with 0.0 and searched
    with the default 1.0 reads otherwise, on untrained weights where the two penalties differ."""
    from nlp182.seq2seq.translator import Translator

    _seeded_run(tmp_path, length_penalty=0.0)
    translator = Translator.load(tmp_path, device="cpu")
    texts = ["one two", "three four five", "one"]

    def searched(**penalty: float) -> list[str]:
        return [t.text for t in translator.translate(texts, beam_width=5, max_len=3, warn=False, **penalty)]

    assert translator.config.length_penalty == 0.0
    assert searched() == searched(length_penalty=0.0) != searched(length_penalty=1.0)


def test_input_lines_longer_than_training_are_named_once_and_the_output_stays_clean(
    small_run, tmp_path, capsys, caplog
) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("one two\none two three four five one\n\none two three four\n")
    assert main(["translate", str(small_run), "--input", str(lines), "--max-len", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and not any("unreliable" in line for line in out)
    assert ("2 input lines have more tokens than the longest training input (3): their translations "
            "are unreliable (lines 2, 4)") in caplog.text


@pytest.mark.parametrize("command", [["translate", "run", "a"], ["caption", "run", "a.png"],
                                     ["train", "seq2seq", "--out", "o"], ["train", "caption", "--out", "o"]])
def test_every_beam_width_flag_refuses_more_than_the_widest_beam(command: list[str], capsys) -> None:
    from nlp182 import cli

    with pytest.raises(SystemExit) as stopped:
        cli.main([*command, "--beam-width", "1001"])
    assert stopped.value.code == 2
    assert "--beam-width must be at most 1000, got 1001" in capsys.readouterr().err


def test_translate_input_is_batched_by_its_text_as_well_as_its_lines(
    small_run, tmp_path, monkeypatch, capsys
) -> None:
    """256 lines of 65,000 characters made one batch of 24 GB; a batch now ends at MAX_BATCH_CHARS
    of text too, and every line still gets its output line, in order."""
    from nlp182.commands import seq2seq as command
    from nlp182.seq2seq.translator import Translator

    sizes: list[int] = []
    translate = Translator.translate

    def counting(self, texts, *args, **kwargs):
        sizes.append(len(texts))
        return translate(self, texts, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate", counting)
    monkeypatch.setattr(command, "MAX_BATCH_CHARS", 20)
    lines = ["one two three four five"] * 3 + ["one"] * 10
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    assert main(["translate", str(small_run), "--input", str(tmp_path / "in.txt"), "--max-len", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(lines)
    assert sizes == [1, 1, 1, 7, 3] and sum(sizes) == len(lines)
