"""nlp182.optim: optimizers (multi-tensor), Newton's method, LR schedules, clipping, gradient noise
and the weight-decay parameter groups."""

from nlp182.optim.adagrad import Adagrad
from nlp182.optim.adam import Adam, AdamW
from nlp182.optim.clipping import clip_grad_norm_, clip_grad_value_
from nlp182.optim.newton import Newton, module_closure
from nlp182.optim.noise import GradientNoise
from nlp182.optim.param_groups import weight_decay_groups
from nlp182.optim.rmsprop import RMSprop
from nlp182.optim.schedules import (
    ClosedFormSchedule,
    Cosine,
    CyclicCosine,
    ExponentialDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    ProgressDecay,
    StepDecay,
)
from nlp182.optim.sgd import SGD
from nlp182.optim.signsgd import SignSGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ClosedFormSchedule",
    "Cosine",
    "CyclicCosine",
    "ExponentialDecay",
    "GradientNoise",
    "InverseSqrtDecay",
    "InverseTimeDecay",
    "Newton",
    "ProgressDecay",
    "RMSprop",
    "SignSGD",
    "StepDecay",
    "clip_grad_norm_",
    "clip_grad_value_",
    "module_closure",
    "weight_decay_groups",
]
