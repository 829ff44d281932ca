"""Encoder packing, decoder consistency, teacher forcing, greedy decoding and beam search."""

from __future__ import annotations

import itertools

import pytest
import torch

from nlp182.decoding import Beam, Greedy, decode
from nlp182.errors import InvalidInputError, ShapeError
from nlp182.seq2seq.batching import collate
from nlp182.seq2seq.model import ModelConfig, Seq2Seq
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID, PAD_ID

PAIRS = [([4, 5, 6, 7], [4, 5]), ([8, 9], [6, 7, 8]), ([5], [9])]
IDS = {"bos_id": BOS_ID, "eos_id": EOS_ID}


def _model(cell: str = "gru", attention: str = "additive", vocab: int = 12, **kwargs) -> Seq2Seq:
    config = ModelConfig(cell=cell, attention=attention, embed_dim=8, hidden_size=16, **kwargs)
    return Seq2Seq(12, vocab, config).eval()


@torch.no_grad()
def _log_prob(model: Seq2Seq, source: torch.Tensor, length: int, output: list[int], complete: bool) -> float:
    """Teacher-forced log-probability of ``output`` (+ ``<eos>`` when ``complete``) for one source."""
    target = output + ([EOS_ID] if complete else [])
    target_in = torch.tensor([[BOS_ID, *target[:-1]]]) if target else torch.tensor([[BOS_ID]])
    logits = model(source[None], torch.tensor([length]), target_in)
    log_probs = torch.log_softmax(logits[0], dim=-1)
    return float(sum(log_probs[t, token] for t, token in enumerate(target)))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_the_encoding(cell: str) -> None:
    model = _model(cell, num_layers=2)
    batch = collate(PAIRS)
    memory, state = model.encoder(batch.source, batch.source_lengths)
    alone_memory, alone_state = model.encoder(batch.source[1:2, :2], batch.source_lengths[1:2])
    torch.testing.assert_close(memory[1, :2], alone_memory[0])
    assert torch.all(memory[1, 2:] == 0)
    h, h_alone = (state[0], alone_state[0]) if cell == "lstm" else (state, alone_state)
    assert h.shape == (2, 3, 16)
    torch.testing.assert_close(h[:, 1], h_alone[:, 0])
    # The top layer's final state is [forward after the last real token; backward after the first].
    for row, length in enumerate(batch.source_lengths.tolist()):
        torch.testing.assert_close(h[-1, row, :8], memory[row, length - 1, :8])
        torch.testing.assert_close(h[-1, row, 8:], memory[row, 0, 8:])


def test_the_lstm_cell_state_crosses_by_its_own_bridge() -> None:
    """An LSTM decoder starts from ``tanh(bridge(h))`` and ``bridge_cell(c)``: the cell state has
    its own layer, not the hidden state's."""
    model = _model("lstm")
    with torch.no_grad():
        model.decoder.bridge_cell.weight.zero_()
        model.decoder.bridge_cell.bias.fill_(0.25)
        hidden, cell = torch.randn(1, 2, 16), torch.randn(1, 2, 16)
        first_hidden, first_cell = model.decoder.initial_state((hidden, cell))
    torch.testing.assert_close(first_hidden, torch.tanh(model.decoder.bridge(hidden)))
    torch.testing.assert_close(first_cell, torch.full((1, 2, 16), 0.25))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["additive", "dot", "general", "scaled_dot", "multihead"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_teacher_forced_logits_equal_stepwise_decoding(
    cell: str, attention: str, input_feeding: bool
) -> None:
    model = _model(cell, attention, input_feeding=input_feeding)
    batch = collate(PAIRS)
    logits = model(batch.source, batch.source_lengths, batch.target_in)
    assert logits.shape == (3, batch.target_in.shape[1], 12)
    encoded = model.encode_memory(batch.source, batch.source_lengths)
    state = encoded.state
    for t in range(batch.target_in.shape[1]):
        step, state, weights = model.step(batch.target_in[:, t], state, encoded, need_weights=True)
        torch.testing.assert_close(step, logits[:, t])
        torch.testing.assert_close(weights.sum(-1), torch.ones(3))
        assert torch.all(weights[2, 1:] == 0)  # source 2 has one token: padding gets no attention


def test_zero_teacher_forcing_feeds_back_the_greedy_predictions() -> None:
    model = _model("lstm", "general")
    batch = collate(PAIRS)
    hyps = decode(model, Greedy(), batch.source, batch.source_lengths, **IDS, max_len=6)
    target_in = torch.full((3, 6), PAD_ID)
    target_in[:, 0] = BOS_ID  # only the first input is given; the rest must come from the model
    logits = model(batch.source, batch.source_lengths, target_in, teacher_forcing=0.0)
    for hyp, row in zip(hyps, logits.argmax(-1).tolist(), strict=True):
        assert row[: len(hyp.tokens)] == hyp.tokens
    with pytest.raises(InvalidInputError):
        model(batch.source, batch.source_lengths, batch.target_in, teacher_forcing=1.5)


def test_greedy_and_beam_scores_are_the_model_log_probabilities() -> None:
    model = _model("gru", "additive")
    batch = collate(PAIRS)
    for hyps in (
        decode(model, Greedy(), batch.source, batch.source_lengths, **IDS, max_len=5),
        decode(model, Beam(3), batch.source, batch.source_lengths, **IDS, max_len=5),
    ):
        for i, hyp in enumerate(hyps):
            length = int(batch.source_lengths[i])
            expected = _log_prob(model, batch.source[i, :length], length, hyp.tokens, hyp.complete)
            assert hyp.log_prob == pytest.approx(expected, abs=1e-4)
            assert hyp.weights.shape == (hyp.scored_length, batch.source.shape[1])


def test_beam_width_one_is_greedy() -> None:
    model = _model("lstm", "multihead")
    batch = collate(PAIRS)
    greedy = decode(model, Greedy(), batch.source, batch.source_lengths, **IDS, max_len=7)
    beam = decode(model, Beam(1), batch.source, batch.source_lengths, **IDS, max_len=7)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]
    for g, b in zip(greedy, beam, strict=True):
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-5)
        torch.testing.assert_close(g.weights, b.weights)


def _biased_eos_model() -> Seq2Seq:
    """A 6-token model whose <eos> is neither always best nor never chosen, so ties are unlikely."""
    torch.manual_seed(5)
    model = _model("gru", "dot", vocab=6)
    with torch.no_grad():
        model.decoder.output.weight.mul_(8.0)
    return model


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_finds_the_exhaustive_optimum(length_penalty: float) -> None:
    model, max_len = _biased_eos_model(), 3
    source, length = torch.tensor([4, 5, 6]), 3
    candidates = []  # every output of < max_len tokens ending in <eos>, and every max_len prefix
    for n in range(max_len + 1):
        for output in itertools.product(range(6), repeat=n):
            if EOS_ID in output:
                continue
            complete = n < max_len
            score = _log_prob(model, source, length, list(output), complete)
            candidates.append((score / (n + complete) ** length_penalty, list(output)))
    best = max(candidates)
    found = decode(
        model, Beam(300, length_penalty), source[None], torch.tensor([length]), **IDS, max_len=max_len
    )[0]
    assert found.tokens == best[1]


def test_beam_search_handles_a_batch_like_single_sentences() -> None:
    model = _model("gru", "scaled_dot")
    batch = collate(PAIRS)
    together = decode(model, Beam(4), batch.source, batch.source_lengths, **IDS, max_len=6)
    for i, hyp in enumerate(together):
        length = int(batch.source_lengths[i])
        source, lengths = batch.source[i : i + 1, :length], batch.source_lengths[i : i + 1]
        alone = decode(model, Beam(4), source, lengths, **IDS, max_len=6)[0]
        assert alone.tokens == hyp.tokens
        assert alone.log_prob == pytest.approx(hyp.log_prob, abs=1e-5)


def test_bad_arguments_raise_package_errors() -> None:
    model = _model()
    batch = collate(PAIRS)
    with pytest.raises(InvalidInputError):
        Beam(0)
    with pytest.raises(InvalidInputError):
        Beam(3, length_penalty=-1)
    with pytest.raises(InvalidInputError):
        decode(model, Greedy(), batch.source, batch.source_lengths, **IDS, max_len=0)
    with pytest.raises(ShapeError):
        model.encode_memory(batch.source[0], batch.source_lengths)
    with pytest.raises(InvalidInputError):
        model.encode_memory(batch.source, torch.tensor([4, 0, 1]))
    with pytest.raises(InvalidInputError):
        ModelConfig(hidden_size=15)
    with pytest.raises(InvalidInputError):
        ModelConfig(attention="luong")
    with pytest.raises(InvalidInputError):
        collate([([], [4])])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_an_empty_batch_gives_empty_outputs_as_the_transformer_does(cell: str) -> None:
    """``check_sources`` admits B = 0; packing refused it with torch's "Cannot pack empty tensors"."""
    model = Seq2Seq(11, 11, ModelConfig(hidden_size=16, embed_dim=8, cell=cell, num_layers=2)).eval()
    source, lengths = torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    assert model(source, lengths, torch.zeros(0, 4, dtype=torch.long)).shape == (0, 4, 11)
    for strategy in (Greedy(), Beam(3)):
        found = decode(model, strategy, source, lengths, bos_id=BOS_ID, eos_id=EOS_ID, max_len=4)
        assert found == []
