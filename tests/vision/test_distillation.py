import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nlp182.errors import InvalidInputError, ShapeError
from nlp182.vision.distillation import DistillationLoss, distillation_loss


def _reference(s: np.ndarray, t: np.ndarray, y: np.ndarray, temperature: float, alpha: float) -> float:
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    ls, lt = log_softmax(s / temperature), log_softmax(t / temperature)
    kl = (np.exp(lt) * (lt - ls)).sum(axis=1).mean()
    ce = -log_softmax(s)[np.arange(len(y)), y].mean()
    return alpha * temperature**2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (4.0, 0.9), (2.5, 0.0), (8.0, 1.0)])
def test_matches_float64_reference(temperature, alpha):
    s, t = torch.randn(16, 10, dtype=torch.float64) * 3, torch.randn(16, 10, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (16,))
    loss = distillation_loss(s, t, y, temperature, alpha)
    assert loss.item() == pytest.approx(
        _reference(s.numpy(), t.numpy(), y.numpy(), temperature, alpha), rel=1e-10
    )


def test_soft_term_equals_torch_kl_div_and_vanishes_when_student_copies_teacher():
    s, t = torch.randn(8, 5), torch.randn(8, 5)
    y = torch.randint(0, 5, (8,))
    kl = F.kl_div(F.log_softmax(s / 3, 1), F.log_softmax(t / 3, 1), log_target=True, reduction="batchmean")
    torch.testing.assert_close(distillation_loss(s, t, y, 3.0, 1.0), 9 * kl)
    assert distillation_loss(t, t, y, 3.0, 1.0).abs().item() < 1e-6


def test_t_squared_keeps_soft_gradients_on_one_scale():
    t = torch.randn(4, 10) * 0.5
    y = torch.zeros(4, dtype=torch.long)
    grads = []
    for temperature in (8.0, 16.0):
        s = (torch.randn(4, 10, generator=torch.Generator().manual_seed(0)) * 0.5).requires_grad_(True)
        distillation_loss(s, t, y, temperature, 1.0).backward()
        grads.append(s.grad.clone())
    # at high T the soft gradient tends to (s - t) / (K * B), whatever T is
    torch.testing.assert_close(grads[0], grads[1], rtol=0.1, atol=1e-4)


def test_teacher_gets_no_gradient_and_callable_form():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    DistillationLoss(2.0, 0.7)(s, y, t).backward()
    assert s.grad is not None and t.grad is None
    with pytest.raises(ShapeError):
        distillation_loss(s, t[:, :2], y)
    for temperature in (0.0, float("nan"), float("inf")):  # NaN and inf gave a NaN loss
        with pytest.raises(InvalidInputError, match="finite temperature > 0"):
            distillation_loss(s, t, y, temperature=temperature)


def test_a_class_the_teacher_rules_out_gives_a_finite_loss():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 7, requires_grad=True), torch.randn(5, 7)
    teacher[0, 0] = -float("inf")
    targets = torch.randint(0, 7, (5,))
    loss = distillation_loss(student, teacher, targets, 3.0, 0.7)
    reference = 0.7 * 9 * F.kl_div(F.log_softmax(student / 3, 1), F.softmax(teacher / 3, 1),
                                   reduction="batchmean") + 0.3 * F.cross_entropy(student, targets)
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert torch.isfinite(student.grad).all()


def test_a_class_both_rule_out_adds_nothing() -> None:
    """A class masked with -inf in both logits (a label set that excludes it) gave a NaN loss from
    0 x log 0; it now scores as the same batch without that class."""
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 3), torch.randn(4, 3)
    masked = torch.tensor([0.0, float("-inf"), 0.0])
    targets = torch.tensor([0, 2, 2, 0])
    loss = distillation_loss(student + masked, teacher + masked, targets, temperature=2.0, alpha=0.7)
    kept = distillation_loss(student[:, [0, 2]], teacher[:, [0, 2]], torch.tensor([0, 1, 1, 0]), 2.0, 0.7)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(kept.item(), rel=1e-6)
