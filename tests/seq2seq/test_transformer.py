"""The Transformer translator: step-by-step decoding equals the teacher-forced pass, padding is masked,
and it decodes through the shared search like the recurrent model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlp182.decoding import Beam, Greedy, decode
from nlp182.errors import InvalidInputError
from nlp182.seq2seq.batching import collate
from nlp182.seq2seq.model import ModelConfig
from nlp182.seq2seq.tokenize import BOS_ID, EOS_ID
from nlp182.seq2seq.transformer import TransformerSeq2Seq, sinusoids

PAIRS = [([4, 5, 6, 7], [4, 5]), ([8, 9], [6, 7, 8]), ([5], [9])]


def _model() -> TransformerSeq2Seq:
    torch.manual_seed(0)
    config = ModelConfig(architecture="transformer", hidden_size=16, num_layers=2, num_heads=2, ffn_size=32)
    return TransformerSeq2Seq(12, 12, config).eval()


def test_sinusoids_match_the_formula() -> None:
    table = sinusoids(10, 8)
    assert table[3, 2] == pytest.approx(torch.sin(torch.tensor(3 / 10000 ** (2 / 8))).item(), abs=1e-6)
    assert table[3, 3] == pytest.approx(torch.cos(torch.tensor(3 / 10000 ** (2 / 8))).item(), abs=1e-6)


@torch.no_grad()
def test_step_decoding_equals_the_teacher_forced_pass_and_padding_is_masked() -> None:
    model = _model()
    batch = collate(PAIRS)
    logits = model(batch.source, batch.source_lengths, batch.target_in)
    memory = model.encode_memory(batch.source, batch.source_lengths)
    state = memory.state
    for t in range(batch.target_in.shape[1]):
        step_logits, state, weights = model.step(batch.target_in[:, t], state, memory, need_weights=True)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3))
        assert torch.all(weights[2, 1:] == 0)  # the one-token source never attends to padding
    alone = model(batch.source[2:3, :1], batch.source_lengths[2:3], batch.target_in[2:3])
    torch.testing.assert_close(alone[0], logits[2], rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidInputError):
        model(batch.source, batch.source_lengths, batch.target_in, teacher_forcing=0.5)
    with pytest.raises(InvalidInputError, match="between 1 and the padded width"):
        model.encode_memory(batch.source, torch.tensor([3, 0, 1]))  # an empty source attends to nothing


@torch.no_grad()
def test_shared_search_scores_are_the_model_log_probabilities() -> None:
    model = _model()
    batch = collate(PAIRS)
    ids = {"bos_id": BOS_ID, "eos_id": EOS_ID, "max_len": 6}
    greedy = decode(model, Greedy(), batch.source, batch.source_lengths, **ids)
    beam = decode(model, Beam(1), batch.source, batch.source_lengths, **ids)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]
    for row, hyp in enumerate(greedy):
        target = hyp.tokens + ([EOS_ID] if hyp.complete else [])
        target_in = torch.tensor([[BOS_ID, *target[:-1]]])
        n = int(batch.source_lengths[row])
        logits = model(batch.source[row : row + 1, :n], torch.tensor([n]), target_in)[0]
        log_probs = torch.log_softmax(logits, dim=-1)
        expected = sum(float(log_probs[t, tok]) for t, tok in enumerate(target))
        assert hyp.log_prob == pytest.approx(expected, abs=1e-4)


def test_embeddings_start_at_the_scale_the_positions_are_read_at() -> None:
    """Tokens are scaled by sqrt(d) on the way in, so they start N(0, 1/d) (the paper's code, fairseq):
    both terms are then O(1), and the model learns a task only positions solve (reversal) in 150 steps."""
    torch.manual_seed(0)
    vocab, dim = 16, 32
    model = TransformerSeq2Seq(vocab, vocab, ModelConfig(
        architecture="transformer", hidden_size=dim, num_heads=4, num_layers=1, ffn_size=64, dropout=0.0))
    for embedding in (model.source_embedding, model.target_embedding):
        assert embedding.weight[1:].std().item() == pytest.approx(dim**-0.5, rel=0.1)
        assert not embedding.weight[0].any()  # padding
    draw = torch.Generator().manual_seed(1)

    def reversals(count: int) -> list[tuple[list[int], list[int]]]:
        pairs = []
        for _ in range(count):
            length = int(torch.randint(4, 8, (1,), generator=draw))
            tokens = torch.randint(4, vocab, (length,), generator=draw)
            pairs.append((tokens.tolist(), tokens.flip(0).tolist()))
        return pairs

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        batch = collate(reversals(32))
        logits = model(batch.source, batch.source_lengths, batch.target_in)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = collate(reversals(300))
    with torch.no_grad():
        predicted = model.eval()(test.source, test.source_lengths, test.target_in).argmax(-1)
    real = test.target_out != 0
    assert ((predicted == test.target_out) & real).sum() / real.sum() > 0.8  # N(0, 1) start: about 0.4
