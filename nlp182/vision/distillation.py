"""Knowledge distillation (Hinton et al. 2015): train a student on a teacher's softened predictions.

``loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)``. A temperature
``T > 1`` exposes how the teacher ranks the wrong classes ("dark knowledge"); the ``T^2`` factor
keeps the soft term's gradients on the same scale as the hard one as ``T`` changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nlp182.errors import InvalidInputError, ShapeError


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """Mean distillation loss over a batch.

    student_logits, teacher_logits: ``(B, K)`` (the teacher may be an :class:`Ensemble`'s log mean
    probabilities); targets: ``(B,)`` class ids. The teacher gets no gradient.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ShapeError(
            f"student and teacher logits must both be (B, K); got {tuple(student_logits.shape)} "
            f"and {tuple(teacher_logits.shape)}"
        )
    if not 0.0 < temperature < math.inf or not 0.0 <= alpha <= 1.0:  # NaN fails both
        raise InvalidInputError(
            f"need a finite temperature > 0 and 0 <= alpha <= 1; got {temperature}, {alpha}"
        )
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    # KL(p_t || p_s) = sum p_t log p_t - p_t log p_s, with 0 log 0 = 0 and 0 log p_s = 0 for a class
    # the teacher rules out (the student may rule it out too: a -inf logit, log p_s = -inf)
    cross = torch.where(p_teacher > 0, p_teacher * log_p_student, torch.zeros_like(log_p_student))
    kl = (torch.xlogy(p_teacher, p_teacher) - cross).sum(dim=1).mean()
    hard = F.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * kl + (1.0 - alpha) * hard


class DistillationLoss:
    """``distillation_loss`` as a ``loss_fn(student_logits, targets, teacher_logits)`` for ``vision.fit``."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9) -> None:
        self.temperature = temperature
        self.alpha = alpha

    def __call__(
        self, student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor
    ) -> torch.Tensor:
        return distillation_loss(student_logits, teacher_logits, targets, self.temperature, self.alpha)
