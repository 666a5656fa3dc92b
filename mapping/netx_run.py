"""Run a NetX file in lava-dl's own loader (``lava.lib.dl.netx.hdf5.Network``) under Lava fixed_pt."""
from __future__ import annotations

import os
import time
from typing import Any, Mapping, Union

import numpy as np

from neurosim.errors import NetworkError
from neurosim.result import SimulationResult, SpikeTrains

from .netx_read import read_netx_file

PathLike = Union[str, "os.PathLike[str]"]


def to_netx_order(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(steps, C*H*W) C-order frames as NetX's (W, H, C, steps) input (a flat (n,) node: (n, steps))."""
    if len(shape) != 3:
        return x.T
    return x.reshape(x.shape[0], *shape).transpose(3, 2, 1, 0)


def from_netx_order(data: np.ndarray) -> np.ndarray:
    """A monitor's (steps, W, H, C) (or (steps, n)) data as (steps, C*H*W) in neurosim's C order."""
    data = np.asarray(data)
    if data.ndim == 4:
        return data.transpose(0, 3, 2, 1).reshape(data.shape[0], -1)
    return data.reshape(data.shape[0], -1)


def run_netx(path: PathLike, inputs: Mapping[str, Any], steps: int, *, traces: bool = False) -> SimulationResult:
    """Load `path` with ``lava.lib.dl.netx.hdf5.Network`` and run it in Lava fixed_pt for one trial.

    inputs: {input name: spikes (steps, n_in) in neurosim's flat C order, or (steps, C, H, W)};
    they are fed in NetX's (X, Y, C) order to a conv first layer. Spikes of every layer are
    recorded under the population names :func:`~mapping.netx_read.read_netx_fixed` gives, in
    neurosim's flat C order; traces=True adds 'u_int' and 'v_int'. NetX's blocks have fixed_pt
    process models only.
    """
    from .lava_compat import import_lava, import_netx
    from .lava_compat import stopped

    lava, netx = import_lava(), import_netx()
    layout = read_netx_file(path, 1.0)
    fixed = layout.fixed
    src_name = fixed.inputs[0].name
    x = np.asarray(inputs[src_name]).reshape(np.shape(inputs[src_name])[0], -1)[:steps] != 0
    if x.shape != (steps, fixed.inputs[0].size):
        raise NetworkError(f"inputs.{src_name}", f"expected shape ({steps}, {fixed.inputs[0].size}), got {x.shape}")
    t0 = time.perf_counter()
    net = netx.Network(net_config=os.fspath(path))
    in_shape = tuple(net.inp.shape)[::-1]  # NetX's (X, Y, C) as (C, H, W)
    source = lava.RingBufferSource(data=to_netx_order(x, in_shape).astype(np.int32))
    source.s_out.connect(net.inp)
    monitors = {}
    for pop, layer in zip(fixed.populations, net.layers):
        probes = [("s", layer.neuron.s_out)] + ([("u", layer.neuron.u), ("v", layer.neuron.v)] if traces else [])
        for var, target in probes:
            mon = lava.Monitor()
            mon.probe(target, steps)
            monitors[(pop.name, var)] = (mon, layer.neuron)
    with stopped(net):
        net.run(condition=lava.RunSteps(num_steps=steps), run_cfg=lava.Loihi2SimCfg(select_tag="fixed_pt"))
        data = {key: from_netx_order(mon.get_data()[proc.name][{"s": "s_out"}.get(key[1], key[1])])
                for key, (mon, proc) in monitors.items()}
    spikes, rec = {}, {}
    for pop in fixed.populations:
        s = data[(pop.name, "s")] != 0
        t, j = np.nonzero(s)
        spikes[pop.name] = SpikeTrains(t.astype(np.int64), np.zeros(len(t), np.int32), j.astype(np.int32),
                                       pop.size, steps, 1)
        if traces:
            rec[pop.name] = {f"{v}_int": np.round(data[(pop.name, v)]).astype(np.int64)[:, None, :]
                             for v in ("u", "v")}
    t, j = np.nonzero(x)
    spikes[src_name] = SpikeTrains(t.astype(np.int64), np.zeros(len(t), np.int32), j.astype(np.int32),
                                   x.shape[1], steps, 1)
    run_s = time.perf_counter() - t0
    return SimulationResult(spikes=spikes, traces=rec, timings={"run": run_s, "total": run_s},
                            backend="lava-netx-fixed_pt",
                            dtype="int32", dt=fixed.dt, steps=steps, batch=1, seed=0,
                            meta={"populations": [p.name for p in fixed.populations]})
