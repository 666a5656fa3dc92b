"""Layered (and convolutional) SNNs: a spec (training.layered.spec), the torch module on
neurosim's canonical step (training.layered.model), and its exact
conversion to and from a neurosim Network (training.layered.convert)."""
from .convert import from_network, to_network
from .model import LayeredSNN, neuron_record, out_shape
from .spec import KINDS, NEURONS, LayerSpec, arch_json, finish, load_arch, parse_arch

__all__ = ["KINDS", "LayerSpec", "LayeredSNN", "NEURONS", "arch_json", "finish", "from_network", "load_arch", "neuron_record",
           "out_shape", "parse_arch", "to_network"]
