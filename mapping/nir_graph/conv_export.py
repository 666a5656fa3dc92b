"""NIR export of shaped projections (:mod:`neurosim.conv`) and of shaped populations and inputs.

- ``Conv2d``/``Conv1d`` -> ``source -> [Delay((d-1)*dt)] -> nir.Conv2d/Conv1d -> target``, weight
  (C_out, C_in/groups, kh, kw), stride, padding, dilation, ``input_shape`` the source's spatial
  shape, bias the target's per-channel bias (when the projection is the first into the target and
  the bias is constant over each channel). Grouped kernels are written expanded to groups = 1
  (zeros between groups, ``neurosim.groups`` in metadata): nir 1.0.8 infers a Conv's input
  channels as ``weight.shape[1]`` and ``nir.read`` rejects groups > 1. Per-tap delays: one
  masked conv per distinct delay, each after its Delay node, ``neurosim.tap_delay`` in metadata.
- ``SumPool2d``/``AvgPool2d`` -> ``nir.SumPool2d``/``nir.AvgPool2d`` with their types set.
- ``Flatten`` -> ``nir.Flatten(input_type=pre shape, start_dim=0)``.
- A dense/CSR projection out of a shaped node goes through one ``Flatten`` node per source.
- A dense/CSR projection into a shaped population has no NIR form (NIR has no node that reshapes
  a flat vector into (C, H, W)): refused, except for target neurosim with extensions (the Linear's
  output type is set to the shape; ``nir.read`` then rejects the file, neurosim reads it).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import nir
import numpy as np

from neurosim.conv import Convolution, Flatten, Pooling, ShapedProjection, SumPool2d
from neurosim.network import Network

from .common import NS, after_delay, unique_name
from .targets import Refusal

# what each peer's NIR importer builds (read from their source: snntorch/import_nir.py,
# norse/torch/utils/import_nir.py, spikingjelly/activation_based/nir_exchange/from_nir.py)
PEER_NODES = {"snntorch": ("conv2d", "avgpool2d", "flatten"), "norse": ("conv2d", "sumpool2d", "flatten"),
              "spikingjelly": ("conv1d", "conv2d", "avgpool2d", "flatten")}


def shape_of(network: Network, name: str) -> tuple[int, ...]:
    """The shape of input or population `name`."""
    for s in network.inputs:
        if s.name == name:
            return tuple(s.shape)
    return tuple(network.population(name).shape)


def shaped_refusals(net: Network, target: str, extensions: bool) -> list[Refusal]:
    """What `target` cannot hold among shaped projections and shaped populations."""
    out: list[Refusal] = []
    for j in net.projections:
        field = f"projections.{j.name}"
        if isinstance(j, ShapedProjection):
            if target in PEER_NODES and j.kind not in PEER_NODES[target]:
                out.append(Refusal(target, field, f"{target}'s NIR importer has no {type(j).__name__} node",
                                   f"one of {', '.join(PEER_NODES[target])}, or target nir / neurosim"))
            if isinstance(j, Convolution) and len(j.in_shape) == 3 and _nir_out(j) != tuple(j.out_shape) \
                    and not (target == "neurosim" and extensions):
                out.append(Refusal(target, f"{field}.kernel", f"nir 1.0.8 infers a Conv2d's output shape from the first "
                                                              f"kernel dimension only ({_nir_out(j)} here, not "
                                                              f"{tuple(j.out_shape)}), so nir.read rejects this "
                                                              "non-square kernel", "a square kernel, or target neurosim "
                                                              "with extensions (readable by neurosim only)"))
            if target == "norse" and isinstance(j, SumPool2d) and any(j.padding):
                out.append(Refusal(target, f"{field}.padding", "Norse's importer builds SumPool2d as LPPool2d, "
                                                               "which has no padding", "padding 0"))
            continue
        if len(shape_of(net, j.post)) > 1 and not (target == "neurosim" and extensions):
            out.append(Refusal(target, field, "a dense or sparse projection into a shaped population has no NIR form "
                                              "(NIR has no node that reshapes a flat vector into the population's "
                                              "shape; nir.read rejects the type mismatch)",
                               "a conv/pool projection, a flat target population, or target "
                               "neurosim with extensions (readable by neurosim only)"))
    return out


def _nir_out(j: Convolution) -> tuple[int, ...]:
    """The output shape nir 1.0.8 infers for Conv2d `j` (kernel_size = kernel.shape[2] on both axes)."""
    k = j.kernel.shape[2]
    return (j.kernel.shape[0], *((n + 2 * p - d * (k - 1) - 1) // s + 1
                                 for n, p, d, s in zip(j.in_shape[1:], j.padding, j.dilation, j.stride)))


def channel_values(network: Network, proj: Any) -> Optional[np.ndarray]:
    """The post population's bias as one value per channel when `proj` (a convolution) can carry
    it (constant over each channel); None otherwise."""
    if not isinstance(proj, Convolution):
        return None
    post = network.population(proj.post)
    b = np.asarray(post.params.bias, np.float64).reshape(post.shape[0], -1)
    return b[:, 0].copy() if np.all(b == b[:, :1]) else None


def _expanded(kernel: np.ndarray, groups: int) -> np.ndarray:
    """A grouped kernel (C_out, C_in/g, ...) as the groups = 1 kernel (C_out, C_in, ...)."""
    c_out, cig = kernel.shape[:2]
    full = np.zeros((c_out, cig * groups, *kernel.shape[2:]))
    cog = c_out // groups
    for o in range(c_out):
        g = o // cog
        full[o, g * cig:(g + 1) * cig] = kernel[o]
    return full


def _conv_node(proj: Convolution, kernel: np.ndarray, bias: Optional[np.ndarray], meta: dict[str, Any]) -> Any:
    in_shape = tuple(proj.in_shape)
    w = _expanded(kernel, proj.groups) if proj.groups > 1 else np.array(kernel, np.float64)
    if proj.groups > 1:
        meta[NS + "groups"] = proj.groups
    b = np.zeros(w.shape[0]) if bias is None else bias
    if len(in_shape) == 2:
        node = nir.Conv1d(input_shape=int(in_shape[1]), weight=w, stride=int(proj.stride[0]),
                          padding=int(proj.padding[0]), dilation=int(proj.dilation[0]), groups=1, bias=b, metadata=meta)
    else:
        node = nir.Conv2d(input_shape=tuple(int(x) for x in in_shape[1:]), weight=w, stride=tuple(proj.stride),
                          padding=tuple(proj.padding), dilation=tuple(proj.dilation), groups=1, bias=b, metadata=meta)
    return _typed(node, in_shape, tuple(proj.out_shape))  # the true output (see shaped_refusals)


def _typed(node: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    node.input_type = {"input": np.array(in_shape)}
    node.output_type = {"output": np.array(out_shape)}
    return node


def export_shaped(network: Network, proj: ShapedProjection, nodes: dict[str, Any], edges: list[tuple[str, str]],
                  taken: set[str], bias_open: set[str]) -> None:
    """The NIR nodes and edges of shaped projection `proj` (module docstring)."""
    in_shape, out_shape = tuple(proj.in_shape), tuple(proj.out_shape)
    bias = channel_values(network, proj) if proj.post in bias_open else None
    if bias is not None:
        bias_open.discard(proj.post)
    delays = np.asarray(proj.delay)
    classes = [int(d) for d in np.unique(delays)]
    for d in classes:
        suffix = "" if len(classes) == 1 else f"_d{d}"
        src = proj.pre
        src = after_delay(src, f"{proj.name}_delay{suffix}", in_shape, (d - 1) * network.dt, nodes, edges, taken)
        name = unique_name(f"{proj.name}{suffix}", taken)
        meta: dict[str, Any] = {NS + "projection": proj.name, NS + "delay": d, NS + "kind": proj.kind}
        if isinstance(proj, Convolution):
            kernel = np.asarray(proj.kernel, np.float64)
            if delays.ndim:
                kernel = np.where(delays == d, kernel, 0.0)
                meta[NS + "tap_delay"] = delays.astype(np.int64)
            node = _conv_node(proj, kernel, bias, meta)
            bias = None
        elif isinstance(proj, Pooling):
            cls = nir.SumPool2d if isinstance(proj, SumPool2d) else nir.AvgPool2d
            node = _typed(cls(kernel_size=np.array(proj.kernel_size), stride=np.array(proj.stride),
                              padding=np.array(proj.padding), metadata=meta), in_shape, out_shape)
        else:
            assert isinstance(proj, Flatten)
            node = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1, metadata=meta)
        nodes[name] = node
        edges += [(src, name), (name, proj.post)]


def flat_source(network: Network, name: str, nodes: dict[str, Any], edges: list[tuple[str, str]],
                taken: set[str], made: dict[str, str]) -> str:
    """The node that sends `name`'s spikes flat: `name` itself, or one Flatten node after it."""
    shape = shape_of(network, name)
    if len(shape) == 1:
        return name
    if name not in made:
        flat = unique_name(f"{name}_flat", taken)
        nodes[flat] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1,
                                  metadata={NS + "kind": "flatten-view"})
        edges.append((name, flat))
        made[name] = flat
    return made[name]


def shape_neuron(node: Any, shape: tuple[int, ...]) -> Any:
    """Neuron node `node` with its per-neuron arrays and types in `shape` (a shaped population)."""
    n = math.prod(shape)
    if len(shape) == 1:
        return node
    for key, value in list(vars(node).items()):
        if isinstance(value, np.ndarray) and value.shape == (n,) and key not in ("input_type", "output_type"):
            setattr(node, key, value.reshape(shape))
    return _typed(node, shape, shape)
