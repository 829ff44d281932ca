"""End to end: a short date-normalisation run through the shared Trainer, saving, loading, translating."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import sacrebleu
import torch

from nlp182.errors import FileFormatError, InvalidInputError, MissingFileError
from nlp182.seq2seq import ModelConfig, Seq2SeqConfig, Translator, corpus_bleu, exact_match, train_seq2seq
from nlp182.seq2seq.batching import collate
from nlp182.seq2seq.data import date_splits
from nlp182.seq2seq.tokenize import PAD_ID
from nlp182.seq2seq.train import build_translator, encode_pairs, evaluate_test, make_eval_fn, sequence_loss

#: ``(sources, beam_width)`` of every ``Translator.translate`` call made while ``date_run`` trains.
DECODED: list[tuple[tuple[str, ...], int | None]] = []


def test_bleu_and_exact_match() -> None:
    hyps, refs = ["the cat sat on the mat", "hello there"], ["the cat sat on a mat", "hello there"]
    assert corpus_bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert exact_match(hyps, refs) == 0.5
    with pytest.raises(InvalidInputError):
        exact_match(hyps, refs[:1])


PAIRS = [("a b c", "x y"), ("b c", "y z x w"), ("c a", "w")]


def test_losses_average_over_real_target_tokens() -> None:
    """Padding is no target: a batch's loss is the mean negative log-likelihood of its real tokens
    (float64 reference), and the validation loss weighs each batch by its tokens, so it is the
    split's mean per token however the batches fall."""
    torch.manual_seed(0)
    translator = build_translator(Seq2SeqConfig(model=ModelConfig(embed_dim=8, hidden_size=16)), PAIRS)
    model = translator.model.eval()
    encoded = encode_pairs(translator, PAIRS)
    batches = [collate(encoded[:2]), collate(encoded[2:])]  # the first batch's targets are padded
    per_token = []
    for batch in batches:
        with torch.no_grad():
            logits = model(batch.source, batch.source_lengths, batch.target_in)
        log_probs = logits.double().log_softmax(-1).gather(-1, batch.target_out[..., None])[..., 0]
        real = -log_probs[batch.target_out != PAD_ID]
        with torch.no_grad():
            loss, _ = sequence_loss(model, batch)
        assert float(loss) == pytest.approx(float(real.mean()), rel=1e-6)
        per_token.append(real)
    evaluate = make_eval_fn(translator, PAIRS, ["exact_match"], max_len=5)
    mean = float(torch.cat(per_token).mean())
    assert evaluate(model, batches)["valid_loss"] == pytest.approx(mean, rel=1e-6)


def test_pairs_up_to_max_length_tokens_a_side_are_kept() -> None:
    translator = build_translator(Seq2SeqConfig(), PAIRS)
    assert [len(target) for _, target in encode_pairs(translator, PAIRS, max_length=4)] == [2, 4, 1]
    assert [len(target) for _, target in encode_pairs(translator, PAIRS, max_length=3)] == [2, 1]
    assert [len(source) for source, _ in encode_pairs(translator, PAIRS, max_length=2)] == [2]


@pytest.fixture(scope="module")
def date_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Seq2SeqConfig, dict, object]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    config = Seq2SeqConfig(
        date_train=3000,
        date_valid=200,
        date_test=200,
        epochs=4,
        batch_size=32,
        model=ModelConfig(embed_dim=24, hidden_size=64),
        beam_width=3,
        num_heatmaps=2,
        progress=False,
    )
    run = tmp_path_factory.mktemp("runs") / "dates"
    translate = Translator.translate

    def recording(self, texts, beam_width=None, *args, **kwargs):
        DECODED.append((tuple(texts), beam_width))
        return translate(self, texts, beam_width, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Translator, "translate", recording)
        metrics = train_seq2seq(config, run)
    torch.set_num_threads(previous)
    return config, metrics, run


def test_short_date_training_learns_the_task(date_run) -> None:
    _, metrics, _ = date_run
    history = metrics["history"]
    assert len(history) == 4
    assert history[-1]["valid_loss"] < history[0]["valid_loss"] / 3
    # 3000 examples and a few seconds of CPU: well above chance (0), far from the full run's 99%.
    assert metrics["test"]["exact_match"] >= 0.6, metrics["test"]["exact_match"]
    assert metrics["test"]["cer"] <= 0.1  # the date task's metrics: exact match and CER
    assert metrics["pairs"] == {"train": 3000, "valid": 200, "test": 200}


def test_run_folder_reloads_to_the_same_translations(date_run) -> None:
    config, metrics, run = date_run
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["exact_match"] == metrics["test"]["exact_match"]
    assert sorted(p.name for p in (run / "heatmaps").iterdir()) == ["test-0.png", "test-1.png"]
    translator = Translator.load(run, device="cpu")
    assert translator.config == config
    _, _, test = date_splits(3000, 200, 200, seed=0)
    outputs = translator.translate([s for s, _ in test])
    assert exact_match([o.text for o in outputs], [t for _, t in test]) == metrics["test"]["exact_match"]
    first = outputs[0]
    assert first.weights.shape == (len(first.target_tokens), len(first.source_tokens))
    np.testing.assert_allclose(first.weights.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidInputError):
        translator.translate("9/5/18")
    # A reference word outside the target vocabulary must count as an error, not as <unk> == <unk>.
    scored, translations = evaluate_test(translator, [("9/5/18", "zebra")], beam_width=1)
    assert [t.source for t in translations] == ["9/5/18"] and translations[0].weights is None
    assert scored["exact_match"] == 0.0 and scored["examples"][0]["references"] == ["zebra"]


def test_the_test_split_is_decoded_once_per_strategy_and_its_beam_outputs_drawn(date_run) -> None:
    config, _, run = date_run
    _, _, test = date_splits(3000, 200, 200, seed=0)
    sources = tuple(dict.fromkeys(s for s, _ in test))
    assert [width for texts, width in DECODED if texts[:2] == sources[:2]] == [config.beam_width, 1]
    assert len(list((run / "heatmaps").iterdir())) == config.num_heatmaps


def test_loading_bad_run_folders_fails_clearly(date_run, tmp_path) -> None:
    _, _, run = date_run
    with pytest.raises(MissingFileError):
        Translator.load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "source_tokenizer.json", "target_tokenizer.json"):
        (broken / name).write_bytes((run / name).read_bytes())
    with pytest.raises(MissingFileError, match=r"model\.safetensors"):
        Translator.load(broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(FileFormatError):
        Translator.load(broken)


def test_deterministic_flag_trains_under_deterministic_algorithms(tmp_path, monkeypatch) -> None:
    from nlp182 import cli
    from nlp182.seq2seq import train as seq2seq_train

    seen = []
    record = lambda *args: seen.append(torch.are_deterministic_algorithms_enabled())  # noqa: E731
    monkeypatch.setattr(seq2seq_train, "_train", record)
    args = cli.build_parser().parse_args(["train", "seq2seq", "--out", str(tmp_path), "--deterministic"])
    assert args.deterministic
    train_seq2seq(Seq2SeqConfig(deterministic=True), tmp_path / "run")
    train_seq2seq(Seq2SeqConfig(), tmp_path / "run")
    assert seen == [True, False]


def _copy_task(tmp_path, times: int, extra: list[str] = (), **settings) -> Seq2SeqConfig:
    """Copying the nine two-letter sequences of a, b, c: ``times`` copies of each (and ``extra``)
    to train on, one of each held out; a small model."""
    pairs = [f"{a} {b}" for a in "abc" for b in "abc"]
    (tmp_path / "train.tsv").write_text("".join(f"{p}\t{p}\n" for p in [*pairs * times, *extra]))
    (tmp_path / "held.tsv").write_text("".join(f"{p}\t{p}\n" for p in pairs))
    held = str(tmp_path / "held.tsv")
    return Seq2SeqConfig(data=str(tmp_path / "train.tsv"), valid_data=held, test_data=held,
                         model=ModelConfig(embed_dim=8, hidden_size=16), beam_width=1, num_heatmaps=0,
                         progress=False, seed=0, **settings)  # fmt: skip


def test_a_perfect_validation_score_ends_the_run(tmp_path, caplog) -> None:
    """Copying three-letter sequences: once validation is exact, no later epoch could be kept, so the
    run stops there as an ordinary end (no warning) instead of training out its epochs."""
    config = _copy_task(tmp_path, times=20, epochs=80, lr=0.01)
    with caplog.at_level(logging.INFO, logger="nlp182.train.trainer"):
        metrics = train_seq2seq(config, tmp_path / "run")
    epochs = len(metrics["history"])
    assert epochs < 80 and metrics["history"][-1]["valid_exact_match"] == 1.0
    assert all(record["valid_exact_match"] < 1.0 for record in metrics["history"][:-1])
    reason = f"valid_exact_match reached 1, its best possible value, in epoch {epochs}"
    assert metrics["stop_reason"] == reason and f"stopped: {reason}" in caplog.text
    assert metrics["warnings"] == [] and metrics["best_epoch"] == epochs


def test_training_pairs_left_out_for_their_length_are_counted_in_a_warning(tmp_path, caplog) -> None:
    """Pairs over max_length were dropped without a word: a user's long lines vanished from training."""
    config = _copy_task(tmp_path, times=2, extra=["a b c a b c"] * 2, epochs=1, max_length=4)
    with caplog.at_level(logging.WARNING, logger="nlp182.seq2seq.train"):
        metrics = train_seq2seq(config, tmp_path / "run")
    message = ("2 of 20 training pairs (10.0%) have an empty side or one longer than max_length=4 tokens "
               "and are left out; raise --max-length to train on them")
    assert metrics["warnings"][0] == message and message in caplog.text
    assert metrics["pairs"]["train"] == 18


def test_training_leaves_the_callers_random_state_as_it_was(tmp_path) -> None:
    """train_seq2seq seeded Python, NumPy and torch for its run and left them so: a notebook's own
    random streams restarted from the run's seed."""
    import os
    import random

    import numpy as np

    random.seed(123), np.random.seed(123), torch.manual_seed(123)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(123), np.random.seed(123), torch.manual_seed(123)
    hash_seed = os.environ.get("PYTHONHASHSEED")
    train_seq2seq(_copy_task(tmp_path, times=2, epochs=1), tmp_path / "run")
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    assert os.environ.get("PYTHONHASHSEED") == hash_seed
