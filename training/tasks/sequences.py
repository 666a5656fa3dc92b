"""Delayed XOR and delayed copy of symbol sequences."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import (Split, Task, balanced_labels, bernoulli_spikes, channel_groups, float_option, int_option,
                   resolve_options, sample_count, spike_probability, split_rngs, step_mask, steps_option)


SEQUENCE_DEFAULTS: dict[str, Any] = dict(dt=1e-3, burst=0.02, gap=0.02, delay=0.1, recall=0.02, rate=50.0,
                                         noise_rate=10.0, pop_size=10)


def _sequence_layout(name: str, o: dict[str, Any], length: int, n_recall: int) -> dict[str, Any]:
    dt = float_option(name, "dt", o["dt"], 0.0)
    burst, gap = steps_option(name, "burst", o["burst"], dt), steps_option(name, "gap", o["gap"], dt)
    delay = steps_option(name, "delay", o["delay"], dt, allow_zero=True)
    recall = steps_option(name, "recall", o["recall"], dt)
    return dict(dt=dt, burst=burst, gap=gap, delay=delay, recall=recall,
                starts=tuple(gap + k * (gap + burst) for k in range(length)),
                recall_start=length * (gap + burst) + delay, steps=length * (gap + burst) + delay + n_recall * recall,
                p=spike_probability(name, "rate", float_option(name, "rate", o["rate"], 0.0), dt),
                p_noise=spike_probability(name, "noise_rate",
                                          float_option(name, "noise_rate", o["noise_rate"], 0.0, lo_open=False), dt),
                pop=int_option(name, "pop_size", o["pop_size"], 1))


def _sequence_inputs(rng: np.random.Generator, symbols: np.ndarray, n_symbols: int, lay: dict[str, Any]) -> np.ndarray:
    n, pop, steps = symbols.shape[0], lay["pop"], lay["steps"]
    sym_at = np.full((n, steps), -1, dtype=np.int64)
    for k, s in enumerate(lay["starts"]):
        sym_at[:, s:s + lay["burst"]] = symbols[:, k:k + 1]
    prob = np.zeros((n, steps, (n_symbols + 2) * pop), dtype=np.float32)
    for c in range(n_symbols):
        prob[:, :, c * pop:(c + 1) * pop] = ((sym_at == c) * np.float32(lay["p"]))[:, :, None]
    prob[:, lay["recall_start"]:, n_symbols * pop:(n_symbols + 1) * pop] = lay["p"]
    prob[:, :, (n_symbols + 1) * pop:] = lay["p_noise"]
    return bernoulli_spikes(rng, prob)


def delayed_xor(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Delayed XOR: two bits a, b, each a ``burst`` of the BIT=0 or BIT=1 group firing at ``rate``,
    each burst preceded by a ``gap``; then a ``delay``; then the GO group fires at ``rate`` for
    ``recall`` seconds and the label is ``a XOR b``. Input groups of ``pop_size``, in channel
    order BIT=0, BIT=1, GO, NOISE (``noise_rate`` throughout). Loss mask: the GO window.

    Defaults: dt = 1 ms, burst 20 ms, gap 20 ms, delay 100 ms, recall 20 ms (T = 200 steps),
    50 Hz, noise 10 Hz, 4 x 10 neurons (n_in = 40); the four (a, b) pairs are balanced exactly.
    Sizes: 512 train / 256 test. Bar: 0.95, our own criterion (chance 0.5; an input oracle
    reaches > 0.99 at the defaults) -- not taken from a paper.
    """
    name = "delayed_xor"
    o = resolve_options(name, SEQUENCE_DEFAULTS, options)
    lay = _sequence_layout(name, o, 2, 1)

    def split(rng: np.random.Generator, n: int) -> Split:
        pair = balanced_labels(rng, n, 4)
        symbols = np.stack([pair >> 1, pair & 1], axis=1)
        label = (symbols[:, 0] ^ symbols[:, 1]).astype(np.int64)
        mask = step_mask(lay["steps"], lay["recall_start"], lay["steps"])
        return Split(_sequence_inputs(rng, symbols, 2, lay), label, mask)

    r_train, r_test = split_rngs(name, seed)
    pop = lay["pop"]
    return Task(name, 4 * pop, 2, lay["steps"], lay["dt"], "classification",
                split(r_train, sample_count(name, "n_train", n_train, 512)),
                split(r_test, sample_count(name, "n_test", n_test, 256)),
                f"delayed XOR: two bit bursts of {lay['burst']} steps, delay {lay['delay']}, GO {lay['recall']} steps; "
                f"label = a XOR b", 0.95, "own criterion (no paper); chance 0.5",
                channel_groups(["bit=0", "bit=1", "go", "noise"], pop), dict(o, **_layout_params(lay)))


COPY_DEFAULTS: dict[str, Any] = dict(SEQUENCE_DEFAULTS, length=3, n_symbols=4)


def delayed_copy(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Delayed copy: ``length`` symbols from an alphabet of ``n_symbols``, symbol k a ``burst`` of
    group SYM=s_k (each burst preceded by a ``gap``), then a ``delay``, then ``length`` recall
    windows of ``recall`` seconds each, during all of which GO fires; window k must output s_k.
    Input groups of ``pop_size``: SYM=0..SYM=n_symbols-1, GO, NOISE. Targets: per step, one-hot
    ``(N, T, n_symbols)`` float32, s_k in window k and zero elsewhere; loss mask: the recall windows.

    Defaults: length 3, 4 symbols, dt = 1 ms, burst 20 ms, gap 20 ms, delay 100 ms, recall 20 ms
    per window (T = 3*40 + 100 + 3*20 = 280 steps), 50 Hz, noise 10 Hz, 10 neurons per group
    (n_in = 60). Symbols uniform. Sizes: 512 train / 256 test. Bar: 0.95 symbol accuracy
    (per window), our own criterion (chance 1/n_symbols) -- not taken from a paper.
    """
    name = "delayed_copy"
    o = resolve_options(name, COPY_DEFAULTS, options)
    length = int_option(name, "length", o["length"], 1)
    n_sym = int_option(name, "n_symbols", o["n_symbols"], 2)
    lay = _sequence_layout(name, o, length, length)
    steps, rs, rec = lay["steps"], lay["recall_start"], lay["recall"]

    def split(rng: np.random.Generator, n: int) -> Split:
        symbols = rng.integers(0, n_sym, (n, length))
        target = np.zeros((n, steps, n_sym), dtype=np.float32)
        for k in range(length):
            target[:, rs + k * rec:rs + (k + 1) * rec, :] = np.eye(n_sym, dtype=np.float32)[symbols[:, k]][:, None, :]
        return Split(_sequence_inputs(rng, symbols, n_sym, lay), target, step_mask(steps, rs, steps))

    r_train, r_test = split_rngs(name, seed)
    pop = lay["pop"]
    return Task(name, (n_sym + 2) * pop, n_sym, steps, lay["dt"], "classification",
                split(r_train, sample_count(name, "n_train", n_train, 512)),
                split(r_test, sample_count(name, "n_test", n_test, 256)),
                f"delayed copy: {length} of {n_sym} symbols as bursts of {lay['burst']} steps, delay {lay['delay']}, "
                f"then {length} recall windows of {rec} steps; per-step one-hot targets", 0.95,
                "own criterion (no paper); chance 1/n_symbols",
                channel_groups([f"sym={s}" for s in range(n_sym)] + ["go", "noise"], pop),
                dict(o, **_layout_params(lay)), tuple((rs + k * rec, rs + (k + 1) * rec) for k in range(length)))


def _layout_params(lay: dict[str, Any]) -> dict[str, Any]:
    return dict(burst_steps=lay["burst"], gap_steps=lay["gap"], delay_steps=lay["delay"],
                recall_steps=lay["recall"], burst_starts=lay["starts"], recall_start=lay["recall_start"],
                p_spike=lay["p"], p_noise=lay["p_noise"])
