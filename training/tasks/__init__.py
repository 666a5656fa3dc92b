"""Bundled tasks for training spiking networks: generated on the fly or from data shipped with a
package, never downloaded.

A task is two `Split`s of spike inputs, targets and a loss mask, plus the sizes a network needs::

    task = make_task("evidence", seed=0)           # defaults: CI-sized, see each builder
    x = task.train.inputs                           # (N, T, n_in) float32, 0/1
    y = task.train.targets                          # (N,) int64 labels, or (N, T, n_out) float32
    m = task.train.loss_mask                        # (T,) bool: steps where the loss/readout counts

Conventions, common to every task:

- Time unit seconds (``dt``, durations); rates in Hz. A population firing at rate ``r`` spikes in a
  step independently with probability ``r * dt`` (Bernoulli approximation of Poisson, ``r*dt <= 1``).
- Durations given in seconds are rounded to whole steps, ``round(d / dt)``, and must give >= 1 step.
- Labels are balanced exactly (a shuffled ``arange(N) % n_classes``) wherever the generator chooses
  them; `digits` uses a stratified split.
- Deterministic in ``seed``; the train and test splits draw from two independent streams spawned
  from ``SeedSequence([seed, crc32(name)])``, so ``n_test`` never changes the train split.
- Classification with ``(N,)`` labels: read out over the masked steps (e.g. mean logits), then
  argmax. Classification with per-step one-hot targets ``(N, T, n_out)``: argmax at every masked
  step (`Split.per_step`).
- Arrays are plain writable numpy arrays (so ``torch.from_numpy`` works without a copy); treat them
  as read-only.

Errors name the option: ``make_task("evidence", n_cues=6)`` raises ``NetworkError`` with field
``evidence.n_cues``; an unknown option or task name lists the expected ones.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np

from neurosim.errors import NetworkError

Kind = Literal["classification", "regression"]


@dataclass(frozen=True, eq=False)
class Split:
    """One split. `inputs` (N, T, n_in) float32 spikes 0/1; `targets` (N,) int64 class labels or
    (N, T, n_out) float32 per-step targets (the task says which); `loss_mask` (T,) bool."""

    inputs: np.ndarray
    targets: np.ndarray
    loss_mask: np.ndarray

    def __post_init__(self) -> None:
        x, y, m = self.inputs, self.targets, self.loss_mask
        if x.ndim != 3:
            raise NetworkError("split.inputs", f"expected shape (N, T, n_in), got {x.shape}")
        if m.shape != (x.shape[1],) or m.dtype != np.bool_:
            raise NetworkError("split.loss_mask", f"expected bool of shape ({x.shape[1]},), got {m.dtype} {m.shape}")
        if y.shape[0] != x.shape[0] or y.ndim not in (1, 3) or (y.ndim == 3 and y.shape[1] != x.shape[1]):
            raise NetworkError("split.targets", f"expected (N,) or (N, T, n_out) with N, T = {x.shape[:2]}, "
                                                f"got {y.shape}")

    @property
    def per_step(self) -> bool:
        """True when targets are per step, (N, T, n_out)."""
        return self.targets.ndim == 3

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True, eq=False)
class Task:
    """A task: sizes, time step (s), both splits, and the score a trained model should reach.

    `bar` is accuracy over test samples (per recall window for per-step targets); `bar_source`
    says where it comes from. `channels` maps each input group to its ``(start, stop)`` channels;
    `params` holds every resolved option and the derived step counts. `windows`: the ``[lo, hi)``
    step ranges scored as one answer each for per-step class targets (empty: every masked step is
    one answer); training.scoring.score is the one definition of accuracy.
    """

    name: str
    n_in: int
    n_out: int
    steps: int
    dt: float
    kind: Kind
    train: Split
    test: Split
    description: str
    bar: float
    bar_source: str
    channels: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    windows: tuple[tuple[int, int], ...] = ()


# ---------------------------------------------------------------------------------------------
# option checking and shared helpers


def _resolve(name: str, defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise NetworkError(f"{name}.{unknown[0]}", f"unknown option; expected one of {sorted(defaults)}")
    return {**defaults, **options}


def _int(name: str, key: str, v: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise NetworkError(f"{name}.{key}", f"expected a whole number {rng}, got {v!r}")
    return int(v)


def _float(name: str, key: str, v: Any, lo: float, hi: float = np.inf, lo_open: bool = True) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v)
    if not ok or v > hi or v < lo or (lo_open and v == lo):
        low = f"{'>' if lo_open else '>='} {lo}"
        raise NetworkError(f"{name}.{key}", f"expected a finite number {low}" +
                           (f" and <= {hi}" if np.isfinite(hi) else "") + f", got {v!r}")
    return float(v)


def _choice(name: str, key: str, v: Any, allowed: tuple[str, ...]) -> str:
    if v not in allowed:
        raise NetworkError(f"{name}.{key}", f"expected one of {list(allowed)}, got {v!r}")
    return str(v)


def _steps(name: str, key: str, seconds: Any, dt: float, *, scale: float = 1.0, allow_zero: bool = False) -> int:
    """A duration in seconds (times `scale`) as a whole number of steps, round(d / dt)."""
    n = int(round(_float(name, key, seconds, 0.0, lo_open=not allow_zero) * scale / dt))
    if n < 1 and not allow_zero:
        raise NetworkError(f"{name}.{key}", f"expected at least one step (dt = {dt} s, scale = {scale}), "
                                            f"got {seconds!r} s")
    return n


def _prob(name: str, key: str, rate: float, dt: float) -> float:
    if rate * dt > 1.0:
        raise NetworkError(f"{name}.{key}", f"expected rate * dt <= 1 (dt = {dt} s), got {rate} Hz")
    return rate * dt


def _rngs(name: str, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    train, test = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(test)


def _balanced(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def _spikes(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Independent Bernoulli spikes with per-entry probability `p`, as float32 0/1."""
    return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)


def _regular_spikes(p: np.ndarray) -> np.ndarray:
    """Deterministic rate code along axis 1 (time): channel c spikes at t when
    ``floor(P[t] + 1/2)`` steps up, ``P[t] = sum_{u <= t} p[u]`` (each count within 1 of the
    expected count over any window), as float32 0/1. Needs p in [0, 1]."""
    c = np.floor(np.cumsum(p, axis=1, dtype=np.float64) + 0.5)
    return np.diff(c, axis=1, prepend=0.0).astype(np.float32)


def _groups(names: list[str], size: int) -> dict[str, tuple[int, int]]:
    return {g: (i * size, (i + 1) * size) for i, g in enumerate(names)}


def _mask(steps: int, start: int, stop: int) -> np.ndarray:
    m = np.zeros(steps, dtype=bool)
    m[start:stop] = True
    return m


# ---------------------------------------------------------------------------------------------
# store and recall


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
    o = _resolve(name, STORE_RECALL_DEFAULTS, options)
    n_bits = _int(name, "n_bits", o["n_bits"], 1, 8)
    pop = _int(name, "pop_size", o["pop_size"], 1)
    dt = _float(name, "dt", o["dt"], 0.0)
    p = _prob(name, "rate", _float(name, "rate", o["rate"], 0.0), dt)
    slot = _steps(name, "slot", o["slot"], dt)
    n_slots = _int(name, "n_slots", o["n_slots"], 2)
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
    channels = _groups(names, pop)
    n_in, steps = len(names) * pop, n_slots * slot

    def split(rng: np.random.Generator, n: int) -> Split:
        label = _balanced(rng, n, n_classes)
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
        return Split(_spikes(rng, prob), label, _mask(steps, steps - slot, steps))

    r_train, r_test = _rngs(name, seed)
    params = dict(o, delay=(d_lo, d_hi), slot_steps=slot, p_spike=p)
    return Task(name, n_in, n_classes, steps, dt, "classification",
                split(r_train, _n(name, "n_train", n_train, 512)), split(r_test, _n(name, "n_test", n_test, 256)),
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
    o = _resolve(name, EVIDENCE_DEFAULTS, options)
    dt = _float(name, "dt", o["dt"], 0.0)
    scale = _float(name, "scale", o["scale"], 0.0)
    n_cues = _int(name, "n_cues", o["n_cues"], 1)
    if n_cues % 2 == 0:
        raise NetworkError(f"{name}.n_cues", f"expected an odd number (so that one side has more cues), got {n_cues}")
    cue = _steps(name, "cue", o["cue"], dt, scale=scale)
    spacing = _steps(name, "spacing", o["spacing"], dt, scale=scale)
    if spacing < cue:
        raise NetworkError(f"{name}.spacing", f"expected spacing >= cue ({cue} steps), got {spacing} steps")
    delay = _steps(name, "delay", o["delay"], dt, scale=scale, allow_zero=True)
    recall = _steps(name, "recall", o["recall"], dt, scale=scale)
    p = _prob(name, "rate", _float(name, "rate", o["rate"], 0.0), dt)
    p_noise = _prob(name, "noise_rate", _float(name, "noise_rate", o["noise_rate"], 0.0, lo_open=False), dt)
    pop = _int(name, "pop_size", o["pop_size"], 1)
    p_group = _float(name, "p_group", o["p_group"], 0.0, 0.5, lo_open=False)
    channels = _groups(["left", "right", "recall", "noise"], pop)
    pause = spacing - cue
    starts = pause + spacing * np.arange(n_cues)
    steps = n_cues * spacing + delay + recall

    def split(rng: np.random.Generator, n: int) -> Split:
        favoured = rng.integers(0, 2, n)
        p_right = np.where(favoured == 1, 1.0 - p_group, p_group)
        sides = (rng.random((n, n_cues)) < p_right[:, None]).astype(np.int64)   # 1 = right
        want = _balanced(rng, n, 2)
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
        return Split(_spikes(rng, prob), want, _mask(steps, steps - recall, steps))

    r_train, r_test = _rngs(name, seed)
    params = dict(o, cue_steps=cue, spacing_steps=spacing, delay_steps=delay, recall_steps=recall,
                  cue_starts=tuple(int(s) for s in starts), p_spike=p, p_noise=p_noise)
    return Task(name, 4 * pop, 2, steps, dt, "classification",
                split(r_train, _n(name, "n_train", n_train, 512)), split(r_test, _n(name, "n_test", n_test, 256)),
                f"evidence accumulation: {n_cues} cues of {cue} steps every {spacing}, delay {delay}, recall "
                f"{recall} steps; label = side with more cues (0 left, 1 right)", 0.93,
                "eligibility_propagation tutorial_evidence_accumulation_with_alif.py stop criterion: error < 0.07",
                channels, params)


# ---------------------------------------------------------------------------------------------
# delayed XOR and delayed copy


SEQUENCE_DEFAULTS: dict[str, Any] = dict(dt=1e-3, burst=0.02, gap=0.02, delay=0.1, recall=0.02, rate=50.0,
                                         noise_rate=10.0, pop_size=10)


def _sequence_layout(name: str, o: dict[str, Any], length: int, n_recall: int) -> dict[str, Any]:
    dt = _float(name, "dt", o["dt"], 0.0)
    burst, gap = _steps(name, "burst", o["burst"], dt), _steps(name, "gap", o["gap"], dt)
    delay = _steps(name, "delay", o["delay"], dt, allow_zero=True)
    recall = _steps(name, "recall", o["recall"], dt)
    return dict(dt=dt, burst=burst, gap=gap, delay=delay, recall=recall,
                starts=tuple(gap + k * (gap + burst) for k in range(length)),
                recall_start=length * (gap + burst) + delay, steps=length * (gap + burst) + delay + n_recall * recall,
                p=_prob(name, "rate", _float(name, "rate", o["rate"], 0.0), dt),
                p_noise=_prob(name, "noise_rate", _float(name, "noise_rate", o["noise_rate"], 0.0, lo_open=False), dt),
                pop=_int(name, "pop_size", o["pop_size"], 1))


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
    return _spikes(rng, prob)


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
    o = _resolve(name, SEQUENCE_DEFAULTS, options)
    lay = _sequence_layout(name, o, 2, 1)

    def split(rng: np.random.Generator, n: int) -> Split:
        pair = _balanced(rng, n, 4)
        symbols = np.stack([pair >> 1, pair & 1], axis=1)
        label = (symbols[:, 0] ^ symbols[:, 1]).astype(np.int64)
        mask = _mask(lay["steps"], lay["recall_start"], lay["steps"])
        return Split(_sequence_inputs(rng, symbols, 2, lay), label, mask)

    r_train, r_test = _rngs(name, seed)
    pop = lay["pop"]
    return Task(name, 4 * pop, 2, lay["steps"], lay["dt"], "classification",
                split(r_train, _n(name, "n_train", n_train, 512)), split(r_test, _n(name, "n_test", n_test, 256)),
                f"delayed XOR: two bit bursts of {lay['burst']} steps, delay {lay['delay']}, GO {lay['recall']} steps; "
                f"label = a XOR b", 0.95, "own criterion (no paper); chance 0.5",
                _groups(["bit=0", "bit=1", "go", "noise"], pop), dict(o, **_layout_params(lay)))


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
    o = _resolve(name, COPY_DEFAULTS, options)
    length = _int(name, "length", o["length"], 1)
    n_sym = _int(name, "n_symbols", o["n_symbols"], 2)
    lay = _sequence_layout(name, o, length, length)
    steps, rs, rec = lay["steps"], lay["recall_start"], lay["recall"]

    def split(rng: np.random.Generator, n: int) -> Split:
        symbols = rng.integers(0, n_sym, (n, length))
        target = np.zeros((n, steps, n_sym), dtype=np.float32)
        for k in range(length):
            target[:, rs + k * rec:rs + (k + 1) * rec, :] = np.eye(n_sym, dtype=np.float32)[symbols[:, k]][:, None, :]
        return Split(_sequence_inputs(rng, symbols, n_sym, lay), target, _mask(steps, rs, steps))

    r_train, r_test = _rngs(name, seed)
    pop = lay["pop"]
    return Task(name, (n_sym + 2) * pop, n_sym, steps, lay["dt"], "classification",
                split(r_train, _n(name, "n_train", n_train, 512)), split(r_test, _n(name, "n_test", n_test, 256)),
                f"delayed copy: {length} of {n_sym} symbols as bursts of {lay['burst']} steps, delay {lay['delay']}, "
                f"then {length} recall windows of {rec} steps; per-step one-hot targets", 0.95,
                "own criterion (no paper); chance 1/n_symbols",
                _groups([f"sym={s}" for s in range(n_sym)] + ["go", "noise"], pop),
                dict(o, **_layout_params(lay)), tuple((rs + k * rec, rs + (k + 1) * rec) for k in range(length)))


def _layout_params(lay: dict[str, Any]) -> dict[str, Any]:
    return dict(burst_steps=lay["burst"], gap_steps=lay["gap"], delay_steps=lay["delay"],
                recall_steps=lay["recall"], burst_starts=lay["starts"], recall_start=lay["recall_start"],
                p_spike=lay["p"], p_noise=lay["p_noise"])


# ---------------------------------------------------------------------------------------------
# digits


DIGITS_DEFAULTS: dict[str, Any] = dict(mode="rows", row_steps=10, pixel_steps=1, steps=20, gain=1.0, dt=1e-3,
                                       coding="poisson", loss_steps=None)
N_DIGITS = 1797  # sklearn.datasets.load_digits: 1797 8x8 images, intensities 0..16


def digit_images(seed: int, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits and the split every digits task uses: (images
    (1797, 8, 8) float32 in [0, 1], labels int64, train indices, test indices) from
    ``train_test_split(stratify=label, random_state=seed % 2**32)``. Sizes are checked by the caller."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise NetworkError("digits", "needs scikit-learn (the 'train' extra: pip install neurosim[train])") from e

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    labels = data.target.astype(np.int64)
    tr_idx, te_idx = train_test_split(np.arange(N_DIGITS), train_size=n_train, test_size=n_test, stratify=labels,
                                      random_state=seed % 2**32)
    return images, labels, tr_idx, te_idx


def digits(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Sequential or static digits from scikit-learn's bundled 8x8 digits
    (``sklearn.datasets.load_digits``: 1797 images, intensities x in 0..16, shipped with sklearn).

    Rate coding at ``p = gain * x / 16`` per step for a pixel of intensity x (max rate ``gain / dt``):
    ``coding="poisson"`` (default) spikes independently with probability p in each step of the
    presentation; ``coding="regular"`` spikes deterministically whenever the running sum of p
    passes the next half-integer, so each presentation window carries within one spike of its
    expected count (no sampling noise: the linear oracle below rises from 0.91 to 0.96 on rows).

    | mode | presentation | T (default) | n_in | loss mask |
    |---|---|---|---|---|
    | rows (default) | row r, 8 pixels, steps [r, r+1) * row_steps | 8 row_steps (80) | 8 | last row |
    | pixels | pixel i (row-major), steps [i, i+1) * pixel_steps | 64 pixel_steps (64) | 1 | last pixel |
    | static | all 64 pixels during all `steps` | steps (20) | 64 | all steps |

    Sequential modes read out after the whole image has been seen; static reads out everywhere.
    ``loss_steps`` (1..T) widens or narrows the loss mask to the last `loss_steps` steps: T puts an
    instantaneous loss on every step, the per-step loss of OTTT's and rate-based BP's papers.
    Train/test: ``train_test_split(stratify=label, random_state=seed % 2**32)``, 1437 / 360 by default
    (``n_train, n_test >= 10``, ``n_train + n_test <= 1797``). Label: the digit (n_out = 10).

    Bar: 0.90 (rows, static), 0.80 (pixels): our own criterion, below what a logistic regression on
    the spike counts of each presentation window reaches at the defaults (tests/test_tasks.py).
    """
    name = "digits"
    o = _resolve(name, DIGITS_DEFAULTS, options)
    mode = _choice(name, "mode", o["mode"], ("rows", "pixels", "static"))
    coding = _choice(name, "coding", o["coding"], ("poisson", "regular"))
    dt = _float(name, "dt", o["dt"], 0.0)
    gain = _float(name, "gain", o["gain"], 0.0, 1.0)
    row_steps = _int(name, "row_steps", o["row_steps"], 1)
    pixel_steps = _int(name, "pixel_steps", o["pixel_steps"], 1)
    n_steps = _int(name, "steps", o["steps"], 1)
    n_tr = _n(name, "n_train", n_train, 1437)
    n_te = _n(name, "n_test", n_test, 360, lo=10)
    if n_tr < 10 or n_tr + n_te > N_DIGITS:
        raise NetworkError(f"{name}.n_train", f"expected n_train >= 10 and n_train + n_test <= {N_DIGITS}, "
                                              f"got {n_tr} + {n_te}")
    images, labels, tr_idx, te_idx = digit_images(seed, n_tr, n_te)
    if mode == "rows":
        steps, n_in, readout = 8 * row_steps, 8, row_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.repeat(img, row_steps, axis=1)                   # (n, 8 rows * row_steps, 8)
    elif mode == "pixels":
        steps, n_in, readout = 64 * pixel_steps, 1, pixel_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.repeat(img.reshape(-1, 64, 1), pixel_steps, axis=1)
    else:
        steps, n_in, readout = n_steps, 64, n_steps

        def prob(img: np.ndarray) -> np.ndarray:
            return np.broadcast_to(img.reshape(-1, 1, 64), (img.shape[0], n_steps, 64))

    if o["loss_steps"] is not None:
        readout = _int(name, "loss_steps", o["loss_steps"], 1, steps)

    def split(rng: np.random.Generator, idx: np.ndarray) -> Split:
        p = prob(images[idx] * np.float32(gain))
        spikes = _spikes(rng, p) if coding == "poisson" else _regular_spikes(p)
        return Split(spikes, labels[idx], _mask(steps, steps - readout, steps))

    r_train, r_test = _rngs(name, seed)
    return Task(name, n_in, 10, steps, dt, "classification", split(r_train, tr_idx), split(r_test, te_idx),
                f"sklearn 8x8 digits, mode {mode!r}, {coding} rate code (p = {gain} x / 16 per step); label = digit",
                0.80 if mode == "pixels" else 0.90,
                "own criterion, below the logistic-regression oracle on spike counts (tests/test_tasks.py)",
                {"pixels": (0, n_in)}, dict(o, steps=steps, readout_steps=readout,
                                            train_index=tr_idx, test_index=te_idx))


# ---------------------------------------------------------------------------------------------
# copy memory and adding (Hochreiter & Schmidhuber 1997; the setups of Ke et al. 2018, SAB)


COPY_MEMORY_DEFAULTS: dict[str, Any] = dict(T=100, n_copy=10, n_symbols=8, dt=1e-3)


def copy_memory(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Copy memory (the SAB paper's copy task): ``n_copy`` symbols drawn uniformly from an alphabet
    of ``n_symbols``, one per step, then ``T - 1`` blank steps, a delimiter, and ``n_copy`` blank
    steps during which the network must output the symbols in order. Steps: ``T + 2 n_copy``.
    Inputs one-hot (0/1, so spikes as well), channels: blank, symbol 1..n_symbols, delimiter
    (n_in = n_symbols + 2). Targets: per step one-hot over the ``n_symbols`` symbols in the last
    ``n_copy`` steps; loss mask: those steps. Accuracy: on the recalled characters (per step).

    Defaults: T = 100, 10 symbols to copy from 8, dt = 1 ms (only a label here). Sizes: 4096 train
    / 512 test. Bar: 0.95 per-character accuracy, our own criterion (chance 1/n_symbols).
    """
    name = "copy"
    o = _resolve(name, COPY_MEMORY_DEFAULTS, options)
    delay = _int(name, "T", o["T"], 1)
    n_copy = _int(name, "n_copy", o["n_copy"], 1)
    n_sym = _int(name, "n_symbols", o["n_symbols"], 2)
    dt = _float(name, "dt", o["dt"], 0.0)
    steps = delay + 2 * n_copy

    def split(rng: np.random.Generator, n: int) -> Split:
        symbols = rng.integers(0, n_sym, (n, n_copy))
        x = np.zeros((n, steps, n_sym + 2), dtype=np.float32)
        x[:, :, 0] = 1.0
        x[:, :n_copy, 0] = 0.0
        x[np.arange(n)[:, None], np.arange(n_copy)[None, :], 1 + symbols] = 1.0
        x[:, n_copy + delay - 1, 0] = 0.0
        x[:, n_copy + delay - 1, n_sym + 1] = 1.0
        y = np.zeros((n, steps, n_sym), dtype=np.float32)
        y[np.arange(n)[:, None], steps - n_copy + np.arange(n_copy)[None, :], symbols] = 1.0
        return Split(x, y, _mask(steps, steps - n_copy, steps))

    r_train, r_test = _rngs(name, seed)
    return Task(name, n_sym + 2, n_sym, steps, dt, "classification",
                split(r_train, _n(name, "n_train", n_train, 4096)), split(r_test, _n(name, "n_test", n_test, 512)),
                f"copy memory: {n_copy} of {n_sym} symbols, {delay - 1} blanks, delimiter, recall {n_copy} steps",
                0.95, "own criterion; the SAB paper reports per-character accuracy on this task",
                {"blank": (0, 1), "symbols": (1, n_sym + 1), "delimiter": (n_sym + 1, n_sym + 2)},
                dict(o, steps=steps))


ADDING_DEFAULTS: dict[str, Any] = dict(T=100, dt=1e-3, tolerance=0.04)


def adding(seed: int, n_train: int | None, n_test: int | None, **options: Any) -> Task:
    """Adding problem: channel 0 carries values uniform in [0, 1) (real, not spikes), channel 1
    marks two steps, one in the first half and one in the second; the target, read at the last step
    only, is the sum of the two marked values (regression, targets (N, T, 1), loss mask: last step).
    Defaults: T = 100 steps, 4096 train / 512 test. Bar: 0.95 of test sequences within ``tolerance``
    (0.04) of the sum, our own criterion (predicting 1 always gives about 0.06).
    """
    name = "adding"
    o = _resolve(name, ADDING_DEFAULTS, options)
    steps = _int(name, "T", o["T"], 2)
    dt = _float(name, "dt", o["dt"], 0.0)
    _float(name, "tolerance", o["tolerance"], 0.0)

    def split(rng: np.random.Generator, n: int) -> Split:
        x = np.zeros((n, steps, 2), dtype=np.float32)
        x[:, :, 0] = rng.random((n, steps), dtype=np.float32)
        half = steps // 2
        first, second = rng.integers(0, half, n), rng.integers(half, steps, n)
        rows = np.arange(n)
        x[rows, first, 1] = 1.0
        x[rows, second, 1] = 1.0
        y = np.zeros((n, steps, 1), dtype=np.float32)
        y[:, -1, 0] = x[rows, first, 0] + x[rows, second, 0]
        return Split(x, y, _mask(steps, steps - 1, steps))

    r_train, r_test = _rngs(name, seed)
    return Task(name, 2, 1, steps, dt, "regression",
                split(r_train, _n(name, "n_train", n_train, 4096)), split(r_test, _n(name, "n_test", n_test, 512)),
                f"adding problem over {steps} steps: sum of the two marked values, read at the last step", 0.95,
                f"own criterion: fraction of test sequences within {o['tolerance']} of the sum",
                {"values": (0, 1), "markers": (1, 2)}, dict(o))


# ---------------------------------------------------------------------------------------------
# registry


def _n(name: str, key: str, v: int | None, default: int, lo: int = 1) -> int:
    return default if v is None else _int(name, key, v, lo)


TASKS: dict[str, Callable[..., Task]] = {
    "store_recall": store_recall,
    "evidence": evidence,
    "delayed_xor": delayed_xor,
    "delayed_copy": delayed_copy,
    "digits": digits,
    "copy": copy_memory,
    "adding": adding,
}


def make_task(name: str, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
              **options: Any) -> Task:
    """Build task `name` (a key of `TASKS`) with `options` overriding its defaults (see its builder)."""
    if name not in TASKS:
        raise NetworkError("task", f"expected one of {sorted(TASKS)}, got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise NetworkError(f"{name}.seed", f"expected a whole number >= 0, got {seed!r}")
    return TASKS[name](int(seed), n_train, n_test, **options)
