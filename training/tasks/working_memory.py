"""Working-memory tasks of the LSNN / e-prop papers: store and recall, evidence accumulation."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurosim.errors import NetworkError

from .base import (Split, Task, balanced_labels, bernoulli_spikes, channel_groups, float_option, int_option,
                   resolve_options, sample_count, spike_probability, split_rngs, step_mask, steps_option)


STORE_RECALL_DEFAULTS: dict[str, Any] = dict(n_bits=1, pop_size=25, rate=50.0, dt=1e-3, slot=0.02, n_slots=10,
                                            delay=(2, 6), distractors=True)


def store_recall(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Store-and-recall (Bellec et al. 2018, NeurIPS, "Long short-term memory and learning-to-learn
    in networks of spiking neurons"; reference code IGITUGraz/LSNN-official,
    ``bin/tutorial_storerecall_with_LSNN.py``).

    A trial is ``n_slots`` slots of ``slot`` seconds. Input groups of ``pop_size`` neurons, in
    channel order: for each bit i a VALUE-i=0 and a VALUE-i=1 group, then STORE, then RECALL. In
    every slot but the last, each bit shows a random value (its VALUE group fires at ``rate``; the
    other is silent) when ``distractors`` is on; STORE fires in one slot, ``d`` slots before the
    last, ``d`` uniform in ``delay`` (inclusive); RECALL fires in the last slot, where no value is
    shown. Target: the bits shown in the STORE slot, as the label ``sum_i bit_i 2**i``
    (``n_out = 2**n_bits``). Loss mask: the RECALL slot.

    | option | default | LSNN tutorial |
    |---|---|---|
    | n_bits | 1 (1..8) | 1 (two characters) |
    | pop_size | 25 (n_in = (2 n_bits + 2) pop_size = 100) | 25 (n_in = 100) |
    | rate | 50 Hz | f0 = 50 Hz |
    | dt | 1e-3 s | 1 ms |
    | slot | 0.02 s (20 steps) | tau_char = 200 ms |
    | n_slots | 10 (T = 200 steps) | seq_len = 12 |
    | delay | (2, 6) slots | random store/recall, expected delay 6 |
    | distractors | True | values shown in every slot |

    Differences from the tutorial, so that the loss mask is one (T,) array: exactly one STORE and
    one RECALL per trial, RECALL always in the last slot. Bar: recall accuracy 0.95, the
    tutorial's stopping criterion (recall error < 5 %). Sizes: 512 train / 256 test.
    """
    name = "store_recall"
    o = resolve_options(name, STORE_RECALL_DEFAULTS, options)
    n_bits = int_option(name, "n_bits", o["n_bits"], 1, 8)
    pop = int_option(name, "pop_size", o["pop_size"], 1)
    dt = float_option(name, "dt", o["dt"], 0.0)
    p = spike_probability(name, "rate", float_option(name, "rate", o["rate"], 0.0), dt)
    slot = steps_option(name, "slot", o["slot"], dt)
    n_slots = int_option(name, "n_slots", o["n_slots"], 2)
    delay = o["delay"]
    if (not isinstance(delay, (tuple, list)) or len(delay) != 2
            or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in delay)
            or not 1 <= delay[0] <= delay[1] <= n_slots - 1):
        raise NetworkError(f"{name}.delay", f"expected (min, max) whole slots with 1 <= min <= max <= "
                                            f"n_slots - 1 = {n_slots - 1}, got {delay!r}")
    if not isinstance(o["distractors"], (bool, np.bool_)):
        raise NetworkError(f"{name}.distractors", f"expected True or False, got {o['distractors']!r}")
    d_lo, d_hi = int(delay[0]), int(delay[1])
    n_classes = 2**n_bits
    names = [f"value{i}={v}" for i in range(n_bits) for v in (0, 1)] + ["store", "recall"]
    channels = channel_groups(names, pop)
    n_in, steps = len(names) * pop, n_slots * slot

    def split(rng: np.random.Generator, n: int) -> Split:
        label = balanced_labels(rng, n, n_classes)
        delays = rng.integers(d_lo, d_hi + 1, n)
        store = n_slots - 1 - delays
        bits = rng.integers(0, 2, (n, n_slots, n_bits))
        rows = np.arange(n)
        bits[rows, store] = (label[:, None] >> np.arange(n_bits)) & 1
        shown = np.zeros((n, n_slots, n_bits), dtype=bool)
        shown[:, :-1] = bool(o["distractors"])
        shown[rows, store] = True
        active = np.zeros((n, n_slots, len(names)), dtype=bool)       # which group fires in which slot
        for i in range(n_bits):
            active[:, :, 2 * i] = shown[:, :, i] & (bits[:, :, i] == 0)
            active[:, :, 2 * i + 1] = shown[:, :, i] & (bits[:, :, i] == 1)
        active[rows, store, 2 * n_bits] = True
        active[:, -1, 2 * n_bits + 1] = True
        prob = np.repeat(np.repeat(active.astype(np.float32) * np.float32(p), slot, axis=1), pop, axis=2)
        return Split(bernoulli_spikes(rng, prob), label, step_mask(steps, steps - slot, steps))

    r_train, r_test = split_rngs(name, seed)
    params = dict(o, delay=(d_lo, d_hi), slot_steps=slot, p_spike=p)
    return Task(name, n_in, n_classes, steps, dt, "classification",
                split(r_train, sample_count(name, "n_train", n_train, 512)),
                split(r_test, sample_count(name, "n_test", n_test, 256)),
                f"store-recall, {n_bits} bit(s): {n_slots} slots of {slot} steps; value bits stored at STORE, "
                f"reported at RECALL (last slot)", 0.95,
                "LSNN-official tutorial_storerecall_with_LSNN.py stop criterion: recall error < 0.05",
                channels, params)


# ---------------------------------------------------------------------------------------------
# evidence accumulation


EVIDENCE_DEFAULTS: dict[str, Any] = dict(scale=0.2, dt=1e-3, n_cues=7, cue=0.1, spacing=0.15, delay=1.05,
                                         recall=0.15, rate=40.0, noise_rate=10.0, pop_size=10, p_group=0.3)


def evidence(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Evidence accumulation (Bellec et al. 2020, Nat. Commun., Fig. 3; after Morcos & Harvey 2016;
    reference code IGITUGraz/eligibility_propagation, ``Figure_3_and_S7_e_prop_tutorials``).

    Four groups of ``pop_size`` input neurons, in channel order LEFT, RIGHT, RECALL, NOISE. Cue k
    (k = 0..n_cues-1) occupies ``[pause + k*spacing, pause + k*spacing + cue)`` with
    ``pause = spacing - cue``; during it the LEFT or the RIGHT group fires at ``rate``. Each trial
    favours one side (chosen with probability 1/2): every cue is on the favoured side with
    probability ``1 - p_group``. After the cues, a ``delay``, then the RECALL group fires at
    ``rate`` during the last ``recall`` seconds; NOISE fires at ``noise_rate`` throughout.
    Label: 0 if more cues were LEFT, 1 if RIGHT (``n_cues`` odd, so no ties); labels are
    balanced exactly by mirroring LEFT/RIGHT of some trials (the distribution is mirror
    symmetric). Loss mask: the recall window.

    All durations are multiplied by ``scale`` (1 = the paper). Paper values: 7 cues of 100 ms every
    150 ms, delay 1050 ms, recall 150 ms (T = 2250 ms at dt = 1 ms), 40 Hz, noise 10 Hz, 4 x 10
    neurons, p_group = 0.3. Default ``scale = 0.2``: cue 20 steps, spacing 30, delay 210,
    recall 30, T = 450 steps, n_in = 40. Sizes: 512 train / 256 test.

    Bar: accuracy 0.93, the tutorial's stopping criterion (error < 7 %).
    """
    name = "evidence"
    o = resolve_options(name, EVIDENCE_DEFAULTS, options)
    dt = float_option(name, "dt", o["dt"], 0.0)
    scale = float_option(name, "scale", o["scale"], 0.0)
    n_cues = int_option(name, "n_cues", o["n_cues"], 1)
    if n_cues % 2 == 0:
        raise NetworkError(f"{name}.n_cues", f"expected an odd number (so that one side has more cues), got {n_cues}")
    cue = steps_option(name, "cue", o["cue"], dt, scale=scale)
    spacing = steps_option(name, "spacing", o["spacing"], dt, scale=scale)
    if spacing < cue:
        raise NetworkError(f"{name}.spacing", f"expected spacing >= cue ({cue} steps), got {spacing} steps")
    delay = steps_option(name, "delay", o["delay"], dt, scale=scale, allow_zero=True)
    recall = steps_option(name, "recall", o["recall"], dt, scale=scale)
    p = spike_probability(name, "rate", float_option(name, "rate", o["rate"], 0.0), dt)
    p_noise = spike_probability(name, "noise_rate",
                                float_option(name, "noise_rate", o["noise_rate"], 0.0, lo_open=False), dt)
    pop = int_option(name, "pop_size", o["pop_size"], 1)
    p_group = float_option(name, "p_group", o["p_group"], 0.0, 0.5, lo_open=False)
    channels = channel_groups(["left", "right", "recall", "noise"], pop)
    pause = spacing - cue
    starts = pause + spacing * np.arange(n_cues)
    steps = n_cues * spacing + delay + recall

    def split(rng: np.random.Generator, n: int) -> Split:
        favoured = rng.integers(0, 2, n)
        p_right = np.where(favoured == 1, 1.0 - p_group, p_group)
        sides = (rng.random((n, n_cues)) < p_right[:, None]).astype(np.int64)   # 1 = right
        want = balanced_labels(rng, n, 2)
        flip = (sides.sum(1) > n_cues // 2).astype(np.int64) != want
        sides[flip] = 1 - sides[flip]
        side_at = np.full((n, steps), -1, dtype=np.int64)
        for k, s in enumerate(starts):
            side_at[:, s:s + cue] = sides[:, k:k + 1]
        prob = np.empty((n, steps, 4 * pop), dtype=np.float32)
        prob[:, :, 0:pop] = ((side_at == 0) * np.float32(p))[:, :, None]
        prob[:, :, pop:2 * pop] = ((side_at == 1) * np.float32(p))[:, :, None]
        prob[:, :, 2 * pop:3 * pop] = 0.0
        prob[:, steps - recall:, 2 * pop:3 * pop] = p
        prob[:, :, 3 * pop:] = p_noise
        return Split(bernoulli_spikes(rng, prob), want, step_mask(steps, steps - recall, steps))

    r_train, r_test = split_rngs(name, seed)
    params = dict(o, cue_steps=cue, spacing_steps=spacing, delay_steps=delay, recall_steps=recall,
                  cue_starts=tuple(int(s) for s in starts), p_spike=p, p_noise=p_noise)
    return Task(name, 4 * pop, 2, steps, dt, "classification",
                split(r_train, sample_count(name, "n_train", n_train, 512)),
                split(r_test, sample_count(name, "n_test", n_test, 256)),
                f"evidence accumulation: {n_cues} cues of {cue} steps every {spacing}, delay {delay}, recall "
                f"{recall} steps; label = side with more cues (0 left, 1 right)", 0.93,
                "eligibility_propagation tutorial_evidence_accumulation_with_alif.py stop criterion: error < 0.07",
                channels, params)
