"""Decoder steps, teacher forcing, the doubly stochastic regulariser, hard attention and search."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import time
from types import SimpleNamespace

import pytest
import torch

from nlp182.captioning import captioner as captioner_module
from nlp182.captioning.captioner import Captioner
from nlp182.captioning.config import CaptionConfig
from nlp182.captioning.data import CaptionBatch
from nlp182.captioning.loss import CaptionLoss, curriculum_mask, doubly_stochastic_penalty
from nlp182.captioning.model import CaptionModel, CaptionModelConfig, sincos_positions
from nlp182.captioning.pretrain import bag_of_words, bag_of_words_loss, pretrain_encoder
from nlp182.captioning.train import parameter_groups, run_progress
from nlp182.captioning.vocab import BOS_ID, EOS_ID, PAD_ID, CaptionVocab
from nlp182.decoding import Beam, Greedy, decode, make_search
from nlp182.errors import FileFormatError, InvalidInputError, ShapeError

VOCAB = 7


def _model(attention: str = "additive", vocab: int = VOCAB, **kwargs) -> CaptionModel:
    torch.manual_seed(0)
    options = {
        "encoder": "small_cnn",
        "encoder_width": 0.25,
        "grid": 3,
        "feature_dim": 16,
        "embed_dim": 8,
        "hidden_size": 16,
        "dropout": 0.0,
    }
    return CaptionModel(vocab, CaptionModelConfig(attention=attention, **{**options, **kwargs})).eval()


def _images(batch: int = 2, size: int = 16) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(batch, 3, size, size)


@pytest.mark.parametrize("attention", ["additive", "dot", "general", "scaled_dot", "multihead", "hard"])
def test_step_shapes_and_teacher_forcing_match_stepwise_decoding(attention: str) -> None:
    model = _model(attention)
    memory = model.encode_memory(_images())
    assert memory.keys.shape == (2, 9, 16) and memory.mask is None
    assert memory.state[0].shape == memory.state[1].shape == (2, 16)
    captions = torch.tensor([[BOS_ID, 4, 5, 6], [BOS_ID, 5, PAD_ID, PAD_ID]])
    forced = model(_images(), captions)
    assert forced.logits.shape == (2, 4, VOCAB) and forced.weights.shape == (2, 4, 9)
    torch.testing.assert_close(forced.weights.sum(-1), torch.ones(2, 4))
    state = memory.state
    for t in range(4):
        logits, state, weights = model.step(captions[:, t], state, memory, need_weights=True)
        assert logits.shape == (2, VOCAB) and weights.shape == (2, 9)
        torch.testing.assert_close(logits, forced.logits[:, t])
        torch.testing.assert_close(weights, forced.weights[:, t])
    if attention == "hard":  # evaluation takes the argmax location: one-hot rows
        assert set(forced.weights.unique().tolist()) <= {0.0, 1.0}


def test_gate_scales_the_context_and_the_state_starts_from_the_mean_feature() -> None:
    model = _model()
    features = model.encoder(_images())
    h0, c0 = model.decoder.initial_state(features)
    torch.testing.assert_close(h0, torch.tanh(model.decoder.init_h(features.mean(1))))
    torch.testing.assert_close(c0, torch.tanh(model.decoder.init_c(features.mean(1))))
    out = model.decoder.advance(torch.tensor([BOS_ID, BOS_ID]), (h0, c0), features)
    torch.testing.assert_close(out.beta, torch.sigmoid(model.decoder.gate(h0)))
    with torch.no_grad():  # a closed gate lets nothing of the image through: any features, one output
        model.decoder.gate.weight.zero_()
        model.decoder.gate.bias.fill_(-50.0)
    bos = torch.tensor([BOS_ID, BOS_ID])
    closed = [model.decoder.advance(bos, (h0, c0), f).logits for f in (features, torch.randn_like(features))]
    torch.testing.assert_close(closed[0], closed[1])


def test_regulariser_equals_its_formula() -> None:
    torch.manual_seed(2)
    weights = torch.softmax(torch.randn(3, 5, 4), dim=-1)
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    expected = []
    for b in range(3):
        total = 0.0
        for i in range(4):
            coverage = sum(float(weights[b, t, i]) for t in range(5) if real[b, t])
            total += (1.0 - coverage) ** 2
        expected.append(total)
    torch.testing.assert_close(doubly_stochastic_penalty(weights, real), torch.tensor(expected))


def test_loss_is_cross_entropy_plus_lambda_times_the_mean_penalty() -> None:
    model = _model()
    captions = torch.tensor([[BOS_ID, 4, 5, EOS_ID], [BOS_ID, 6, EOS_ID, PAD_ID]])
    batch = CaptionBatch(_images(), captions)
    loss, parts = CaptionLoss(regularizer=0.5)(model, batch)
    out = model(batch.images, captions[:, :-1])
    targets = captions[:, 1:]
    ce = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID)
    penalty = doubly_stochastic_penalty(out.weights, targets != PAD_ID).mean()
    torch.testing.assert_close(loss, ce + 0.5 * penalty)
    assert parts["doubly_stochastic"] == pytest.approx(float(penalty.detach()))
    real = targets != PAD_ID
    assert parts["gate"] == pytest.approx(float(out.beta.detach()[real].mean()))
    assert parts["attention_peak"] == pytest.approx(float(out.weights.detach().amax(-1)[real].mean()))
    assert out.beta.shape == targets.shape


def test_hard_attention_trains_its_scorer_through_reinforce() -> None:
    model = _model("hard").train()
    captions = torch.tensor([[BOS_ID, 4, 5, EOS_ID], [BOS_ID, 6, EOS_ID, PAD_ID]])
    loss, parts = CaptionLoss()(model, CaptionBatch(_images(), captions))
    assert "reinforce" in parts and "doubly_stochastic" not in parts
    loss.backward()
    scorer = model.decoder.attention.scorer
    assert scorer.energy.weight.grad is not None and scorer.energy.weight.grad.abs().sum() > 0


@torch.no_grad()
def _log_prob(model: CaptionModel, features: torch.Tensor, output: list[int], complete: bool) -> float:
    """Teacher-forced log-probability of ``output`` (+ ``<eos>``) given one image's features ``(1, L, D)``."""
    target = output + ([EOS_ID] if complete else [])
    captions_in = torch.tensor([[BOS_ID, *target[:-1]]]) if target else torch.tensor([[BOS_ID]])
    log_probs = torch.log_softmax(model.decoder(features, captions_in).logits[0], dim=-1)
    return float(sum(log_probs[t, token] for t, token in enumerate(target)))


def test_beam_search_returns_the_exhaustive_best_caption() -> None:
    model, max_len = _model(vocab=6), 3
    with torch.no_grad():
        model.decoder.out.weight.mul_(6.0)
    memory = model.encode_memory(_images())
    found = decode(model, Beam(200), _images(), bos_id=BOS_ID, eos_id=EOS_ID, max_len=max_len)
    words = [t for t in range(6) if t != EOS_ID]
    for row, hyp in enumerate(found):
        features = memory.keys[row : row + 1]
        candidates = [
            (_log_prob(model, features, list(out), n < max_len) / (n + (n < max_len)), list(out))
            for n in range(max_len + 1)
            for out in itertools.product(words, repeat=n)
        ]
        assert hyp.tokens == max(candidates)[1]


def test_beam_width_one_is_greedy_by_raw_log_probability_and_never_worse_normalised() -> None:
    """Without a length penalty a beam of one is greedy search. With one, it runs on past
    greedy's <eos> while a longer caption may score better normalised, and returns that one."""
    model = _model("general")
    ids = {"bos_id": BOS_ID, "eos_id": EOS_ID, "max_len": 6}
    greedy = decode(model, Greedy(), _images(3), **ids)
    beam = decode(model, Beam(1, length_penalty=0.0), _images(3), **ids)
    for g, b in zip(greedy, beam, strict=True):
        assert g.tokens == b.tokens
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-5)
        torch.testing.assert_close(g.weights, b.weights)
    for g, b in zip(greedy, decode(model, Beam(1, length_penalty=1.0), _images(3), **ids), strict=True):
        assert b.log_prob / b.scored_length >= g.log_prob / g.scored_length - 1e-6


def test_bad_configs_and_inputs_raise_package_errors() -> None:
    with pytest.raises(InvalidInputError):
        CaptionModelConfig(attention="dot", hidden_size=32, feature_dim=16)
    with pytest.raises(InvalidInputError):
        CaptionModelConfig(encoder="alexnet")
    with pytest.raises(ShapeError):
        _model().encoder(torch.rand(2, 1, 16, 16))
    with pytest.raises(InvalidInputError, match="divide 0-255 pixels by 255"):  # read 255 times too bright
        _model().encoder((torch.rand(2, 3, 16, 16) * 255).to(torch.uint8))


def test_an_image_size_the_encoder_cannot_use_is_refused_and_one_too_small_for_the_grid_warned(
    tmp_path, caplog
) -> None:
    """``--image-size 1`` passed validation and then crashed inside the CNN's pooling; vgg16 at the
    default 48 pixels made one feature cell, copied to all 144 attention locations, without a word."""
    import dataclasses
    import logging

    from nlp182.captioning.model import check_image_size, feature_map_side
    from nlp182.captioning.train import train_captioner

    model = CaptionModelConfig()
    assert feature_map_side(model, 48) == 24 and feature_map_side(model, 1) is None
    config = CaptionConfig(data=str(tmp_path / "not-read.tsv"), image_size=1)
    with pytest.raises(InvalidInputError, match=r"--image-size 1 is too small for the small_cnn .*size 32"):
        train_captioner(config, tmp_path / "run")  # refused before the data is looked for
    assert not (tmp_path / "run").exists()
    with caplog.at_level(logging.WARNING, logger="nlp182.captioning.model"):
        check_image_size(model, 48)
        assert not caplog.text
        check_image_size(dataclasses.replace(model, encoder="vgg16"), 48)
    assert "1x1 feature map of 48-pixel images, under the 12x12 --grid" in caplog.text
    assert "use --image-size 384" in caplog.text


def test_frozen_encoder_has_no_trainable_backbone() -> None:
    model = _model(freeze_encoder="all")
    assert not any(p.requires_grad for p in model.encoder.backbone.parameters())
    assert all(p.requires_grad for p in model.encoder.project.parameters())


def test_curriculum_scores_a_growing_window_of_words_and_eos_only_inside_it() -> None:
    model = _model().train()
    captions = torch.tensor([[BOS_ID, 4, 5, 6, EOS_ID], [BOS_ID, 6, EOS_ID, PAD_ID, PAD_ID]])
    batch = CaptionBatch(_images(), captions)
    targets = captions[:, 1:]
    loss_fn = CaptionLoss(regularizer=0.0, curriculum_steps=2)
    windows = []
    for _ in range(6):
        windows.append(loss_fn.window())
        loss, _ = loss_fn(model, batch)
        with torch.no_grad():
            out = model(batch.images, captions[:, :-1])
        # By hand: window w scores target positions t < w that are not padding.
        scored = [(b, t) for b in range(2) for t in range(4) if t < windows[-1] and targets[b, t] != PAD_ID]
        nll = torch.nn.functional.cross_entropy(
            out.logits.transpose(1, 2), targets, reduction="none", ignore_index=PAD_ID
        )
        expected = sum(float(nll[b, t]) for b, t in scored) / len(scored)
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert windows == [1, 1, 2, 2, 3, 3]
    # Window 2 scores the short caption's <eos> (position 1) but not the long one's third word.
    mask = curriculum_mask(targets != PAD_ID, 2)
    assert mask.tolist() == [[True, True, False, False], [True, True, False, False]]
    assert curriculum_mask(targets != PAD_ID, None).tolist() == (targets != PAD_ID).tolist()
    # Evaluation (no grad) scores every word and does not advance the curriculum.
    with torch.no_grad():
        loss_fn(model.eval(), batch)
    assert loss_fn.window() == 4 and CaptionLoss().window() is None


def test_bag_of_words_targets_and_loss_equal_a_hand_computation() -> None:
    vocab = 8  # 4 specials + words 4..7
    captions = torch.tensor([[BOS_ID, 5, 5, 7, EOS_ID], [BOS_ID, 4, EOS_ID, PAD_ID, PAD_ID]])
    targets = bag_of_words(captions, vocab)
    assert targets.tolist() == [[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]]
    torch.manual_seed(3)
    annotations = torch.randn(2, 5, 6)
    head = torch.nn.Linear(6, vocab - 4)
    weight, bias = head.weight.detach(), head.bias.detach()
    loss, logits = bag_of_words_loss(annotations, head, captions)
    total = 0.0
    for b in range(2):
        pooled = [max(float(annotations[b, i, d]) for i in range(5)) for d in range(6)]
        for j in range(vocab - 4):
            z = sum(float(weight[j, d]) * pooled[d] for d in range(6)) + float(bias[j])
            p = 1.0 / (1.0 + math.exp(-z))
            y = float(targets[b, j])
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
            assert float(logits[b, j].detach()) == pytest.approx(z, rel=1e-5, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(total / (2 * (vocab - 4)), rel=1e-5)


def test_pretraining_moves_only_the_encoder_and_lowers_its_loss() -> None:
    model = _model().train()
    captions = torch.tensor([[BOS_ID, 4, 5, EOS_ID], [BOS_ID, 6, EOS_ID, PAD_ID]])
    batch = CaptionBatch(_images(), captions)
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    history = pretrain_encoder(model, [batch], VOCAB, steps=50, lr=1e-2)
    assert [r["step"] for r in history] == [50]
    for key, value in model.decoder.state_dict().items():
        torch.testing.assert_close(value, decoder_before[key])
    assert history[-1]["loss"] < 0.5
    spent = pretrain_encoder(model, [batch], VOCAB, steps=50, lr=1e-2, time_limit_s=0)
    assert [r["step"] for r in spent] == [1]  # a time limit already spent: one step, recorded


def test_pretraining_takes_its_share_of_a_time_budget_or_all_of_it_when_its_steps_are_given() -> None:
    from nlp182.captioning.config import CaptionConfig
    from nlp182.captioning.defaults import pretrain_time_limit

    budget = CaptionConfig(time_budget_s=200.0)
    assert pretrain_time_limit(budget, {"pretrain_steps": "3.2 image passes"}) == 50.0
    assert pretrain_time_limit(budget, {}) == 200.0
    assert pretrain_time_limit(CaptionConfig(), {"pretrain_steps": "chosen"}) is None


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0])
def test_encoder_learning_rate_scale_groups_every_trainable_parameter_once(scale: float) -> None:
    model = _model().train()
    groups = parameter_groups(model, 1e-3, scale)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    encoder = {id(p) for p in model.encoder.parameters()}
    if scale == 0:  # frozen: no encoder parameter is trained, the backbone stops taking gradients
        assert set(seen) == {id(p) for p in model.decoder.parameters()}
        assert not any(p.requires_grad for p in model.encoder.backbone.parameters())
    else:
        assert set(seen) == {id(p) for p in model.parameters()}
        for group in groups:
            lr = group.get("lr", 1e-3)
            ids = {id(p) for p in group["params"]}
            assert lr == pytest.approx(1e-3 * scale) if ids <= encoder and scale != 1 else lr == 1e-3


def test_run_progress_is_seconds_over_the_budget_or_steps_over_the_epochs() -> None:
    def trainer(budget: float | None, seconds: float) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(time_budget_s=budget), train_time_s=seconds)

    assert run_progress(None, 5, 10) == 0.0
    assert run_progress(trainer(200.0, 50.0), 999, 10) == 0.25
    assert run_progress(trainer(None, 50.0), 30, 40) == 0.75


def test_sincos_positions_code_row_and_column_by_hand() -> None:
    s1, c1 = math.sin(1.0), math.cos(1.0)
    expected = [[0, 1, 0, 1], [0, 1, s1, c1], [s1, c1, 0, 1], [s1, c1, s1, c1]]  # cells (y, x) row by row
    torch.testing.assert_close(sincos_positions(2, 4), torch.tensor(expected, dtype=torch.float32))
    # dim 9: K = 2 frequencies, 1 and 1 / 100^(1/2) = 0.1, and one column left at 0; cell (y=1, x=2)
    want = [math.sin(1), math.sin(0.1), math.cos(1), math.cos(0.1)]
    want += [math.sin(2), math.sin(0.2), math.cos(2), math.cos(0.2), 0.0]
    torch.testing.assert_close(sincos_positions(3, 9)[5], torch.tensor(want, dtype=torch.float32))
    encoder = _model(position_init="sincos").encoder
    torch.testing.assert_close(encoder.positions.detach(), sincos_positions(3, 16))


@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
def test_configs_naming_smallcnn_build_the_network_they_were_saved_with(width: float) -> None:
    """Runs saved as ``"smallcnn"`` had ``round(32 x width)`` first-stage channels."""
    config = CaptionModelConfig(encoder="smallcnn", encoder_width=width)
    assert (config.encoder, config.encoder_width) == ("small_cnn", 2 * width)
    backbone = CaptionModel(VOCAB, config).encoder.backbone
    assert backbone.num_features == 2 * max(1, round(32 * width))


def test_a_run_saved_under_the_old_encoder_name_loads_and_captions_alike(tmp_path) -> None:
    config = CaptionConfig(image_size=16, model=_model().config)
    vocab = CaptionVocab.build(["one two three four five six seven"])
    torch.manual_seed(0)
    captioner = Captioner(CaptionModel(len(vocab), config.model).eval(), vocab, config)
    captioner.save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["model"].update(encoder="smallcnn", encoder_width=config.model.encoder_width / 2)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = Captioner.load(tmp_path, device="cpu")
    assert loaded.config.model == config.model
    images = _images(3)
    expected = captioner.caption(images, beam_width=2, max_len=5)
    assert [c.words for c in loaded.caption(images, beam_width=2, max_len=5)] == [c.words for c in expected]


def test_a_loaded_run_searches_its_beams_with_its_saved_length_penalty(tmp_path, monkeypatch) -> None:
    """``Captioner.load`` keeps the run's ``length_penalty``: a run trained with 0.0 searched its
    beams with the default 1.0 would rank captions of other lengths first."""
    config = dataclasses.replace(CaptionConfig(image_size=16, model=_model().config), length_penalty=0.0)
    vocab = CaptionVocab.build(["one two three four five six seven"])
    Captioner(CaptionModel(len(vocab), config.model).eval(), vocab, config).save(tmp_path)
    searches = []

    def recording(beam_width: int = 1, length_penalty: float = 1.0) -> object:
        searches.append((beam_width, length_penalty))
        return make_search(beam_width, length_penalty)

    monkeypatch.setattr(captioner_module, "make_search", recording)
    Captioner.load(tmp_path, device="cpu").caption(_images(2), beam_width=4, max_len=3)
    assert searches == [(4, 0.0)]


def test_a_config_whose_sizes_the_weights_lack_is_refused_before_the_model_is_built(
    tmp_path, monkeypatch
) -> None:
    """config.json decides the model's size: a hand-edited hidden size of 16000 built a model of
    gigabytes before the weights' shapes were compared. The model is built on the meta device and
    compared with the file's header; a real one is built only when they agree."""
    config = CaptionConfig(image_size=16, model=_model().config)
    vocab = CaptionVocab.build(["one two three four five six seven"])
    Captioner(CaptionModel(len(vocab), config.model).eval(), vocab, config).save(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["model"].update(hidden_size=16000, embed_dim=16000)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    built = []

    class Guarded(CaptionModel):
        def __init__(self, vocab_size: int, model: CaptionModelConfig) -> None:
            built.append(torch.get_default_device().type)
            if built[-1] != "meta":  # a real one would hold gigabytes
                raise AssertionError(f"a model of hidden size {model.hidden_size} was allocated")
            super().__init__(vocab_size, model)

    monkeypatch.setattr(captioner_module, "CaptionModel", Guarded)
    start = time.perf_counter()
    weights = re.escape(str(tmp_path / "model.safetensors"))
    wrong = rf"^{weights}: tensor \S+ has shape \(.*16000.*\) by the run's config but \(.*\) in the file"
    with pytest.raises(FileFormatError, match=wrong):
        Captioner.load(tmp_path, device="cpu")
    assert time.perf_counter() - start < 2 and built == ["meta"]


@pytest.mark.parametrize("beam_width", [1, 3])
def test_caption_max_len_bounds_the_words_in_place_of_the_runs(
    beam_width: int, endless_red: Captioner
) -> None:
    """``caption(max_len=N)`` stops each caption at N words, not at the run's ``max_len``: a model
    biased to say "red" forever ends only there, and its captions are marked not complete."""
    assert [c.words for c in endless_red.caption(_images(2), beam_width)] == [["red"] * 6] * 2
    short = endless_red.caption(_images(2), beam_width, max_len=2)
    assert [(c.words, c.complete) for c in short] == [(["red", "red"], False)] * 2


def test_caption_takes_the_models_dtype_and_refuses_integer_pixels_and_other_shapes() -> None:
    """A double model failed on the float images load_images gives; 0-255 integer pixels (as
    torchvision reads them) were captioned as they were, into noise."""
    config = CaptionConfig(image_size=16, model=_model().config)
    vocab = CaptionVocab.build(["one two three four five six seven"])
    torch.manual_seed(0)
    captioner = Captioner(CaptionModel(len(vocab), config.model).eval(), vocab, config)
    images = _images(2)
    expected = [c.words for c in captioner.caption(images, beam_width=1, max_len=5)]
    captioner.model.double()
    assert [c.words for c in captioner.caption(images, beam_width=1, max_len=5)] == expected
    with pytest.raises(InvalidInputError, match=r"images are floats in \[0, 1\], got torch.uint8"):
        captioner.caption((images * 255).to(torch.uint8))
    with pytest.raises(ShapeError, match=r"images must have shape \(B, 3, H, W\); got \(3, 16, 16\)"):
        captioner.caption(images[0])
    with pytest.raises(InvalidInputError, match=r"images are a torch.Tensor .* got ndarray"):
        captioner.caption(images.numpy())
    with pytest.raises(InvalidInputError, match="wrap a single one in a list"):  # read letter by letter
        captioner.load_images("photo.png")
