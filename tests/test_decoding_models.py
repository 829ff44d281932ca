"""Every model family decodes through the shared search exactly as a plain reference would.

The references score a prefix with the model's teacher-forced ``forward`` (not its step decoder)
one input at a time: greedy appends the arg-max token until ``<eos>``; beam search is the same
algorithm as the batched one written as a plain loop over Python lists.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nlp182.captioning.model import CaptionModel, CaptionModelConfig
from nlp182.captioning.vocab import BOS_ID as CAPTION_BOS
from nlp182.captioning.vocab import EOS_ID as CAPTION_EOS
from nlp182.decoding import decode, make_search
from nlp182.seq2seq.batching import collate
from nlp182.seq2seq.model import ModelConfig, Seq2Seq
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID
from nlp182.seq2seq.transformer import TransformerSeq2Seq

PAIRS = [([4, 5, 6, 7], [4, 5]), ([8, 9], [6, 7, 8]), ([5], [9]), ([6, 6, 7], [4])]
VOCAB = 8
#: Scores a prefix: ``(input row, prefix ids) -> log-probabilities (V,)`` of the next token.
NextLogProbs = Callable[[int, list[int]], torch.Tensor]
#: A model in eval mode, its inputs, and its ``<bos>`` and ``<eos>`` ids.
Case = tuple[torch.nn.Module, tuple[torch.Tensor, ...], int, int]


def _sharpen(output: torch.nn.Linear, eos: int, eos_bias: float) -> None:
    """Spread an untrained model's next-token scores and shift ``<eos>`` so outputs vary in length."""
    with torch.no_grad():
        output.weight.mul_(3.0)
        output.bias[eos] += eos_bias


def _translator(architecture: str, eos_bias: float) -> Case:
    torch.manual_seed(0)
    if architecture == "transformer":
        config = ModelConfig(
            architecture="transformer", hidden_size=16, num_layers=2, num_heads=2, ffn_size=32
        )
        model = TransformerSeq2Seq(12, VOCAB, config)
        _sharpen(model.output, EOS_ID, eos_bias)
    else:
        config = ModelConfig(cell=architecture, embed_dim=8, hidden_size=16, num_layers=2)
        model = Seq2Seq(12, VOCAB, config)
        _sharpen(model.decoder.output, EOS_ID, eos_bias)
    batch = collate(PAIRS)
    return model.eval(), (batch.source, batch.source_lengths), BOS_ID, EOS_ID


def _captioner(attention: str) -> Case:
    torch.manual_seed(0)
    config = CaptionModelConfig(
        encoder="small_cnn", encoder_width=0.25, grid=3, feature_dim=16, embed_dim=8, hidden_size=16,
        attention=attention, dropout=0.0,
    )
    model = CaptionModel(VOCAB, config)
    _sharpen(model.decoder.out, CAPTION_EOS, 0.6)
    return model.eval(), (torch.rand(3, 3, 16, 16),), CAPTION_BOS, CAPTION_EOS


MODELS = {
    "gru": lambda: _translator("gru", 0.0),
    "lstm": lambda: _translator("lstm", -0.2),
    "transformer": lambda: _translator("transformer", -1.0),
    "caption-soft": lambda: _captioner("additive"),
    "caption-hard": lambda: _captioner("hard"),
}


def _teacher_forced(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], bos: int) -> NextLogProbs:
    @torch.no_grad()
    def next_log_probs(row: int, prefix: list[int]) -> torch.Tensor:
        target_in = torch.tensor([[bos, *prefix]])
        if isinstance(model, CaptionModel):
            logits = model(inputs[0][row : row + 1], target_in).logits
        else:
            source, lengths = inputs
            length = int(lengths[row])
            logits = model(source[row : row + 1, :length], lengths[row : row + 1], target_in)
        log_probs = torch.log_softmax(logits[0, -1].double(), dim=-1)
        log_probs[bos] = float("-inf")  # decode never emits <bos>
        return log_probs

    return next_log_probs


def _reference_greedy(score: NextLogProbs, row: int, eos: int, max_len: int) -> tuple[list[int], float, bool]:
    tokens, total = [], 0.0
    for _ in range(max_len):
        log_probs = score(row, tokens)
        token = int(log_probs.argmax())
        total += float(log_probs[token])
        if token == eos:
            return tokens, total, True
        tokens.append(token)
    return tokens, total, False


def _reference_beam(
    score: NextLogProbs, row: int, eos: int, width: int, max_len: int, length_penalty: float
) -> tuple[list[int], float, bool]:
    live: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[list[int], float, bool]] = []

    def normalised(hyp: tuple[list[int], float, bool]) -> float:
        return hyp[1] / max(len(hyp[0]) + hyp[2], 1) ** length_penalty

    for _ in range(max_len):
        candidates = [
            (total + float(log_prob), tokens, token)
            for tokens, total in live
            for token, log_prob in enumerate(score(row, tokens))
        ]
        candidates.sort(key=lambda c: -c[0])
        extended: list[tuple[list[int], float]] = []
        for rank, (total, tokens, token) in enumerate(candidates[: 2 * width]):
            if len(extended) == width or total == float("-inf"):
                break
            if token == eos:
                if rank < width:  # an <eos> among the top `width` ends a hypothesis
                    finished.append((tokens, total, True))
                continue
            extended.append(([*tokens, token], total))
        live = extended
        # done with `width` finished once the best of them beats the best live one ended next step
        if not live or (len(finished) >= width and max(map(normalised, finished)) >= normalised(
                (live[0][0], live[0][1], True))):
            break
    else:
        finished.extend((tokens, total, False) for tokens, total in live)
    return max(finished, key=normalised)


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("max_len", [2, 6])
def test_greedy_matches_the_reference_loop(family: str, max_len: int) -> None:
    model, inputs, bos, eos = MODELS[family]()
    score = _teacher_forced(model, inputs, bos)
    found = decode(model, make_search(1), *inputs, bos_id=bos, eos_id=eos, max_len=max_len)
    assert len(found) == len(inputs[0])
    for row, hyp in enumerate(found):
        tokens, total, complete = _reference_greedy(score, row, eos, max_len)
        assert (hyp.tokens, hyp.complete) == (tokens, complete)
        assert hyp.log_prob == pytest.approx(total, abs=1e-4)
        assert hyp.weights is not None and hyp.weights.shape[0] == len(tokens) + complete


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize(("width", "max_len", "length_penalty"), [(3, 5, 1.0), (4, 3, 0.0), (2, 6, 0.5)])
def test_beam_matches_the_reference_loop(
    family: str, width: int, max_len: int, length_penalty: float
) -> None:
    model, inputs, bos, eos = MODELS[family]()
    score = _teacher_forced(model, inputs, bos)
    strategy = make_search(width, length_penalty)
    found = decode(model, strategy, *inputs, bos_id=bos, eos_id=eos, max_len=max_len)
    for row, hyp in enumerate(found):
        tokens, total, complete = _reference_beam(score, row, eos, width, max_len, length_penalty)
        assert (hyp.tokens, hyp.complete) == (tokens, complete)
        assert hyp.log_prob == pytest.approx(total, abs=1e-4)
    assert len(found) == len(inputs[0])


def test_results_and_models_have_short_informative_reprs() -> None:
    """A cut-off translation's repr held its whole attention matrix (14.5 KB); the Translator,
    Captioner, Trainer and Vocabulary showed only their address."""
    import numpy as np

    from nlp182.seq2seq.translator import Translation
    from nlp182.text.vocab import Vocabulary

    translation = Translation("a b", "x y", ["a", "b"], ["x", "y"], np.zeros((300, 200)), -1.5)
    assert len(repr(translation)) < 200 and "log_prob=-1.5" in repr(translation)
    vocab = Vocabulary(["the", "cat", "sat", "on", "a", "mat"], np.array([5, 3, 2, 2, 1, 1]), 20)
    assert repr(vocab) == "Vocabulary(6 words of 20 tokens: the, cat, sat, on, a, ...)"
    from nlp182.captioning.captioner import Captioner
    from nlp182.captioning.config import CaptionConfig
    from nlp182.captioning.vocab import CaptionVocab
    from nlp182.seq2seq import Seq2SeqConfig
    from nlp182.seq2seq.tokenize import train_tokenizer
    from nlp182.seq2seq.translator import Translator
    from nlp182.train import Trainer, TrainerConfig

    model, _, _, _ = _captioner("additive")
    words = CaptionVocab.build(["a red square", "a blue box"])
    captioner = Captioner(model, words, CaptionConfig(model=model.config))
    assert repr(captioner).startswith("Captioner(small_cnn encoder, additive attention, ")
    seq2seq, _, _, _ = _translator("gru", 0.0)
    tokenizer = train_tokenizer(["a b c"], "char", 100, 1, True, True)
    config = Seq2SeqConfig(model=ModelConfig(cell="gru", embed_dim=8, hidden_size=16, num_layers=2))
    assert repr(Translator(seq2seq, tokenizer, tokenizer, config)).startswith("Translator(gru ")
    trainer = Trainer(seq2seq, torch.optim.SGD(seq2seq.parameters(), lr=0.1), lambda m, b: 0.0,
                      TrainerConfig(epochs=3, device="cpu"))
    assert repr(trainer) == "Trainer(Seq2Seq, SGD, epoch 0/3, step 0, on cpu)"
