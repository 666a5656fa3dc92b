"""Training speed against the peers (issue 20, item 4): forward + backward of one batch, neurosim
and snnTorch / Norse / SpikingJelly in the same process, round-robin, medians over rounds;
ratio = peer time / neurosim time (> 1: neurosim is faster).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/peers.py [--cases ff rec conv] [--threads 1 2] [--rounds 7]
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/peers.py --crossover [--rounds 5]
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/peers.py --item2 [--rounds 5]

Cases (float32, CPU, input spikes 5% dense, fixed seed):
- ff: Linear 700 -> 1024 LIF (beta 0.9, theta 1, subtract reset), batch 32, T = 250, loss = sum of
  spikes. neurosim: training.layered ``dense(1024,neuron=lif)`` (fused path). Peers: the input
  projection of all T steps as one Linear call (their fastest form), then snnTorch ``Leaky`` and
  Norse ``LIFBoxCell`` per step, SpikingJelly 2.0 ``LIFNode`` multi-step (``step_mode='m'``).
- rec: 700 -> 256 recurrent ALIF -> 20 LI, batch 32, T = 250, loss = mean square of the readout.
  neurosim: training.layered ``rdense(256,neuron=alif),dense(20)``; Norse ``LSNNRecurrent`` +
  Linear + ``LIBoxCell``; snnTorch ``RLeaky`` + Linear + ``Leaky(reset_mechanism='none')``.
- conv: the event-digit net ``conv(16,k=5,s=2,p=2),pool(2),conv(32,k=3,p=1),pool(2),flatten,dense(10)``
  on 2 x 34 x 34 events, batch 32, T = 18 (the task's default), loss = mean square of the readout;
  every layer has LIF neurons (pools too, as in neurosim), readout LI (neurosim) / leaky without
  reset (snnTorch) / LIF membrane (SpikingJelly, ``store_v_seq``).
In rec and conv neurosim runs the path its BPTT rule trains with
(``training.fused.layered.readout_sequence``: only the readout's v is built), as the peers' loops
keep only their readout's potentials. The peers' weights are neurosim's (same matrices), so
activity is comparable.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from training.fused.layered import readout_sequence  # noqa: E402
from training.layered import LayeredSNN, parse_arch  # noqa: E402

CONV = "conv(16,k=5,s=2,p=2),pool(2),conv(32,k=3,p=1),pool(2),flatten,dense(10)"
Runner = Callable[[], None]


def spikes(T: int, B: int, shape: tuple[int, ...], density: float = 0.05, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < density).float()


def linear_from(w: torch.Tensor) -> nn.Linear:
    """nn.Linear (no bias) with neurosim's (n_in, n_out) matrix."""
    fc = nn.Linear(w.shape[0], w.shape[1], bias=False)
    with torch.no_grad():
        fc.weight.copy_(w.detach().t())
    return fc


# ------------------------------------------------------------------------------- feed-forward
def ff_cases(T: int = 250, B: int = 32) -> dict[str, Runner]:
    x = spikes(T, B, (700,))
    model = LayeredSNN(parse_arch("dense(1024,neuron=lif,beta=0.9)"), (700,), seed=0)
    w = model.weights["out"]
    out: dict[str, Runner] = {}

    def ns() -> None:
        model.zero_grad()
        o, _ = model(x, record=("z",))
        o["out"]["z"].sum().backward()
    out["neurosim"] = ns

    try:
        import snntorch as snn

        fc, lif = linear_from(w), snn.Leaky(beta=0.9, threshold=1.0)

        def st() -> None:
            fc.zero_grad()
            cur = fc(x)
            mem = lif.init_leaky()
            total = 0
            for t in range(T):
                spk, mem = lif(cur[t], mem)
                total = total + spk.sum()
            total.backward()
        out["snnTorch Leaky"] = st
    except ImportError:
        pass
    try:
        import norse.torch as nt

        fc2, cell = linear_from(w), nt.LIFBoxCell()

        def no() -> None:
            fc2.zero_grad()
            cur = fc2(x)
            s = None
            total = 0
            for t in range(T):
                z, s = cell(cur[t], s)
                total = total + z.sum()
            total.backward()
        out["Norse LIFBoxCell"] = no
    except ImportError:
        pass
    try:
        from spikingjelly.activation_based import functional, neuron

        fc3 = linear_from(w)
        node = neuron.LIFNode(tau=10.0, decay_input=False, v_reset=None, step_mode="m")

        def sj() -> None:
            fc3.zero_grad()
            functional.reset_net(node)
            node(fc3(x)).sum().backward()
        out["SpikingJelly LIFNode (m)"] = sj
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------------- recurrent
def rec_cases(T: int = 250, B: int = 32) -> dict[str, Runner]:
    x = spikes(T, B, (700,))
    model = LayeredSNN(parse_arch("rdense(256,neuron=alif,beta=0.9),dense(20,beta=0.9)"), (700,), seed=0)
    out: dict[str, Runner] = {}

    def ns() -> None:  # BPTT's own path: the readout's v alone (the peers keep only theirs too)
        model.zero_grad()
        readout_sequence(model, x, "out").pow(2).mean().backward()
    out["neurosim"] = ns

    try:
        import norse.torch as nt

        rec, fc, li = nt.LSNNRecurrent(700, 256), linear_from(model.weights["out"]), nt.LIBoxCell()

        def no() -> None:
            rec.zero_grad()
            fc.zero_grad()
            z, _ = rec(x)
            cur = fc(z)
            s, vs = None, []
            for t in range(T):
                v, s = li(cur[t], s)
                vs.append(v)
            torch.stack(vs).pow(2).mean().backward()
        out["Norse LSNNRecurrent"] = no
    except ImportError:
        pass
    try:
        import snntorch as snn

        fin = linear_from(model.weights["l1"])
        rl = snn.RLeaky(beta=0.9, linear_features=256)
        fo, ro = linear_from(model.weights["out"]), snn.Leaky(beta=0.9, reset_mechanism="none")

        def st() -> None:
            for m in (fin, rl, fo):
                m.zero_grad()
            cur = fin(x)
            spk, mem = rl.init_rleaky()
            mo = ro.init_leaky()
            vs = []
            for t in range(T):
                spk, mem = rl(cur[t], spk, mem)
                _, mo = ro(fo(spk), mo)
                vs.append(mo)
            torch.stack(vs).pow(2).mean().backward()
        out["snnTorch RLeaky"] = st
    except ImportError:
        pass
    return out


# ------------------------------------------------------------------------------- conv stack
def conv_cases(T: int = 18, B: int = 32) -> dict[str, Runner]:
    shape = (2, 34, 34)
    x = spikes(T, B, shape)
    model = LayeredSNN(parse_arch(CONV), shape, seed=0)
    out: dict[str, Runner] = {}

    def ns() -> None:  # BPTT's own path: the readout's v alone (the peers keep only theirs too)
        model.zero_grad()
        readout_sequence(model, x, "out").pow(2).mean().backward()
    out["neurosim"] = ns

    def convs() -> tuple[nn.Conv2d, nn.Conv2d, nn.Linear]:
        c1, c2 = nn.Conv2d(2, 16, 5, 2, 2, bias=False), nn.Conv2d(16, 32, 3, 1, 1, bias=False)
        with torch.no_grad():
            c1.weight.copy_(model.weights["l1"])
            c2.weight.copy_(model.weights["l3"])
        return c1, c2, linear_from(model.weights["out"])

    pool = nn.AvgPool2d(2, divisor_override=1)  # neurosim's sum pool
    try:
        import snntorch as snn

        c1, c2, fc = convs()
        lifs = [snn.Leaky(beta=0.9, threshold=t) for t in (1.0, 0.5, 1.0, 0.5)]
        ro = snn.Leaky(beta=0.9, reset_mechanism="none")

        def st() -> None:
            for m in (c1, c2, fc):
                m.zero_grad()
            mems = [lif.init_leaky() for lif in lifs]
            mo = ro.init_leaky()
            vs = []
            for t in range(T):
                h = x[t]
                for k, op in enumerate((c1, pool, c2, pool)):
                    h, mems[k] = lifs[k](op(h), mems[k])
                _, mo = ro(fc(h.flatten(1)), mo)
                vs.append(mo)
            torch.stack(vs).pow(2).mean().backward()
        out["snnTorch Leaky"] = st
    except ImportError:
        pass
    try:
        from spikingjelly.activation_based import functional, layer, neuron

        c1, c2, fc = convs()
        node = lambda th: neuron.LIFNode(tau=10.0, decay_input=False, v_reset=None, v_threshold=th,  # noqa: E731
                                         step_mode="m")
        readout = neuron.LIFNode(tau=10.0, decay_input=False, v_threshold=1e9, store_v_seq=True, step_mode="m")
        net = nn.Sequential(layer.SeqToANNContainer(c1), node(1.0), layer.SeqToANNContainer(pool), node(0.5),
                            layer.SeqToANNContainer(c2), node(1.0), layer.SeqToANNContainer(pool), node(0.5),
                            layer.SeqToANNContainer(nn.Flatten(), fc), readout)

        def sj() -> None:
            net.zero_grad()
            functional.reset_net(net)
            net(x)
            readout.v_seq.pow(2).mean().backward()
        out["SpikingJelly LIFNode (m)"] = sj
    except ImportError:
        pass
    return out


CASES = {"ff": ff_cases, "rec": rec_cases, "conv": conv_cases}


def item2(rounds: int, T: int = 100, B: int = 32) -> None:
    """Issue 20 item 2 on the per-step (canonical) path: training.layers.SNN 700 -> 1024 LIF -> 20
    LI (no recurrence), BPTT with a loss at every step; before = input spikes kept in the graph
    (input_grad) and one cross-entropy call per step, after = rules.BPTT as it stands; 1 thread."""
    import torch.nn.functional as F

    from training.nets import recurrent_network
    from training.layers import from_network
    from training.rules import BPTT, Batch, Objective

    torch.set_num_threads(1)
    model = from_network(recurrent_network(700, 1024, 20, model="lif", recurrent=False, seed=0))
    batch = Batch(spikes(T, B, (700,)), torch.randint(0, 20, (B,)), torch.ones(T, dtype=torch.bool))

    def before() -> None:
        model.zero_grad()
        model.input_grad = True
        obj = Objective(model, batch)
        state, total = model.initial_state(B), 0
        for t in range(T):
            state = model.step(state, batch.inputs[t])
            v = state.neurons.v[:, obj.lo:obj.hi]
            total = total + F.cross_entropy(v, batch.targets) * obj.weight
        total.backward()
        model.input_grad = False

    def after() -> None:
        model.zero_grad()
        BPTT().backward(model, batch)
    med = measure({"before": before, "after": after}, rounds)
    print(f"| per-step BPTT, T = {T}, B = {B} | before {med['before']:.3f} s | after {med['after']:.3f} s | "
          f"{med['before'] / med['after']:.2f}x |")


def crossover(rounds: int) -> None:
    """Event-driven projection against the GEMM (training.fused.event): 700 -> 1024, 8000 rows
    (T = 250 x B = 32), forward + weight gradient, at several input densities; 1 thread."""
    from training.fused.event import event_matmul

    torch.set_num_threads(1)
    w = torch.randn(700, 1024, requires_grad=True)
    print("| input density | GEMM s | event-driven s | GEMM / event |\n|---|---|---|---|")
    for d in (0.01, 0.05, 0.1, 0.2, 0.3):
        s = (torch.rand(8000, 700) < d).float()

        def run(f: Callable[[], torch.Tensor]) -> Runner:
            def go() -> None:
                y = f()
                y.backward(torch.ones_like(y))
            return go
        med = measure({"gemm": run(lambda: s @ w), "event": run(lambda: event_matmul(s, w))}, rounds)
        print(f"| {d:.0%} | {med['gemm']:.3f} | {med['event']:.3f} | {med['gemm'] / med['event']:.2f} |")


def measure(runners: dict[str, Runner], rounds: int) -> dict[str, float]:
    """Median seconds per call of each runner, round-robin (one warm-up call each first)."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in range(rounds):
        order = list(runners)
        order = order[r % len(order):] + order[:r % len(order)]  # rotate who goes first
        for k in order:
            t0 = time.perf_counter()
            runners[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--crossover", action="store_true", help="only the event-driven / GEMM crossover table")
    ap.add_argument("--item2", action="store_true", help="only the per-step BPTT before / after item 2")
    args = ap.parse_args()
    if args.crossover:
        crossover(args.rounds)
        return 0
    if args.item2:
        item2(args.rounds)
        return 0
    for case in args.cases:
        runners = CASES[case]()
        for n in args.threads:
            torch.set_num_threads(n)
            med = measure(runners, args.rounds)
            ns = med["neurosim"]
            peers = {k: v for k, v in med.items() if k != "neurosim"}
            fastest = min(peers.values()) if peers else float("nan")
            print(f"\n{case}, {n} thread(s), median of {args.rounds} rounds (s per forward + backward):")
            print(f"| library | s/iter | ratio = peer / neurosim |\n|---|---|---|\n| neurosim | {ns:.3f} | 1 |")
            for k, v in sorted(peers.items(), key=lambda kv: kv[1]):
                print(f"| {k} | {v:.3f} | {v / ns:.2f} |")
            print(f"ratio against the fastest peer: {fastest / ns:.2f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
