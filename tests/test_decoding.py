"""The shared search strategies (nlp182.decoding) on a tiny model that is neither translator nor captioner."""

from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from nlp182.decoding import Beam, EncodedMemory, Greedy, Hypothesis, decode, make_search
from nlp182.errors import InvalidInputError, NonFiniteError

BOS, EOS, VOCAB = 0, 1, 5


class TinyStep(nn.Module):
    """A GRU-cell decoder attending (dot product) over ``keys`` ``(B, S, D)``; state ``(B, D)``.

    Its "encoder" passes the keys and mask through and starts from ``tanh(mean(keys))``.
    """

    def __init__(self, dim: int = 6, seed: int = 3, eos_bias: float = 0.0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(VOCAB, dim)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.out = nn.Linear(dim, VOCAB)
        with torch.no_grad():
            self.out.weight.mul_(6.0)
            self.out.bias[EOS] += eos_bias

    def encode_memory(self, keys, mask):
        return EncodedMemory(keys, mask, torch.tanh(keys.mean(dim=1)))

    def step(self, token, state, memory, need_weights):
        scores = torch.einsum("bsd,bd->bs", memory.keys, state)
        if memory.mask is not None:
            scores = scores.masked_fill(~memory.mask[:, 0], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.einsum("bs,bsd->bd", weights, memory.keys)
        state = self.cell(torch.cat([self.embed(token), context], dim=-1), state)
        return self.out(state), state, weights if need_weights else None

    def reorder_state(self, state, index):
        return state[index]


class TableStep(nn.Module):
    """A decoder whose next-token log-probabilities depend only on the previous token: row ``t`` of
    ``table`` ``(V, V)`` (probabilities; unlisted tokens get 1e-9). Its state is unused ``(B, 1)``."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int = 6) -> None:
        super().__init__()
        probs = torch.full((vocab, vocab), 1e-9)
        for previous, row in table.items():
            for token, p in row.items():
                probs[previous, token] = p
        self.register_buffer("log_probs", probs.log())

    def encode_memory(self, keys, mask):
        return EncodedMemory(keys, mask, torch.zeros(keys.shape[0], 1))

    def step(self, token, state, memory, need_weights):
        weights = torch.full((token.shape[0], memory.keys.shape[1]), 1.0 / memory.keys.shape[1])
        return self.log_probs[token], state, weights if need_weights else None

    def reorder_state(self, state, index):
        return state[index]


def _table_search(table: dict[int, dict[int, float]]) -> list[Hypothesis]:
    """Width-2 beam search (length penalty 1) of ``TableStep(table)`` over one input, at most 4 tokens."""
    keys, mask = torch.zeros(1, 2, 4), torch.ones(1, 1, 2, dtype=torch.bool)
    return decode(TableStep(table), Beam(2, 1.0), keys, mask, bos_id=BOS, eos_id=EOS, max_len=4)


def _inputs(batch: int = 3, positions: int = 4, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys ``(B, S, D)`` and a mask ``(B, 1, S)`` that hides the last position of row 0."""
    torch.manual_seed(11)
    keys = torch.randn(batch, positions, dim)
    mask = torch.ones(batch, 1, positions, dtype=torch.bool)
    mask[0, 0, 3:] = False
    return keys, mask


@torch.no_grad()
def _score(decoder: TinyStep, row: int, output: list[int], complete: bool) -> float:
    keys, mask = _inputs()
    memory = decoder.encode_memory(keys.to(decoder.out.weight.dtype), mask)
    one = memory.select(torch.tensor([row]))
    state, token, total = memory.state[row : row + 1], torch.tensor([BOS]), 0.0
    for tok in output + ([EOS] if complete else []):
        logits, state, _ = decoder.step(token, state, one, False)
        total += float(torch.log_softmax(logits, -1)[0, tok])
        token = torch.tensor([tok])
    return total


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_is_the_exhaustive_best(length_penalty: float) -> None:
    decoder, max_len = TinyStep().eval(), 3
    found = decode(decoder, Beam(200, length_penalty), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=max_len)
    for row, hyp in enumerate(found):
        candidates = []
        for n in range(max_len + 1):
            for output in itertools.product([t for t in range(VOCAB) if t not in (BOS, EOS)], repeat=n):
                complete = n < max_len
                score = _score(decoder, row, list(output), complete)
                candidates.append((score / (n + complete) ** length_penalty, list(output)))
        assert hyp.tokens == max(candidates)[1]
        assert hyp.log_prob == pytest.approx(_score(decoder, row, hyp.tokens, hyp.complete), abs=1e-4)


def test_a_large_length_penalty_ranks_without_overflowing() -> None:
    """``length ** 400`` overflowed a float: translate raised OverflowError, and train seq2seq did
    so after all its epochs, decoding the test set. The configs bound it (10) as well."""
    from nlp182.captioning.config import CaptionConfig
    from nlp182.errors import InvalidInputError
    from nlp182.seq2seq.config import Seq2SeqConfig

    found = decode(TinyStep(seed=2).eval(), Beam(3, 400.0), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=8)
    assert all(math.isfinite(hyp.log_prob) for hyp in found)
    for config in (Seq2SeqConfig, CaptionConfig):
        with pytest.raises(InvalidInputError, match="length_penalty"):
            config(length_penalty=400.0)


def test_width_one_is_greedy() -> None:
    decoder = TinyStep(seed=4).eval()
    greedy = decode(decoder, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=6)
    beam = decode(decoder, Beam(1), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=6)
    for g, b in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens and g.complete == b.complete
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-5)
        torch.testing.assert_close(g.weights, b.weights)
        assert g.weights.shape == (len(g.tokens) + g.complete, 4)
    assert float(greedy[0].weights[:, 3:].abs().sum()) == 0.0  # masked positions get no weight


def test_width_one_breaks_ties_as_greedy_does() -> None:
    decoder = TinyStep(seed=4).eval()
    with torch.no_grad():  # an untrained output layer: every token ties at every step
        decoder.out.weight.zero_()
        decoder.out.bias.zero_()
    greedy = decode(decoder, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=5)
    beam = decode(decoder, Beam(1), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=5)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]
    assert [h.complete for h in greedy] == [h.complete for h in beam]


def test_no_end_by_max_len_returns_the_best_live_hypothesis() -> None:
    decoder, max_len = TinyStep(eos_bias=-1e4).eval(), 3
    greedy = decode(decoder, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=max_len)
    beam = decode(decoder, Beam(100), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=max_len)
    for row, (g, b) in enumerate(zip(greedy, beam, strict=True)):
        assert not g.complete and not b.complete
        assert len(g.tokens) == len(b.tokens) == max_len
        prefixes = itertools.product([t for t in range(VOCAB) if t not in (BOS, EOS)], repeat=max_len)
        best = max(_score(decoder, row, list(p), False) for p in prefixes)
        assert b.log_prob == pytest.approx(best, abs=1e-4)
        assert b.weights.shape == (max_len, 4)


def test_an_eos_in_the_top_k_leaves_k_live_hypotheses() -> None:
    """Each step ranks 2k extensions, so an ``<eos>`` among the best k finishes a hypothesis and k
    others stay live (fairseq's rule): here [3 5], third at step 2, goes on to the best answer."""
    # step 2 ranks [2 <eos>] .30 (finished), [2 4] .20, [3 5] .18; step 3 finishes [3 5 <eos>] .18,
    # whose log-prob per token, log(.18) / 3 = -0.572, beats [2 <eos>]'s log(.30) / 2 = -0.602
    table = {BOS: {2: 0.5, 3: 0.3, EOS: 0.2}, 2: {EOS: 0.6, 4: 0.4}, 3: {5: 0.6, EOS: 0.4},
             4: {EOS: 0.3, 2: 0.7}, 5: {EOS: 1.0}}
    (hyp,) = _table_search(table)
    assert hyp.tokens == [3, 5] and hyp.complete
    assert hyp.log_prob == pytest.approx(float(np.log(0.3 * 0.6)), rel=1e-5)


def test_an_eos_ranked_past_the_beam_width_finishes_no_hypothesis() -> None:
    """Only an ``<eos>`` among a step's best k extensions finishes a hypothesis: one ranked below
    them is dropped, as fairseq drops it, and takes no place among the k finished ones."""
    # step 2 ranks [2 <eos>] .30, [2 4] .20, [3 <eos>] .18 (third: dropped), [3 4] .12; step 3
    # finishes [2 4 <eos>] .198, log(.198) / 3 = -0.540, which beats [2 <eos>]'s -0.602
    table = {BOS: {2: 0.5, 3: 0.3, EOS: 0.2}, 2: {EOS: 0.6, 4: 0.4}, 3: {EOS: 0.6, 4: 0.4},
             4: {EOS: 0.99, 2: 0.01}}
    (hyp,) = _table_search(table)
    assert hyp.tokens == [2, 4] and hyp.complete
    assert hyp.log_prob == pytest.approx(float(np.log(0.5 * 0.4 * 0.99)), rel=1e-5)


def test_bad_widths_raise() -> None:
    with pytest.raises(InvalidInputError):
        make_search(0)
    with pytest.raises(InvalidInputError, match="beam_width must be at most 1000, got 1000000"):
        make_search(1_000_000)  # 17 GB and 6 minutes for an 8-letter input
    assert make_search(1000).width == 1000
    for penalty in (-0.5, float("nan"), float("inf")):  # NaN ranked hypotheses in the order they came
        for width in (1, 3):  # greedy search does not use it, but it is a mistake all the same
            with pytest.raises(InvalidInputError, match="length_penalty must be a finite number >= 0"):
                make_search(width, length_penalty=penalty)
    for max_len in (2.5, True, 0):  # 2.5 fell with a bare TypeError
        with pytest.raises(InvalidInputError, match="max_len must be a whole number >= 1"):
            decode(TinyStep(), Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=max_len)
    with pytest.raises(InvalidInputError):
        decode(TinyStep(), Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=0)
    for width in (2.5, True, "3"):  # 2.5 failed deep in repeat_interleave; True was taken as 1
        with pytest.raises(InvalidInputError, match="whole number"):
            make_search(width)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="whole number"):
            Beam(width)  # type: ignore[arg-type]
    assert make_search(np.int64(3)) == Beam(3)


def test_make_search_is_greedy_at_width_one_and_beam_above() -> None:
    assert make_search(1, length_penalty=0.3) == Greedy()
    assert make_search(4, length_penalty=0.3) == Beam(4, 0.3)


def test_decode_runs_in_eval_mode_and_restores_the_training_mode() -> None:
    class Recording(TinyStep):
        def encode_memory(self, keys, mask):
            self.seen_training = self.training
            return super().encode_memory(keys, mask)

    model = Recording().train()
    decode(model, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=4)
    assert model.training and not model.seen_training
    model.eval()
    decode(model, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=4)
    assert not model.training


def test_overlapping_decodes_keep_eval_mode_until_the_last_one_ends() -> None:
    """Thread A starts decoding a model in training mode, B starts, A ends, then B steps."""
    a_started, a_ended = threading.Event(), threading.Event()

    class Overlapping(TinyStep):
        def step(self, token, state, memory, need_weights):
            if threading.current_thread().name == "B":
                a_ended.wait(timeout=10)
                self.b_saw_training = self.b_saw_training or self.training
            return super().step(token, state, memory, need_weights)

    model = Overlapping().train()
    model.b_saw_training = False

    def run_b() -> None:
        a_started.wait(timeout=10)
        decode(model, Greedy(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=3)

    b = threading.Thread(target=run_b, name="B")
    b.start()

    class StartSignal(Greedy):
        def search(self, *args, **kwargs):
            a_started.set()
            time.sleep(0.2)  # B enters decode while A holds the model
            return super().search(*args, **kwargs)

    decode(model, StartSignal(), *_inputs(), bos_id=BOS, eos_id=EOS, max_len=3)
    a_ended.set()
    b.join(timeout=10)
    assert not model.b_saw_training  # B's search ran in eval mode to its end
    assert model.training  # and the caller's training mode came back


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3)])
def test_bos_and_padding_are_never_emitted(strategy) -> None:
    """A weak model that ranks ``<bos>`` and ``<pad>`` first still emits words (as fairseq bans padding)."""
    pad = 2
    decoder = TinyStep(eos_bias=-1e4).eval()
    with torch.no_grad():
        decoder.out.bias[[BOS, pad]] += 1e3
    for hyp in decode(decoder, strategy, *_inputs(), bos_id=BOS, eos_id=EOS, max_len=5, pad_id=pad):
        assert len(hyp.tokens) == 5 and not {BOS, pad} & set(hyp.tokens)
        assert hyp.weights.shape[0] == len(hyp.tokens)  # one attention row per word
    unbanned = decode(decoder, strategy, *_inputs(), bos_id=BOS, eos_id=EOS, max_len=5)
    assert all(pad in hyp.tokens for hyp in unbanned)  # padding is banned only when named


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3)])
def test_a_float64_model_is_searched_in_float64(strategy) -> None:
    """Scores and attention weights came back rounded to float32 from a float64 model."""
    decoder = TinyStep().double().eval()
    keys, mask = _inputs()
    found = decode(decoder, strategy, keys.double(), mask, bos_id=BOS, eos_id=EOS, max_len=4)
    for row, hyp in enumerate(found):
        assert hyp.weights.dtype == torch.float64
        expected = _score(decoder, row, hyp.tokens, hyp.complete)
        assert hyp.log_prob == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_best_extensions_are_a_stable_sort_s_first_ones_ties_included() -> None:
    """Beam search ranks extensions as a stable sort would (tied scores by column), at topk's cost."""
    from nlp182.decoding import _best

    torch.manual_seed(0)
    rounded = torch.randn(6, 40).mul(2).round()  # many ties, across the cut and within it
    rounded[1] = 0.0  # a row that ties everywhere
    rounded[2, 5:] = float("-inf")  # fewer finite scores than asked for
    broken = rounded.clone()
    broken[3, ::3] = float("nan")  # a broken model's scores, beside rows that tie
    for total in (torch.randn(6, 40), rounded, rounded.double(), broken):
        expected = total.masked_fill(total.isnan(), float("-inf")).sort(dim=1, descending=True, stable=True)
        for m in (1, 4, 10, 40):
            scores, index = _best(total, m)
            assert torch.equal(index, expected.indices[:, :m]) and torch.equal(scores, expected.values[:, :m])


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3)])
def test_a_model_scoring_nan_is_named_not_decoded(strategy) -> None:
    """A NaN weight made beam search return the empty start with log-probability 0 (probability 1)
    and greedy max_len tokens scored NaN; both now name the NaN, as torch's multinomial does."""
    decoder = TinyStep().eval()
    with torch.no_grad():
        decoder.out.bias[3] = float("nan")
    with pytest.raises(NonFiniteError, match=r"log-probabilities are NaN at decoding step 1 \(\d+ of"):
        decode(decoder, strategy, *_inputs(), bos_id=BOS, eos_id=EOS, max_len=5)
    keys, mask = _inputs()
    keys[1] = float("nan")  # one input holding NaN: the others' answers would be kept as if fine
    with pytest.raises(NonFiniteError, match="NaN at decoding step 1"):
        decode(TinyStep().eval(), strategy, keys, mask, bos_id=BOS, eos_id=EOS, max_len=5)


def test_beam_search_runs_on_while_a_live_hypothesis_beats_the_finished_ones() -> None:
    """A likely chain 2 3 4 5 <eos> (0.97 a step), with an unlikely <eos> (0.02) ranking second
    at every step: a beam of 2 stopped with two finished hypotheses ended by those, and returned
    [2] (log-prob -3.94) where greedy finds the chain (-0.13). Number-to-words scored exact match
    0.30 with a beam of 5 against greedy's 0.88 so."""
    chain = {BOS: {2: 0.97, EOS: 0.02}, 2: {3: 0.97, EOS: 0.02}, 3: {4: 0.97, EOS: 0.02},
             4: {5: 0.97, EOS: 0.02}, 5: {EOS: 0.99}}  # fmt: skip
    keys, mask = torch.zeros(1, 2, 4), torch.ones(1, 1, 2, dtype=torch.bool)
    greedy = decode(TableStep(chain), Greedy(), keys, mask, bos_id=BOS, eos_id=EOS, max_len=8)[0]
    assert greedy.tokens == [2, 3, 4, 5]
    for width in (2, 3, 5):
        for penalty in (0.0, 1.0):
            (found,) = decode(TableStep(chain), Beam(width, penalty), keys, mask, bos_id=BOS, eos_id=EOS,
                              max_len=8)  # fmt: skip
            assert found.tokens == [2, 3, 4, 5] and found.log_prob == pytest.approx(greedy.log_prob)
