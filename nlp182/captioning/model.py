"""Show, Attend and Tell (Xu et al., 2015): a CNN feature grid and an attention LSTM decoder.

Encoder: any :mod:`nlp182.vision` model's ``forward_features`` map ``(B, C, h, w)``, adaptive
max pooled to a ``grid x grid`` map (``L = grid**2`` locations) and projected to ``D``: the
annotation vectors ``a`` ``(B, L, D)``. Max rather than average pooling: on sparse scenes (a few
digits on a black canvas) averaging dilutes an object's features into its cell's background,
and the decoder then learned nothing from the image in our runs. A learned embedding of each location is added
(``positions``): convolution features say *what* is there but hardly *where*, and a caption
read in spatial order ("left to right") needs the attention to tell locations apart.
Decoder, per step ``t``:

- ``h0, c0 = tanh(W_h mean(a)), tanh(W_c mean(a))``;
- soft attention of ``h_{t-1}`` over ``a`` (any :mod:`nlp182.attention` kind by name) gives
  ``alpha_t`` ``(B, L)`` and the context ``z_t``; with ``attention="hard"`` one location is
  sampled (argmax at evaluation) by :class:`~nlp182.attention.HardAttention` over an additive
  scorer and trained by REINFORCE;
- the gating scalar ``beta_t = sigmoid(W_b h_{t-1})`` scales the context: ``z_t <- beta_t z_t``;
- ``h_t, c_t = LSTMCell([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))``;
- deep output: ``logits = L_o dropout(tanh(E y_{t-1} + L_h h_t + L_z z_t))``.

:class:`CaptionModel` is a :class:`~nlp182.decoding.Decodable` (``encode_memory(images)`` and its
own step decoder), so every search strategy the translator uses captions images too;
teacher-forced training runs the same step function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from nlp182.attention import ATTENTION_KINDS, AdditiveAttention, HardAttention, build_attention
from nlp182.captioning.vocab import PAD_ID
from nlp182.decoding import EncodedMemory
from nlp182.errors import InvalidInputError, ShapeError
from nlp182.settings import check_settings, setting
from nlp182.vision import freeze
from nlp182.vision.contract import VisionModel
from nlp182.vision.registry import create_model, list_models

log = logging.getLogger(__name__)

#: Every registered classifier can be the encoder (its ``forward_features`` map is what is used).
ENCODERS = list_models("classification")
#: Builder options that fit a classifier to small images: ResNets swap the ImageNet stem for a
#: 3x3 stride-1 conv, and VGG's unused classifier keeps 16 hidden units instead of 4096.
BACKBONE_OPTIONS = {
    "resnet18": {"small_input": True},
    "resnet34": {"small_input": True},
    "resnet50": {"small_input": True},
    "vgg16": {"hidden": 16},
}
#: The encoder name of runs saved before the registry's: ``small_cnn`` at twice the width
#: (it took ``32 x encoder_width`` channels; ``small_cnn`` takes ``16 x width``).
LEGACY_SMALL_CNN = "smallcnn"
CAPTION_ATTENTION = (*ATTENTION_KINDS, "hard")
#: How the location embeddings start: small random values, or a 2-D sine / cosine code of the cell.
POSITION_INITS = ("random", "sincos")
LSTMState = tuple[torch.Tensor, torch.Tensor]


@dataclass
class CaptionModelConfig:
    """Architecture of :class:`CaptionModel`.

    ``encoder`` names a registered :mod:`nlp182.vision` classifier, built by ``create_model`` at
    ``encoder_width`` (its ``width`` multiplier) with :data:`BACKBONE_OPTIONS`; a config that says
    ``"smallcnn"`` (saved runs) reads as ``small_cnn`` at twice the width, the same network;
    ``freeze_encoder`` freezes its top-level layers up to that name (``"all"``: the whole
    encoder), the transfer recipe for a pretrained backbone. ``grid`` sets ``L = grid**2``.
    ``positions`` adds a learned embedding per location to the annotation vectors, initialised
    (``position_init``) as ``0.02 x`` standard normal noise or as :func:`sincos_positions`. ``dot``,
    ``scaled_dot`` and ``multihead`` attention compare ``h`` with ``a`` directly and need
    ``hidden_size == feature_dim``. The defaults are the measured digits recipe's (a SmallCNN of 16
    first-stage channels over a 12 x 12 grid, sine/cosine locations, so the attention tells left
    from right from the start).
    """

    encoder: str = setting(
        "small_cnn", choices=ENCODERS,
        help="vision model whose feature map is attended over",
    )
    encoder_width: float = setting(
        1.0,
        positive=True, help="width multiplier of the encoder (small_cnn: 16 x this channels)",
    )
    freeze_encoder: str | None = setting(
        None,
        help="freeze the encoder's layers up to this top-level name, or all (unset: train it all)",
    )
    grid: int = setting(
        12, positive=True,
        help="the feature map is max pooled to grid x grid attention locations",
    )
    feature_dim: int = setting(128, positive=True, help="size of each location's annotation vector")
    positions: bool = setting(True, help="add a learned embedding of each location to its annotation vector")
    position_init: str = setting(
        "sincos", choices=POSITION_INITS,
        help="start of the location embeddings: small random values, or a 2-D sine/cosine code",
    )
    embed_dim: int = setting(64, positive=True, help="size of the word embeddings")
    hidden_size: int = setting(256, even=True, positive=True, help="size of the LSTM state")
    attention: str = setting(
        "additive", choices=CAPTION_ATTENTION,
        help="how the decoder scores the locations (hard: one sampled location, REINFORCE)",
    )
    num_heads: int = setting(4, positive=True, help="heads of multi-head attention")
    dropout: float = setting(0.3, minimum=0, below=1, help="dropout probability")

    def __post_init__(self) -> None:
        if self.encoder == LEGACY_SMALL_CNN:
            self.encoder, self.encoder_width = "small_cnn", 2 * self.encoder_width
        check_settings(self)
        if self.attention in ("dot", "scaled_dot", "multihead") and self.hidden_size != self.feature_dim:
            raise InvalidInputError(
                f"{self.attention} attention needs hidden_size == feature_dim; got {self.hidden_size} and "
                f"{self.feature_dim}"
            )
        if self.attention == "multihead" and self.hidden_size % self.num_heads:
            raise InvalidInputError(
                f"num_heads ({self.num_heads}, --num-heads) must divide hidden_size ({self.hidden_size}, "
                "--hidden-size)"
            )


def build_backbone(name: str, width: float) -> VisionModel:
    """The registered classifier ``name`` for 3-channel images at ``width``; captioning uses its
    ``forward_features`` map ``(B, num_features, h, w)``."""
    return create_model(name, in_channels=3, width=width, **BACKBONE_OPTIONS.get(name, {}))


def feature_map_side(config: CaptionModelConfig, image_size: int) -> int | None:
    """Side of the encoder's feature map for ``image_size`` square images, or None when such
    images are too small to pass through it; shapes alone, on the meta device (no weights made)."""
    with torch.device("meta"):
        backbone = build_backbone(config.encoder, config.encoder_width).eval()
        try:
            return int(backbone.forward_features(torch.zeros(1, 3, image_size, image_size)).shape[-1])
        except RuntimeError:  # "Output size is too small" of a pooling or convolution
            return None


#: Largest image size ``check_image_size`` suggests.
MAX_SUGGESTED_IMAGE_SIZE = 1024


def check_image_size(config: CaptionModelConfig, image_size: int) -> None:
    """Refuse an ``image_size`` too small for the encoder, and warn when its feature map is smaller
    than the ``grid``: max pooling then copies each cell to several of the ``grid**2`` attention
    locations (vgg16 at 48 pixels makes one cell, 144 copies), so attention sees nothing spatial."""
    side = feature_map_side(config, image_size)
    if side is not None and side >= config.grid:
        return
    wanted = image_size * 2
    while wanted <= MAX_SUGGESTED_IMAGE_SIZE and (feature_map_side(config, wanted) or 0) < config.grid:
        wanted *= 2
    advice = f"--image-size {wanted}" if wanted <= MAX_SUGGESTED_IMAGE_SIZE else "a smaller --grid"
    if side is None:
        raise InvalidInputError(
            f"--image-size {image_size} is too small for the {config.encoder} encoder: its feature map "
            f"would have no cell left; use {advice}"
        )
    if side > 1:
        advice += f" (or --grid {side})"
    log.warning("the %s encoder makes a %dx%d feature map of %d-pixel images, under the %dx%d --grid: its "
                "cells are copied to several attention locations, so attention sees little of where "
                "things are; use %s", config.encoder, side, side, image_size, config.grid, config.grid,
                advice)


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """``(grid**2, dim)`` codes of the cells of a ``grid x grid`` map, row by row.

    Cell ``(y, x)`` gets ``[sin(y w_k), cos(y w_k)]`` over the first half of the ``dim`` columns and
    the same of ``x`` over the second (the 2-D form of the Transformer's code), with
    ``w_k = 1 / 100^(k / K)``, ``K = dim // 4``: the cell's row and column can be read off from the start,
    where small random embeddings must first learn them. Columns left over by ``dim % 4`` are 0.
    """
    quarter = dim // 4
    codes = torch.zeros(grid * grid, dim)
    if quarter == 0:
        return codes
    omega = 1.0 / 100.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    cells = torch.arange(grid, dtype=torch.float32)
    ys, xs = (c.reshape(-1) for c in torch.meshgrid(cells, cells, indexing="ij"))
    for start, coordinate in ((0, ys), (2 * quarter, xs)):
        angles = coordinate[:, None] * omega[None, :]
        codes[:, start : start + quarter] = torch.sin(angles)
        codes[:, start + quarter : start + 2 * quarter] = torch.cos(angles)
    return codes


class ImageEncoder(nn.Module):
    """Images ``(B, 3, S, S)`` in ``[0, 1]`` -> annotation vectors ``(B, grid**2, D)``.

    Pixels are normalised here (``(x - 0.5) / 0.25``), so training and inference cannot differ.
    """

    def __init__(self, config: CaptionModelConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(config.encoder, config.encoder_width)
        if config.freeze_encoder is not None:
            freeze(self.backbone, None if config.freeze_encoder == "all" else config.freeze_encoder)
        self.pool = nn.AdaptiveMaxPool2d(config.grid)
        self.project = nn.Linear(self.backbone.num_features, config.feature_dim)
        if config.position_init == "sincos":
            start = sincos_positions(config.grid, config.feature_dim)
        else:
            start = 0.02 * torch.randn(config.grid**2, config.feature_dim)
        self.positions = nn.Parameter(start) if config.positions else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError(f"images must be (B, 3, H, W); got {tuple(images.shape)}")
        if not images.is_floating_point():  # 0-255 bytes would be normalised 255 times too bright
            raise InvalidInputError(f"images must be floating point in [0, 1], got dtype {images.dtype}; "
                                    "divide 0-255 pixels by 255 (torchvision's to_tensor does)")
        features = self.pool(self.backbone.forward_features((images - 0.5) / 0.25))
        annotations = self.project(features.flatten(2).transpose(1, 2))
        return annotations if self.positions is None else annotations + self.positions


class StepOutput(NamedTuple):
    """One decoder step: ``logits`` ``(B, V)``, new ``state``, ``weights`` ``(B, L)``, the gate
    ``beta`` ``(B, 1)``, and for hard attention the chosen location's ``log_prob`` ``(B,)`` and the
    policy ``entropy`` ``(B,)`` (zeros for soft attention)."""

    logits: torch.Tensor
    state: LSTMState
    weights: torch.Tensor
    beta: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor


class TeacherForced(NamedTuple):
    """Every step of a teacher-forced pass: ``logits`` ``(B, T, V)``, ``weights`` ``(B, T, L)``,
    ``log_prob`` and ``entropy`` ``(B, T)`` (hard attention's; zeros for soft), and the gate
    ``beta`` ``(B, T)`` (logged by the loss: a gate stuck near 0 means the decoder ignores the image)."""

    logits: torch.Tensor
    weights: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    beta: torch.Tensor


class AttentionDecoder(nn.Module):
    """LSTM decoder with attention, gate and deep output over annotation vectors ``(B, L, D)``."""

    def __init__(self, vocab_size: int, config: CaptionModelConfig) -> None:
        super().__init__()
        dim, hidden, embed = config.feature_dim, config.hidden_size, config.embed_dim
        self.hard = config.attention == "hard"
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=PAD_ID)
        self.init_h = nn.Linear(dim, hidden)
        self.init_c = nn.Linear(dim, hidden)
        if self.hard:
            self.attention: nn.Module = HardAttention(AdditiveAttention(hidden, dim))
        else:
            self.attention = build_attention(config.attention, hidden, dim, num_heads=config.num_heads)
        self.gate = nn.Linear(hidden, 1)
        self.cell = nn.LSTMCell(embed + dim, hidden)
        self.out_h = nn.Linear(hidden, embed)
        self.out_z = nn.Linear(dim, embed, bias=False)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(embed, vocab_size)

    def initial_state(self, features: torch.Tensor) -> LSTMState:
        """``(h0, c0)`` ``(B, H)`` each, from the mean annotation vector of ``features`` ``(B, L, D)``."""
        mean = features.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def advance(self, token: torch.Tensor, state: LSTMState, features: torch.Tensor) -> StepOutput:
        """One step from previous tokens ``(B,)`` and ``state`` over ``features`` ``(B, L, D)``."""
        h, c = state
        query = h.unsqueeze(1)
        zeros = h.new_zeros(h.shape[0])
        if self.hard:
            chosen = self.attention.sample(query, features)
            context, weights = chosen.context.squeeze(1), chosen.weights.squeeze(1)
            log_prob, entropy = chosen.log_prob.squeeze(1), chosen.entropy.squeeze(1)
        else:
            context, weights = self.attention(query, features, features, need_weights=True)
            context, weights, log_prob, entropy = context.squeeze(1), weights.squeeze(1), zeros, zeros
        beta = torch.sigmoid(self.gate(h))
        context = beta * context
        embedded = self.embedding(token)
        h, c = self.cell(torch.cat([embedded, context], dim=-1), (h, c))
        deep = torch.tanh(embedded + self.out_h(h) + self.out_z(context))
        return StepOutput(self.out(self.dropout(deep)), (h, c), weights, beta, log_prob, entropy)

    def forward(self, features: torch.Tensor, captions_in: torch.Tensor) -> TeacherForced:
        """Teacher-forced pass over ``captions_in`` ``(B, T)`` (``<bos> w_1 .. w_n``, padded)."""
        state = self.initial_state(features)
        steps = []
        for t in range(captions_in.shape[1]):
            out = self.advance(captions_in[:, t], state, features)
            state = out.state
            steps.append(out)
        return TeacherForced(
            torch.stack([s.logits for s in steps], dim=1),
            torch.stack([s.weights for s in steps], dim=1),
            torch.stack([s.log_prob for s in steps], dim=1),
            torch.stack([s.entropy for s in steps], dim=1),
            torch.cat([s.beta for s in steps], dim=1),
        )


class CaptionModel(nn.Module):
    """Encoder + attention decoder for a vocabulary of ``vocab_size`` words."""

    def __init__(self, vocab_size: int, config: CaptionModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or CaptionModelConfig()
        self.encoder = ImageEncoder(self.config)
        self.decoder = AttentionDecoder(vocab_size, self.config)

    def encode_memory(self, images: torch.Tensor) -> EncodedMemory:
        """What search needs from images ``(B, 3, S, S)``: annotation vectors ``(B, L, D)`` as keys
        (no mask: every location is real) and ``(h0, c0)``."""
        features = self.encoder(images)
        return EncodedMemory(features, None, self.decoder.initial_state(features))

    def step(
        self, token: torch.Tensor, state: LSTMState, memory: EncodedMemory, need_weights: bool
    ) -> tuple[torch.Tensor, LSTMState, torch.Tensor | None]:
        """``(logits (N, V), state, weights (N, L) or None)`` for previous tokens ``(N,)``."""
        out = self.decoder.advance(token, state, memory.keys)
        return out.logits, out.state, out.weights if need_weights else None

    def reorder_state(self, state: LSTMState, index: torch.Tensor) -> LSTMState:
        """Rows ``index`` ``(N,)`` of ``(h, c)``."""
        return state[0][index], state[1][index]

    def forward(self, images: torch.Tensor, captions_in: torch.Tensor) -> TeacherForced:
        """Teacher-forced outputs for images ``(B, 3, S, S)`` and ``captions_in`` ``(B, T)``."""
        return self.decoder(self.encoder(images), captions_in)
