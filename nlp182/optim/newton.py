"""Newton's method for small models: exact Hessian through ``torch.func``, damping, line search.

From the second-order Taylor expansion ``f(w + d) ≈ f + gᵀd + ½ dᵀHd`` the minimising step is
``d = −(H + λI)⁻¹ g``. On a quadratic the expansion is exact, so one full step (``lr = 1``) lands
on the minimum. The catch the course points out: Newton solves ``∇f = 0``, so near a saddle it
jumps *to* the saddle, where gradient descent slides off along the negative-curvature direction;
and the Hessian costs O(n²) memory and its solve O(n³) time, which is why it is for small models.

A backtracking (Armijo) line search halves the step until ``f(w + t d) ≤ f(w) + c t gᵀd``. It is
applied only when ``d`` is a descent direction (``gᵀd < 0``); otherwise the full step is taken,
which is precisely the saddle-seeking behaviour the method is known for. When ``max_backtracks``
halvings find no such step, none is taken (``last_step_length`` is 0, and a warning says so): the
last trial step could raise the loss a millionfold. A loss, gradient or Hessian that is not finite
is an error, where it would have been written into the parameters.

Unlike first-order optimizers, ``step`` needs the loss as a pure function of the parameters:
``closure(params) -> loss`` where ``params`` is a tuple shaped like the optimizer's parameters.
``module_closure`` builds one for an ``nn.Module`` with ``torch.func.functional_call``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from nlp182.errors import InvalidInputError, NonFiniteError
from nlp182.optim.tensor_lists import check_hyper

log = logging.getLogger(__name__)

PureLoss = Callable[[tuple[torch.Tensor, ...]], torch.Tensor]

MAX_PARAMETERS = 20_000


def module_closure(model: nn.Module, loss_fn: Callable[..., torch.Tensor], *inputs: Any) -> PureLoss:
    """``closure(params)`` evaluating ``loss_fn(model(*inputs[:-1]), inputs[-1])`` with ``params`` swapped in.

    ``params`` follow ``model.parameters()`` order, as a ``Newton(model.parameters())`` holds them,
    or are the trainable ones alone (``requires_grad``), as an optimizer over a partly frozen
    model holds them; the others keep the model's values. :class:`Newton` matches its parameters
    to the model's by identity (the closure's ``parameters``), so it may hold them in any order
    or only some of them. The model's mode is used as it is: in
    training mode its batch norms normalise by the batch (their running statistics are not updated
    by the step), in evaluation mode by those statistics.
    """
    named = list(model.named_parameters())
    buffers = dict(model.named_buffers())
    *features, target = inputs

    def closure(params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        names = [name for name, _ in named]
        if len(params) != len(names):
            names = [name for name, param in named if param.requires_grad]
        if len(params) != len(names):
            raise InvalidInputError(f"the closure got {len(params)} tensors; the model has {len(named)} "
                                    f"parameters, {len(names)} of them trainable")
        # copies of the buffers, made inside the transform: a batch norm in training mode updates
        # its running statistics in place, which torch.func refuses on the model's own tensors
        # (the copies are dropped, so a step leaves the statistics as they were)
        state = {name: buffer.clone() for name, buffer in buffers.items()}
        state.update(zip(names, params, strict=True))
        return loss_fn(torch.func.functional_call(model, state, tuple(features)), target)

    closure.parameters = [param for _, param in named]  # type: ignore[attr-defined]
    return closure


class Newton(torch.optim.Optimizer):
    """Damped Newton steps ``w ← w − t (H + λI)⁻¹ g`` with an exact Hessian and Armijo backtracking.

    Parameters with ``requires_grad=False`` are held fixed, as torch's optimizers hold them: the
    Hessian is over the trainable ones alone (so a small head on a frozen network fits its bound).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        damping: float = 0.0,
        line_search: bool = True,
        armijo_c: float = 1e-4,
        backtrack: float = 0.5,
        max_backtracks: int = 30,
    ) -> None:
        check_hyper("lr", lr)
        check_hyper("damping", damping)
        check_hyper("armijo_c", armijo_c, 0.0, 1.0)
        check_hyper("backtrack", backtrack, 0.0, 1.0)
        check_hyper("max_backtracks", max_backtracks)
        defaults = {"lr": lr, "damping": damping, "line_search": line_search, "armijo_c": armijo_c,
                    "backtrack": backtrack, "max_backtracks": max_backtracks}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise InvalidInputError("Newton takes a single parameter group (the Hessian couples all of them)")
        total = sum(p.numel() for p in self.param_groups[0]["params"] if p.requires_grad)
        if total > MAX_PARAMETERS:
            raise InvalidInputError(f"Newton builds a {total}x{total} Hessian; it is meant for models with "
                                    f"at most {MAX_PARAMETERS} parameters; use Adam or SGD")
        self.last_step_length = 0.0

    @torch.no_grad()
    def step(self, closure: PureLoss | None = None) -> torch.Tensor:  # type: ignore[override]
        """Take one Newton step; ``closure(params)`` must compute the loss from the given tensors.

        Returns the loss before the step; the step length chosen is kept in ``last_step_length``.
        """
        if closure is None:
            raise InvalidInputError("Newton.step needs closure(params) -> loss (see module_closure)")
        group = self.param_groups[0]
        every: list[torch.Tensor] = group["params"]
        params = [p for p in every if p.requires_grad]  # frozen ones (requires_grad=False) stay put
        sizes = [p.numel() for p in params]
        trained = [p.requires_grad for p in every]

        order = getattr(closure, "parameters", None)  # a module_closure's model, in its own order

        def flat_loss(theta: torch.Tensor) -> torch.Tensor:
            pieces = iter(torch.split(theta, sizes))
            values = [next(pieces).view(p.shape) if trains else p.detach()
                      for p, trains in zip(every, trained, strict=True)]
            if order is not None:  # matched by identity: Newton([m.b, m.a]) swapped their values
                by_id = {id(p): value for p, value in zip(every, values, strict=True)}
                values = [by_id.get(id(p), p.detach()) for p in order]
            return closure(tuple(values))

        if not params:
            raise InvalidInputError("Newton holds no parameter with requires_grad=True: nothing to step")
        theta = torch.cat([p.detach().reshape(-1) for p in params])
        with torch.enable_grad():
            grad, loss = torch.func.grad_and_value(flat_loss)(theta)
            hessian = torch.func.hessian(flat_loss)(theta)
        for name, value in (("loss", loss), ("gradient", grad), ("Hessian", hessian)):
            if not bool(torch.isfinite(value).all()):
                raise NonFiniteError(f"Newton: the {name} is not finite at this point; the parameters are "
                                     "left as they were")
        eye = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)
        hessian = hessian + group["damping"] * eye
        try:
            direction = -torch.linalg.solve(hessian, grad)
        except torch.linalg.LinAlgError as exc:
            raise InvalidInputError(
                f"the Hessian is singular at this point ({exc}); pass damping > 0 "
                f"(now {group['damping']}) to step along a regularised direction"
            ) from exc
        t = group["lr"]
        slope = float(grad @ direction)
        if group["line_search"] and slope < 0:
            for _ in range(group["max_backtracks"] + 1):  # the full step, then each shorter one
                if float(flat_loss(theta + t * direction)) <= float(loss) + group["armijo_c"] * t * slope:
                    break
                t *= group["backtrack"]
            else:  # no step length lowered the loss enough: keep the parameters
                log.warning("Newton: %d halvings of the step found none that lowers the loss enough; no step "
                            "taken", group["max_backtracks"])
                t = 0.0
        self.last_step_length = t
        new_theta = theta + t * direction
        for param, piece in zip(params, torch.split(new_theta, sizes), strict=True):
            param.copy_(piece.view(param.shape))
        return loss.detach()

