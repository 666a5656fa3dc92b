"""Fused multi-step neuron kernels for training: the canonical neuron map over all T steps in
one compiled forward and one compiled backward call (kernels), as a torch autograd function
(function), and the sequence path of layered models that uses it (layered)."""
from .function import BACKENDS, Constants, FinalState, available, fused_dynamics, surrogate_args
from .kernels import MODEL_KINDS, SURROGATES, KernelKey, kernels

__all__ = ["BACKENDS", "Constants", "FinalState", "KernelKey", "MODEL_KINDS", "SURROGATES", "available",
           "fused_dynamics", "kernels", "surrogate_args"]
