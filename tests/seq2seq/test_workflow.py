"""The workflow around a seq2seq run: separate files, best epoch kept, resume, translate files, tokenizer,
unknown tokens, permissions, and the Transformer option through the same CLI."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import re
import stat
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlp182.commands import seq2seq as command
from nlp182.errors import FileFormatError, InvalidInputError, Nlp182Error
from nlp182.seq2seq import Seq2SeqConfig, Translator
from nlp182.seq2seq import translator as translator_module
from nlp182.seq2seq.architectures import build_model
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import display_token
from nlp182.seq2seq.train import build_translator, load_pairs, train_seq2seq

LETTERS = "abcdef"


def _write(path: Path, words: list[str]) -> str:
    """A toy grapheme-to-phoneme TSV: a word's letters, reversed and spaced, are its 'phonemes'."""
    path.write_text("".join(f"{w}\t{' '.join(reversed(w))}\n" for w in words), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    rng = random.Random(0)
    words = sorted({"".join(rng.choices(LETTERS, k=rng.randint(3, 5))) for _ in range(2000)})[:400]
    rng.shuffle(words)
    folder = tmp_path_factory.mktemp("toy")
    return {
        "data": _write(folder / "train.tsv", words[:-40]),
        "valid": _write(folder / "valid.tsv", words[-40:-20]),
        "test": _write(folder / "test.tsv", words[-20:]),
    }


def _flags(files: dict[str, str], *extra: str) -> list[str]:
    flags = ["--data", files["data"], "--valid-data", files["valid"], "--test-data", files["test"]]
    flags += ["--source-tokenizer", "char", "--metrics", "wer,per", "--lowercase", "--no-input-feeding"]
    flags += ["--hidden-size", "32", "--embed-dim", "16", "--batch-size", "32", "--lr", "0.01"]
    return [*flags, "--epochs", "3", "--no-progress", "--threads", "1", "--num-heatmaps", "1", *extra]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="nlp182")
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Nlp182Error as exc:
        print(f"nlp182: error: {exc}")
        return 2


@pytest.fixture(scope="module")
def run(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "toy"
    previous = os.umask(0o022)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _run(["train", "seq2seq", "--out", str(out), *_flags(files)]) == 0  # on --threads 1
        assert torch.get_num_threads() == 2  # the caller's count is put back (it stayed 1)
    finally:
        os.umask(previous)
        torch.set_num_threads(threads)
    return out


def test_separate_files_and_the_best_epoch_is_the_saved_model(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pairs"] == {"train": 360, "valid": 20, "test": 20}
    history = metrics["history"]
    best = min(range(len(history)), key=lambda i: history[i]["valid_wer"])
    assert metrics["best_epoch"] == best + 1
    # The saved weights are the best epoch's: they reproduce its validation WER exactly.
    translator = Translator.load(run, device="cpu")
    _, valid, _ = load_pairs(translator.config)
    outputs = [t.text for t in translator.translate([s for s, _ in valid], beam_width=1, need_weights=False)]
    wrong = sum(o != t for o, (_, t) in zip(outputs, valid, strict=True)) / len(valid)
    assert wrong == pytest.approx(history[best]["valid_wer"])
    assert {"wer", "per", "greedy"} <= set(metrics["test"]) and "bleu" not in metrics["test"]
    assert metrics["train_target_tokens_per_s"] > 0


def test_run_files_are_readable_by_group_and_others(run: Path) -> None:
    paths = [run, *run.rglob("*")]
    assert any(p.name == "model.safetensors" for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_translate_a_file_and_stdin_line_by_line(run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    text = tmp_path / "words.txt"
    text.write_text("abc\n\nFED\nba\n", encoding="utf-8")
    translator = Translator.load(run, device="cpu")
    expected = [t.text for t in translator.translate(["abc", "fed", "ba"], beam_width=2)]
    assert _run(["translate", str(run), "--input", str(text), "--beam", "2", "--batch-size", "2"]) == 0
    assert capsys.readouterr().out.split("\n")[:4] == [expected[0], "", expected[1], expected[2]]
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\nba\n"))
    assert _run(["translate", str(run), "--input", "-", "--beam", "2"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == [expected[0], expected[2]]
    assert _run(["translate", str(run), "abc", "--input", str(text)]) == 2
    assert _run(["translate", str(run), "--input", str(tmp_path / "missing.txt")]) == 2


def test_tokenizer_is_saved_and_applied_as_in_training_with_unknown_tokens_named(run: Path, caplog) -> None:
    translator = Translator.load(run, device="cpu")
    again = Translator.load(run, device="cpu")
    assert translator.source_tokenizer.to_str() == again.source_tokenizer.to_str()
    # No pre-spacing, no lower-casing by hand: "ABC" is split into letters and lower-cased as in training.
    assert translator.translate(["ABC"])[0].text == translator.translate(["abc"])[0].text
    assert translator.translate(["ABC"])[0].source_tokens == ["a", "b", "c"]
    with caplog.at_level(logging.WARNING):
        translator.translate(["abz", "qa"])
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "'z'" in warning and "'q'" in warning and "'a'" not in warning


def test_translate_refuses_a_batch_size_below_1_and_encodings_of_other_texts(run: Path) -> None:
    translator = Translator.load(run, device="cpu")
    with pytest.raises(InvalidInputError, match="batch_size must be at least 1, got 0"):
        translator.translate(["abc"], batch_size=0)
    with pytest.raises(InvalidInputError, match="1 encodings for 2 texts"):
        translator.translate(["abc", "ab"], encodings=translator.encode(["abc"]))


def test_an_unfinished_run_is_not_loaded_as_a_model(run: Path, tmp_path: Path) -> None:
    """After Ctrl-C, ``translate OUT.incomplete`` printed a checkpoint's garbage with exit 0, and
    ``translate OUT`` said only "is not a folder"."""
    import shutil

    from nlp182.captioning import Captioner

    staged = tmp_path / "dates.incomplete"
    shutil.copytree(run, staged)
    with pytest.raises(InvalidInputError, match=r"unfinished run.*seq2seq --resume --out .*dates`"):
        Translator.load(staged, device="cpu")
    with pytest.raises(Nlp182Error, match=r"dates does not exist; .*dates.incomplete holds its"):
        Translator.load(tmp_path / "dates", device="cpu")
    assert _run(["translate", str(staged), "x"]) == 2
    with pytest.raises(InvalidInputError, match="train caption --resume"):
        Captioner.load(staged)
    assert Translator.load(staged, device="cpu", weights=False).config  # what a resumed run reads


def test_decode_ids_names_an_id_outside_the_vocabulary_and_takes_no_sources(run: Path) -> None:
    """Ids out of range failed with torch's "index out of range in self", naming neither the id nor
    the vocabulary; no sources failed inside the RNN."""
    translator = Translator.load(run, device="cpu")
    size = translator.source_tokenizer.get_vocab_size()
    assert translator.decode_ids([]) == []
    for bad in (size, -1, 2.0):
        with pytest.raises(InvalidInputError, match=rf"source 1: id {bad!r} is not one of .*0\.\.{size - 1}"):
            translator.decode_ids([[5, 6], [5, bad]])
    assert len(translator.decode_ids([[5, 6]], beam_width=1)) == 1


def test_translate_tokenizes_each_text_once(run: Path, caplog) -> None:
    translator = Translator.load(run, device="cpu")
    expected = [t.text for t in translator.translate(["abz", "qa", "abc"])]
    seen: list[str] = []

    class Counting:
        """The source tokeniser, recording every text it encodes."""

        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def encode(self, text, **options):
            seen.append(text)
            return self.inner.encode(text, **options)

        def encode_batch(self, texts, **options):
            seen.extend(texts)
            return self.inner.encode_batch(texts, **options)

    translator.source_tokenizer = Counting(translator.source_tokenizer)
    with caplog.at_level(logging.WARNING):
        found = translator.translate(["abz", "qa", "abc"], batch_size=2)
    assert seen == ["abz", "qa", "abc"]
    assert [t.text for t in found] == expected and found[2].source_tokens == ["a", "b", "c"]
    assert "'z'" in caplog.text and "'q'" in caplog.text


def test_heatmap_labels_drop_the_word_boundary_marker() -> None:
    assert display_token("▁HH") == "HH" and display_token("▁") == "␣" and display_token("a") == "a"


@pytest.mark.parametrize("architecture", ["rnn", "transformer"])
def test_a_config_whose_sizes_the_weights_lack_is_refused_before_the_model_is_built(
    tmp_path: Path, monkeypatch, architecture: str
) -> None:
    """A 156 KB run folder whose config.json said hidden_size and embed_dim 16000 allocated ~12 GB
    before the weights' shapes were compared. The shapes come from the file's header and the model
    is built for real only when they agree; an unedited folder loads and translates as saved."""
    pairs = [(f"ab{i % 7}c", f"c{i % 7}ba") for i in range(40)]
    config = Seq2SeqConfig(tokenizer="char", max_length=8, beam_width=1, max_len=8,
                           model=ModelConfig(architecture=architecture, embed_dim=8, hidden_size=8,
                                             num_heads=2, ffn_size=16))
    saved = build_translator(config, pairs)
    saved.model.eval()
    saved.save(tmp_path / "run")
    loaded = Translator.load(tmp_path / "run", device="cpu")
    expected = saved.translate(["ab1c", "ab5c"], warn=False)
    found = loaded.translate(["ab1c", "ab5c"], warn=False)
    assert [(t.text, t.log_prob) for t in found] == [(t.text, t.log_prob) for t in expected]

    edited = json.loads((tmp_path / "run" / "config.json").read_text())
    edited["model"].update(hidden_size=16000, embed_dim=16000)
    (tmp_path / "run" / "config.json").write_text(json.dumps(edited))
    built = []

    def build(source_size: int, target_size: int, model: ModelConfig) -> torch.nn.Module:
        built.append(torch.get_default_device().type)
        if built[-1] != "meta":  # a real one would hold gigabytes
            raise AssertionError(f"a model of hidden size {model.hidden_size} was allocated")
        return build_model(source_size, target_size, model)

    monkeypatch.setattr(translator_module, "build_model", build)
    start = time.perf_counter()
    weights = re.escape(str(tmp_path / "run" / "model.safetensors"))
    wrong = rf"^{weights}: tensor \S+ has shape \(.*16000.*\) by the run's config but \(.*\) in the file"
    with pytest.raises(FileFormatError, match=wrong):
        Translator.load(tmp_path / "run", device="cpu")
    assert time.perf_counter() - start < 2 and built == ["meta"]


def test_translate_names_inputs_that_are_not_text_and_decode_ids_takes_a_tensor() -> None:
    pairs = [(f"ab{i % 7}c", f"c{i % 7}ba") for i in range(40)]
    config = Seq2SeqConfig(tokenizer="char", max_length=8, beam_width=1, max_len=8,
                           model=ModelConfig(embed_dim=8, hidden_size=8))
    translator = build_translator(config, pairs)
    for odd, name in ((None, "NoneType"), (3, "int"), (b"ab1c", "bytes")):
        with pytest.raises(InvalidInputError, match=f"text 1 is a {name}, not a str"):
            translator.translate(["ab1c", odd], warn=False)
    assert [t.text for t in translator.translate(s for s in ["ab1c"])] == [
        t.text for t in translator.translate(["ab1c"], warn=False)]  # a generator of sentences too
    ids = [encoding.ids for encoding in translator.encode(["ab1c", "ab5c"])]
    as_lists = translator.decode_ids(ids)
    as_tensor = translator.decode_ids(torch.tensor(ids))  # a (B, S) id tensor: its ids were refused
    assert [(h.tokens, h.log_prob) for h in as_tensor] == [(h.tokens, h.log_prob) for h in as_lists]


def test_an_interrupt_before_the_settings_are_saved_leaves_nothing_a_resume_could_mistake(
    files: dict[str, str], tmp_path: Path, capsys, monkeypatch
) -> None:
    """Stopped between staging the run and saving its settings, the empty staged folder was kept
    and ``--resume`` trained the command line's defaults (the built-in dates task) under the
    user's run name; now nothing is kept, and a settings-less staged run is refused at once."""
    from nlp182.seq2seq import train as seq2seq_train

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "stopped"
    monkeypatch.setattr(seq2seq_train, "check_same_data", stopped)  # the first step inside the stage
    with pytest.raises(KeyboardInterrupt):
        _run(["train", "seq2seq", "--out", str(out), *_flags(files)])
    monkeypatch.undo()
    assert not Path(f"{out}.incomplete").exists() and not out.exists()
    Path(f"{out}.incomplete").mkdir()  # as a kill -9 at that moment leaves it
    capsys.readouterr()
    assert _run(["train", "seq2seq", "--out", str(out), "--resume", "--no-progress"]) == 2
    told = capsys.readouterr().out
    assert "holds no settings" in told and "without --resume" in told and "dates" not in told
    assert not out.exists()


@pytest.mark.parametrize("resume_by", ["cli", "python"])
def test_resume_after_an_interrupt_equals_an_uninterrupted_run(
    files: dict[str, str], run: Path, tmp_path: Path, capsys, interrupt_after_epoch, resume_by: str
) -> None:
    """From the command or from Python (``train_seq2seq(config, out, resume=True)`` with a config
    that settles nothing: it trained the resumed epochs with unsettled sizes, saved them in
    config.json beside the settled weights, and the run could not be loaded), the resumed run is
    the uninterrupted one, its choices from the data included."""
    out = tmp_path / "interrupted"
    lift = interrupt_after_epoch(2)
    with pytest.raises(KeyboardInterrupt):
        _run(["train", "seq2seq", "--out", str(out), *_flags(files)])
    assert "--resume" in capsys.readouterr().err
    staged = Path(f"{out}.incomplete")
    assert len(list((staged / "train" / "checkpoints").glob("step-*.safetensors"))) == 1  # epoch 1's
    assert not out.exists()
    lift()
    assert _run(["train", "seq2seq", "--out", str(out), *_flags(files)]) == 2  # a fresh start is refused
    data = Path(files["data"])  # edited since: the run would go on training on other pairs
    original = data.read_bytes()
    data.write_bytes(original.replace(b"\n", b"x\n", 1))
    capsys.readouterr()
    assert _run(["train", "seq2seq", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert f"{data} holds other data now" in capsys.readouterr().out
    data.write_bytes(original)
    if resume_by == "cli":
        assert _run(["train", "seq2seq", "--out", str(out), "--resume", "--no-progress"]) == 0
    else:
        train_seq2seq(Seq2SeqConfig(progress=False), out, resume=True)
    assert not staged.exists()
    chosen = json.loads((out / "metrics.json").read_text())["chosen"]
    assert chosen and chosen == json.loads((run / "metrics.json").read_text())["chosen"]
    assert (out / "config.json").read_text() == (run / "config.json").read_text()
    Translator.load(out)
    resumed, straight = load_file(out / "model.safetensors"), load_file(run / "model.safetensors")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert _run(["train", "seq2seq", "--out", str(tmp_path / "none"), "--resume"]) == 2


def test_no_test_set_means_no_test_scores_and_no_nan(files: dict[str, str], tmp_path: Path, caplog) -> None:
    flags = [f for f in _flags(files, "--epochs", "1") if f not in ("--test-data", files["test"])]
    with caplog.at_level(logging.INFO):
        assert _run(["train", "seq2seq", "--out", str(tmp_path / "r"), *flags, "--test-fraction", "0"]) == 0
    assert "nan" not in caplog.text.lower()
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["test"] == {}


def test_transformer_trains_and_translates_through_the_same_cli(files: dict[str, str], tmp_path) -> None:
    out = tmp_path / "transformer"
    flags = _flags(files, "--architecture", "transformer", "--num-layers", "1", "--num-heads", "2")
    flags += ["--ffn-size", "64", "--lr-schedule", "warmup-invsqrt", "--warmup-steps", "5", "--lr", "0.003"]
    assert _run(["train", "seq2seq", "--out", str(out), *flags]) == 0
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    translator = Translator.load(out, device="cpu")
    translation = translator.translate(["abc"], beam_width=3)[0]
    assert translation.weights.shape == (len(translation.target_tokens), 3)
    with pytest.raises(InvalidInputError, match="at most the model's 1024 positions, got 1025"):
        translator.translate(["abc"], max_len=1025)  # refused before 1,024 decoding steps, not after


def test_a_run_of_relative_data_paths_resumes_from_any_folder(
    files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt_after_epoch, capsys
) -> None:
    """The run saved ``--data`` as typed (``rev.tsv``): resumed from another folder its data did
    not exist, and the same file named by its full path was refused as other data."""
    data_dir = Path(files["data"]).parent
    relative = {name: Path(path).name for name, path in files.items()}
    assert all((data_dir / name).exists() for name in relative.values())
    monkeypatch.chdir(data_dir)
    out = tmp_path / "run"
    lift = interrupt_after_epoch(1)
    with pytest.raises(KeyboardInterrupt):
        _run(["train", "seq2seq", "--out", str(out), *_flags(relative, "--epochs", "2")])
    lift()
    saved = json.loads((Path(f"{out}.incomplete") / "config.json").read_text())
    assert saved["data"] == files["data"] and Path(saved["valid_data"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    resume = ["train", "seq2seq", "--out", str(out), "--resume", "--no-progress"]
    assert _run([*resume, "--data", files["data"]]) == 0
    assert json.loads((out / "config.json").read_text())["data"] == files["data"]


def test_a_file_named_as_a_built_in_data_set_is_named_in_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """A local file called ``dates`` was replaced by the built-in task without a word."""
    from nlp182.commands.seq2seq import _with_absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dates").write_text("a\tb\n")
    with caplog.at_level(logging.WARNING):
        kept = _with_absolute_paths(Seq2SeqConfig(data="dates"))
    assert kept.data == "dates" and "give ./dates to train on the file" in caplog.text
    assert _with_absolute_paths(Seq2SeqConfig(data="./dates")).data == str(tmp_path / "dates")
