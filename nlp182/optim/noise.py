"""Annealed Gaussian gradient noise (Neelakantan et al., 2015).

After backward and before the optimizer step, add ``N(0, σ_t²)`` to every gradient with
``σ_t² = η / (1 + t)^γ``. Early noise helps escape saddles and poor minima; the annealing
(γ = 0.55 in the paper, η ∈ {0.01, 0.3, 1}) removes it as training settles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from nlp182.errors import InvalidInputError


class GradientNoise:
    """Add annealed Gaussian noise to the gradients of ``params``; call ``step()`` once per update.

    Each gradient, of any shape ``(...)``, gets noise of its own shape."""

    def __init__(self, params: Iterable[torch.Tensor], eta: float = 0.3, gamma: float = 0.55,
                 seed: int | None = None) -> None:
        if not eta >= 0 or not gamma >= 0:  # nan too
            raise InvalidInputError(f"eta and gamma must be >= 0, got eta={eta}, gamma={gamma}")
        self.params = list(params)
        self.eta, self.gamma = eta, gamma
        self.t = 0
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def std(self, t: int | None = None) -> float:
        """σ_t, the noise standard deviation at step ``t`` (default: the next step)."""
        t = self.t if t is None else t
        return math.sqrt(self.eta / (1 + t) ** self.gamma)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device).manual_seed(self.seed)
        return self._generators[device]

    @torch.no_grad()
    def step(self) -> float:
        """Add the noise for the current step to every existing gradient; return the σ used."""
        sigma = self.std()
        for param in self.params:
            if param.grad is not None:
                noise = torch.randn(param.grad.shape, generator=self._generator(param.grad.device),
                                    device=param.grad.device, dtype=param.grad.dtype)
                param.grad.add_(noise, alpha=sigma)
        self.t += 1
        return sigma

    def state_dict(self) -> dict[str, Any]:
        """The step count and generator states, for checkpoints."""
        return {"t": self.t, "generators": {str(d): g.get_state() for d, g in self._generators.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.t = int(state["t"])
        for name, saved in state["generators"].items():
            generator = self._generator(torch.device(name))
            if generator is not None:
                generator.set_state(saved)
