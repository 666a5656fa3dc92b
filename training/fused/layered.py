"""The fused sequence path of training.layered.LayeredSNN: layer after layer, the input
projection of all T steps as one GEMM / conv / pool call, then the neuron dynamics of all T
steps as one fused call (training.fused.function).

Dense layers project event-driven where their input is sparser than the measured crossover
(training.fused.event.project). Same map as the per-step loop (training.layered.model's docstring): layer l reads its source's
spikes of step t - 1, so its whole input sequence is op_l applied to the source sequence
shifted by one step (zeros at t = 0, the initial state's spikes). A recurrent (rdense) layer
adds ``z[t-1] @ W_rec`` step by step and runs the fused kernel one step per call, the state
chained through the calls with its gradient. Recorded fields other than z and v, and devices
without a kernel, keep the per-step path (:func:`unsupported` says why).

From a given state (``state=``), step 0 reads that state's spike history instead of rest, and
the gradient reaches the state: truncated BPTT runs its chunks and budgeted BPTT its blocks
this way (training.rules.bptt, training.rules.budgeted).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from neurosim.models import NeuronState

from ..layers import SNNState
from .event import project
from .function import Constants, available, fused_dynamics, surrogate_args
from .recurrent import recurrent_sequence
from .kernels import SURROGATES, KernelKey

KINDS = {"lif": "lif", "if": "lif", "alif": "alif", "li": "li"}


def unsupported(model: Any, src: torch.Tensor, record: Sequence[str], from_state: bool = False) -> Optional[str]:
    """None when :func:`fused_forward` can run `model` on `src` recording `record` (from rest, or
    with `from_state` from a given state); else why not."""
    overridden = model.overridden_step()
    if overridden:  # e.g. training.quantized's fixed-point model: its own step is its forward pass
        return f"{type(model).__name__} overrides {', '.join(overridden)}; the fused path runs LayeredSNN's step"
    if not available(src.device):
        return f"no fused kernel for device {src.device.type!r}"
    if model.surrogate not in SURROGATES:
        return f"no fused kernel for surrogate {model.surrogate!r}"
    if any(k not in ("z", "v") for k in record):
        return "only z and v are recorded by the fused path"
    if src.shape[0] < (1 if from_state else 2):
        return f"fewer than {1 if from_state else 2} steps"
    for b in model.blocks:
        s = b["spec"]
        if s.neuron not in KINDS:
            return f"layer {s.name}: no fused kernel for neuron {s.neuron!r}"
    return None


def fused_forward(model: Any, src: torch.Tensor, record: Sequence[str], v_of: Optional[str] = None,
                  state: Optional[SNNState] = None) -> tuple[dict[str, torch.Tensor], SNNState]:
    """({field: (T, B, N)} for `record` (z, v), final state) of `model` on inputs `src` (T, B, S);
    equal to training.layers.run_recorded(model.step, state, ...) from `state` (default: the
    initial state, at rest), except the final a of non-ALIF neurons, which the kernels do not
    track (it stays the incoming a; nothing reads it). With `v_of` (a layer name), v is that
    layer's alone (T, B, n): the other layers neither build nor concatenate theirs, and their
    backward reads no zero gradient of it. From a given state, gradients reach its i, v, a and
    spike history (the input channels only with model.input_grad or inputs that require grad),
    as through the per-step chain; that is how truncated and budgeted BPTT run their chunks and
    blocks fused (training.rules)."""
    T, B, _ = src.shape
    if T < (1 if state is not None else 2):  # from rest, the one-step shift below needs a step to shift
        raise ValueError("the fused path needs at least 2 steps from rest, 1 from a given state")
    dtype = model.v0.dtype
    src = src.to(dtype)
    lag = 0 if state is not None else 1  # from rest, step 0 has no input: nothing spiked before it
    p = model.params
    sp = surrogate_args(model.surrogate, model.spike_fn.params)
    zs: list[torch.Tensor] = []
    vs: list[torch.Tensor] = []
    fin: list[Any] = []
    for k, b in enumerate(model.blocks):
        s = b["spec"]
        lo, hi = model.slices[s.name]
        n = hi - lo
        pre = src if b["src"] is None else zs[b["src"]]
        seq = pre[:-1]  # step t reads t - 1
        if state is not None:  # step 0 reads the state's spike history
            a, z = model.source_columns(k)
            before = state.history[0][:, a:z]
            if b["src"] is None and not (model.input_grad or src.requires_grad):
                before = before.detach()  # as LayeredSNN.step: no gradient to the input channels
            seq = torch.cat([before[None].to(dtype), seq])
        steps = T - lag
        flat = seq.reshape(steps * B, -1)
        if s.kind in ("dense", "rdense"):  # event-driven below the measured crossover density (training.fused.event)
            x = project(flat, model.weights[s.name]).reshape(steps, B, n)
        else:
            x = model.layer_input(k, flat).reshape(steps, B, n)
        refr = model.p_refractory[lo:hi]
        key = KernelKey(KINDS[s.neuron], s.neuron != "li" and s.reset == "zero", bool((refr > 0).any()),
                        model.surrogate)
        fixed = [getattr(model, f"p_{f}")[lo:hi] for f in ("alpha", "gain", "rho", "adapt", "adapt_gain", "refractory")]
        if state is None:
            zero = torch.zeros(B, n, dtype=dtype)
            c = Constants(*fixed, zero, zero, zero, zero, zero)
        else:
            st = state.neurons
            c = Constants(*fixed, st.i[:, lo:hi], st.v[:, lo:hi], st.a[:, lo:hi], st.z[:, lo:hi], st.r[:, lo:hi])
        want_v = "v" in record and v_of in (None, s.name)
        if s.kind == "rdense":
            z, v, f = recurrent_sequence(x, model.weights[f"{s.name}_rec"], p.bias[lo:hi], p.beta[lo:hi],
                                         p.theta[lo:hi], key, c, sp, want_v, lag=lag)
        else:
            z, v, f = fused_dynamics(x, p.bias[lo:hi], p.beta[lo:hi], p.theta[lo:hi], key, c, sp, lag=lag,
                                     want_v=want_v)
        zs.append(z)
        vs.append(v)
        fin.append(f)
    cat = lambda parts: torch.cat(parts, dim=-1)  # noqa: E731
    z_last = cat([z[-1] for z in zs])
    neurons = NeuronState(cat([f.i for f in fin]), cat([f.v for f in fin]), cat([f.a for f in fin]), z_last,
                          cat([f.r for f in fin]))
    state = SNNState(neurons, (torch.cat([z_last, src[-1]], dim=1),))
    fields = {"z": zs, "v": vs if v_of is None else [v for v in vs if v.numel()]}
    return {k: cat(fields[k]) for k in record}, state


def applies(model: Any, inputs: torch.Tensor, readout: str, from_state: bool = False) -> bool:
    """Whether the fused path runs layered `model` on `inputs` (T, B, ...) reading out layer
    `readout` (not a layered model, fused off, or :func:`unsupported`: False)."""
    if not (getattr(model, "fused", False) and hasattr(model, "blocks") and readout in model.slices):
        return False
    src = inputs.reshape(inputs.shape[0], inputs.shape[1], -1)
    return src.shape[2] == model.n_sources and unsupported(model, src, ("v",), from_state) is None


def readout_sequence(model: Any, inputs: torch.Tensor, readout: str) -> Optional[torch.Tensor]:
    """The potentials v (T, B, n) of layer `readout` of a layered `model` by the fused path, or
    None where that path does not apply (:func:`applies`)."""
    if not applies(model, inputs, readout):
        return None
    return readout_block(model, inputs, readout)[0]


def readout_block(model: Any, inputs: torch.Tensor, readout: str, state: Optional[SNNState] = None
                  ) -> tuple[torch.Tensor, SNNState]:
    """(v (T, B, n) of layer `readout`, final state) of a layered `model` on `inputs` from `state`
    (default: rest) by the fused path; the caller checks :func:`applies` first."""
    src = inputs.reshape(inputs.shape[0], inputs.shape[1], -1)
    stacked, final = fused_forward(model, src, ("v",), v_of=readout, state=state)
    return stacked["v"], final
