"""Models of Sparse Attentive Backtracking (Ke et al., NeurIPS 2018): a recurrent cell, an attention
over stored microstates with a top-k sparsifier, and a linear readout.

Per step t (batch B, hidden size H, M_t microstates stored so far)::

    h~_t = cell(x_t, state_{t-1})                     provisional state (LSTM: h; LIF/ALIF: membrane v)
    a_t^i = w . tanh(W_q h~_t + W_k m^i + b_k)         score of microstate m^i, i = 1 .. M_t
    p_t  = sparsify(a_t, k_top)                        at most k_top nonzero weights, summing to 1
    h_t  = h~_t + sum_i p_t^i m^i                      the summary is added to the provisional state
    y_t  = W_o h_t + b_o                               readout
    m^{M_t + 1} = h_t    after every step with (t + 1) % k_att == 0

Sparsifiers (:func:`sparsify`): ``topk`` (default) keeps exactly the min(k, M) largest scores and
renormalises them by a softmax over those scores (all others exactly 0); ``shift`` is the
reference code's rule, ``relu(a - a_(k)) / (sum + 1e-7)`` with a_(k) the k-th largest score, which
keeps at most k - 1 weights (plain softmax while M <= k); ``none`` is a dense softmax (no
sparsity; for tests and ablations). Unselected microstates get exactly zero weight and so exactly
zero gradient, through the summary and through the scores alike.

The spiking cell is the canonical neuron step of :mod:`neurosim.models` through
:class:`training.layers.SNN` (a recurrent LIF or ALIF layer of ``training.nets.recurrent_network``
without its readout population). As the LSTM's h (and not its cell state c), its provisional state
is the layer's output: the spike vector z_t sent on the recurrent synapses and to the readout. The
summary is added to what is sent (a graded signal alongside the 0/1 spikes); the neurons' own
state (i, v, a, z, r) is untouched, so the canonical step and its spike/reset/adaptation rules are
exactly those of the simulator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_map

from neurosim.errors import NeurosimError

SPARSIFIERS = ("topk", "shift", "none")


def sparsify(scores: torch.Tensor, k: int, kind: str = "topk") -> torch.Tensor:
    """Attention weights (B, M) from scores (B, M); see the module docstring for the kinds."""
    m = scores.shape[1]
    if kind == "none" or m <= k:
        return torch.softmax(scores, dim=1)
    if kind == "topk":
        vals, idx = scores.topk(k, dim=1)
        return torch.zeros_like(scores).scatter(1, idx, torch.softmax(vals, dim=1))
    if kind == "shift":
        delta = scores.topk(k, dim=1).values[:, -1:]
        w = torch.relu(scores - delta)
        return w / (w.sum(1, keepdim=True) + 1e-7)
    raise NeurosimError(f"sparsifier: expected one of {', '.join(SPARSIFIERS)}, got {kind!r}")


def detach_tree(state: Any) -> Any:
    """`state` (tensors in tuples and named tuples) with every tensor detached."""
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, state)


class LSTMCell(nn.Module):
    """torch's LSTMCell; state (h, c), provisional state h. The forget gates' bias starts at
    `forget_bias` (split: all of it in bias_ih, bias_hh's forget part 0)."""

    def __init__(self, n_in: int, hidden: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(n_in, hidden)
        with torch.no_grad():
            self.lstm.bias_ih[hidden:2 * hidden].fill_(forget_bias)
            self.lstm.bias_hh[hidden:2 * hidden].zero_()
        self.hidden_size = hidden

    def initial(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.lstm.weight_hh.new_zeros(batch, self.hidden_size)
        return (z, z.clone())

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lstm(x, state)

    def hidden(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return state[0]

    def with_hidden(self, state: tuple[torch.Tensor, torch.Tensor], h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (h, state[1])


class SpikingCell(nn.Module):
    """A recurrent LIF or ALIF layer run by :meth:`training.layers.SNN.step` (the canonical step with
    a surrogate-gradient spike); state: ``SNNState``; provisional state: the spikes z_t the layer
    sends through its recurrent synapses (and to the readout) at the next step."""

    def __init__(self, n_in: int, hidden: int, model: str = "lif", *, dt: float = 1e-3, tau_adapt: float = 0.2,
                 adapt: float = 1.8, surrogate: str = "fast_sigmoid", seed: int = 0) -> None:
        super().__init__()
        from ..layers import from_network
        from ..nets import recurrent_network

        net = recurrent_network(n_in, hidden, 1, model=model, dt=dt, tau_adapt=tau_adapt, adapt=adapt,  # type: ignore[arg-type]
                                seed=seed)
        net = net.replace(populations=tuple(p for p in net.populations if p.name == "hidden"),
                          projections=tuple(p for p in net.projections if p.post == "hidden"))
        self.snn = from_network(net, surrogate=surrogate, fused=False)
        self.hidden_size = hidden

    def initial(self, batch: int) -> Any:
        return self.snn.initial_state(batch)

    def step(self, x: torch.Tensor, state: Any) -> Any:
        return self.snn.step(state, x)

    def hidden(self, state: Any) -> torch.Tensor:
        return state.history[0][:, :self.hidden_size]  # the spikes z_t the layer sends on

    def with_hidden(self, state: Any, h: torch.Tensor) -> Any:
        sent = torch.cat([h, state.history[0][:, self.hidden_size:]], dim=1)
        return type(state)(state.neurons, (sent,) + tuple(state.history[1:]))


class Attention(nn.Module):
    """MLP attention ``a^i = w . tanh(W_q h~ + W_k m^i + b_k)`` followed by :func:`sparsify`."""

    def __init__(self, hidden: int, att_dim: int, k_top: int, sparsifier: str = "topk") -> None:
        super().__init__()
        if sparsifier not in SPARSIFIERS:
            raise NeurosimError(f"sparsifier: expected one of {', '.join(SPARSIFIERS)}, got {sparsifier!r}")
        self.query = nn.Linear(hidden, att_dim, bias=False)
        self.key = nn.Linear(hidden, att_dim)
        self.score = nn.Linear(att_dim, 1, bias=False)
        self.k_top, self.sparsifier = k_top, sparsifier

    def weights(self, h: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(B, M) weights of the microstates with keys (B, M, A) for provisional state h (B, H)."""
        scores = self.score(torch.tanh(self.query(h)[:, None, :] + keys)).squeeze(-1)
        return sparsify(scores, self.k_top, self.sparsifier)


@dataclass
class Carry:
    """The time loop's state: the cell's state, the microstates (list of (B, H)) with their keys, and
    both stacked, (B, M, H) and (B, M, A), or None while there is none."""

    state: Any
    mems: list[torch.Tensor]
    keys: list[torch.Tensor]
    mem: Optional[torch.Tensor] = None
    key: Optional[torch.Tensor] = None


class SABNet(nn.Module):
    """cell -> (attention over microstates every step) -> linear readout; `attention` None gives the
    plain recurrent network (the baselines). The time loop lives in training.methods.sab, never here."""

    def __init__(self, cell: nn.Module, n_out: int, attention: Optional[Attention], k_att: int) -> None:
        super().__init__()
        self.cell, self.attention, self.k_att = cell, attention, k_att
        self.readout = nn.Linear(cell.hidden_size, n_out)

    def carry(self, batch: int, mems: Optional[list[torch.Tensor]] = None, state: Any = None) -> Carry:
        """A carry from `state` (default: the cell's initial state) and microstates `mems`."""
        c = Carry(self.cell.initial(batch) if state is None else state, [], [])
        for m in mems or []:
            self._store(c, m)
        return c

    def _store(self, c: Carry, m: torch.Tensor) -> None:
        assert self.attention is not None
        k = self.attention.key(m)
        c.mems.append(m)
        c.keys.append(k)
        c.mem = m[:, None] if c.mem is None else torch.cat([c.mem, m[:, None]], 1)
        c.key = k[:, None] if c.key is None else torch.cat([c.key, k[:, None]], 1)

    def step(self, t: int, x: torch.Tensor, c: Carry, *, detach_mem: bool = False) -> torch.Tensor:
        """Advance `c` in place by step t with input x (B, n_in); returns the readout y_t (B, n_out).
        detach_mem: store microstates without their graph (truncated BPTT of the attention model)."""
        c.state = self.cell.step(x, c.state)
        if self.attention is None:
            return self.readout(self.cell.hidden(c.state))
        h = self.cell.hidden(c.state)
        if c.mem is not None:
            p = self.attention.weights(h, c.key)
            h = h + torch.einsum("bm,bmh->bh", p, c.mem)
            c.state = self.cell.with_hidden(c.state, h)
        if (t + 1) % self.k_att == 0:
            self._store(c, h.detach() if detach_mem else h)
        return self.readout(h)
