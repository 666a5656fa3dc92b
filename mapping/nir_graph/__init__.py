"""NIR (Neuromorphic Intermediate Representation) export and import of a :class:`Network`.

``to_nir`` / ``write_nir`` turn a Network into a ``nir.NIRGraph`` (HDF5 via ``nir.write``);
``from_nir`` / ``read_nir`` turn a NIR graph, ours or a peer's, back into a Network.

Discretisation (NIR is continuous-time; ``dt`` is the network's step on export, an argument on
import). ``decay(tau)`` is :func:`neurosim.models.decay`: ``1 - dt/tau`` ('euler', what
snnTorch writes with dt = 1e-4 and Norse reads) or ``exp(-dt/tau)`` ('exact'). Each ODE
``tau dy/dt = -y + k u`` becomes ``y <- decay*y + (1 - decay)*k*u`` (forward Euler, or the exact
solution for u held constant over the step; the two ODEs of the Cuba nodes are discretised one
by one, v taking this step's current), so, with our step ``i = alpha*i + gain*(x + bias)``,
``v = beta*v + i``:

=============  =========================================  ==========================================
NIR node       decays                                     input gain and bias
=============  =========================================  ==========================================
LIF, LI        beta = decay(tau)                          gain = r*(1 - beta); bias = v_leak / r
CubaLIF,       alpha = decay(tau_syn),                    gain = w_in*(1 - alpha) * r*(1 - beta);
CubaLI         beta = decay(tau_mem)                      v_leak must be 0
IF, I          beta = 1 (no leak)                         gain = r per step (IF has no time
                                                          constant; Norse reads and writes r so)
=============  =========================================  ==========================================

Export writes ``r = gain/(1 - beta)`` for LIF/LI and ``r = 1/(1 - beta)``, ``w_in = gain/(1 - alpha)``
for the Cuba nodes: snnTorch's own convention, so its importer reads our graphs unchanged.

Latency. NIR edges are instantaneous; a neurosim projection of delay d >= 1 acts d steps later.
Convention (both directions): every path source -> [Delay] -> Linear/Affine/Scale ... -> neuron
is one projection with one step of latency; a ``Delay`` node of k*dt adds k steps, so
``delay = 1 + k``. Export writes delay d as ``source -> Delay((d-1)*dt) -> Linear -> target``
(per-synapse delays: one Linear per distinct delay). A zero-latency peer (snnTorch, Norse) running
a layered graph therefore emits layer L's spikes L steps *earlier* than neurosim; under the
conventions of those peers (bias from the first input step) an Affine bias reaches layer L from
step L on, through a one-neuron clock population (:mod:`mapping.nir_graph.timing`), so the shift
stays exact with biases; under ``neurosim``/``nir`` a bias acts from step 0.

Resets. NIR's reset is ``v = v_reset``; neurosim's 'zero' reset is v_reset = 0. neurosim's
'subtract' reset has no NIR field: a strict export refuses it; with ``extensions=True`` the rule
travels in node metadata ``neurosim.reset`` (other tools then read reset to zero). On import the
convention says which rule the writer meant (:mod:`mapping.nir_graph.conventions`; snnTorch's
late subtract is translated exactly, :mod:`mapping.nir_graph.timing`). A nonzero v_reset is refused.

Conventions and targets. ``read_nir(path, convention=NAME)`` reads a graph with the dt,
discretisation, reset rule, bias timing and Cuba order of the tool that wrote it
(:data:`~mapping.nir_graph.conventions.CONVENTIONS`: snntorch, norse, spikingjelly, nir,
neurosim); our own files name themselves; a file that cannot tell is refused with one line
asking for the convention. ``write_nir(net, path, target=NAME)`` writes what that tool's
importer reads as neurosim computes it, or refuses with the reason and the nearest alternative
(:mod:`mapping.nir_graph.targets`).

Graph shape. Export: one Input per input source, one neuron node per population, an Output
after every population that projects to no other population. Import: sub-graphs are inlined,
an Input's shape is flattened, Scale nodes and chains of Linear/Affine nodes multiply into the
projection's weights, Affine biases become the target population's bias.

Shapes and convolutions (:mod:`~mapping.nir_graph.conv_export`, :mod:`~mapping.nir_graph.conv_nodes`,
:mod:`~mapping.nir_graph.conv_import`). Inputs, populations and Outputs carry their shape
((C, H, W) or (C, L)) as NIR's input_type/output_type. neurosim's Conv1d/Conv2d, SumPool2d,
AvgPool2d and Flatten projections are NIR's nodes of those names (weight (C_out, C_in/groups,
kh, kw), stride, padding, dilation, a per-channel bias from the target population; grouped
kernels written expanded to groups = 1, per-tap delays as one masked conv per delay). On import
every shaped node is its exact lowering (neurosim.conv's ``to_csr``) composed into the path's
weights; a path that is one shaped node comes back as the shaped record. NIR's Threshold node
is an LIF without memory (alpha = beta = 0, gain 1, reset to zero), written for targets nir and
neurosim. Refused with the field and the reason: a dense projection into a shaped population
(NIR has no reshape node), non-square kernels whose output nir 1.0.8 infers wrongly, and the
nodes a peer's importer lacks (:data:`~mapping.nir_graph.conv_export.PEER_NODES`).

Extensions (metadata keys ``neurosim.*``, ignored by other NIR tools): reset rule, refractory
steps, initial state (v0, i0, a0), model kind, Poisson input rates, projection names, sparsity,
node order, the discretisation of each node, and the exact per-step parameters (so that a round
trip at the same dt is bit-exact; they are checked against the NIR fields and used only when
they agree to 1e-8). ALIF has no NIR primitive: with ``extensions=True`` it is written as a node
of type ``neurosim.ALIF`` (:class:`ALIFNode`) that ``nir.read`` and snnTorch's importer refuse
(Norse 1.1's ``from_nir`` silently skips it); :func:`read_nir` reads it. Without the flag the
export refuses ALIF, the subtract reset and refractory periods.

Peers: the matrix of what is exact both ways is docs/PEERS.md (bench/peer_matrix.py; conv graphs:
bench/peer_matrix_conv.py).
"""
from __future__ import annotations

from .common import ALIF_TYPE, ALIFNode
from .conventions import CONVENTIONS, Convention
from .export import to_nir, write_nir
from .graph_import import from_nir, read_nir
from .targets import TARGETS

__all__ = ["to_nir", "from_nir", "write_nir", "read_nir", "ALIFNode", "ALIF_TYPE", "CONVENTIONS", "Convention",
           "TARGETS"]
