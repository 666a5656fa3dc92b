"""neurosim: one canonical discrete-time SNN model, fast simulators, training and hardware mapping.

Time unit: seconds. Decays are per-step factors. See README.md for the model equations.
"""
from .conv import AvgPool2d, Conv1d, Conv2d, Flatten, ShapedProjection, SumPool2d, channel_bias
from .errors import BackendUnavailable, ExportError, FileFormatError, NetworkError, NeurosimError
from .models import ALIF, IF, LI, LIF, NeuronParams, NeuronState, decay, heaviside, neuron_step
from .network import CSR, Network, PoissonInput, Population, Projection, SpikeInput
from .result import SimulationResult, SpikeTrains
from .simulate import simulate

from .version import __version__

__all__ = [
    "ALIF", "IF", "LI", "LIF", "CSR", "Network", "Population", "Projection", "SpikeInput",
    "PoissonInput", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "ShapedProjection", "channel_bias",
    "NeuronParams", "NeuronState", "SimulationResult", "SpikeTrains",
    "simulate", "neuron_step", "heaviside", "decay", "load", "save", "load_result",
    "save_result", "NeurosimError", "NetworkError", "FileFormatError", "BackendUnavailable", "ExportError",
]


def __getattr__(name: str):  # lazy: h5py is imported only when files are used
    if name in ("load", "save", "load_result", "save_result"):
        from . import storage

        return getattr(storage, name)
    raise AttributeError(name)
