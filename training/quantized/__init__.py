"""Quantisation-aware training for Loihi's fixed-point mode (``neurosim train --quantize loihi``):
the torch integer step (integer_step, a second target of neurosim.fixed_point.neuron_step_fixed),
the weight quantiser (weights, a second target of quantize's weight rule), the fixed-point
neurons (neurons) and the modules whose forward pass is the network's fixed-point run
(model.QuantizedSNN, layered.QuantizedLayeredSNN for conv and layered models)."""
from .integer_step import TorchFixedParams, fixed_params, neuron_step_fixed_torch, straight_through
from .layered import QuantizedLayeredSNN
from .model import QUANTIZE_MODES, QuantizedSNN, quantized_model
from .weights import QuantizedWeight, quantize_weight, shift_input, sign_mode

__all__ = ["QUANTIZE_MODES", "QuantizedLayeredSNN", "QuantizedSNN", "QuantizedWeight", "TorchFixedParams", "fixed_params",
           "neuron_step_fixed_torch", "quantize_weight", "quantized_model", "shift_input", "sign_mode",
           "straight_through"]
