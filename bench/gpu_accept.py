"""GPU acceptance of the CuPy backend and of CUDA training (issue 23 item 4): one command, one
PASS/FAIL line per check, a JSON and a markdown table.

    python bench/gpu_accept.py --out bench/out/gpu_accept          # on the GPU machine
    python bench/gpu_accept.py --dry-run --out /tmp/ga             # here, kernels on the host emulator

Run time: the GPU run is planned for about 5 minutes on an H200, under 8 (not yet measured: no
GPU has run it); optional CUBA rows are skipped past --budget seconds. The dry run took 11 s
on 2 CPU cores and needs g++ (tests/cuda_emulator.py). --parts (e.g. a, bc) runs some parts
only; --inject-fault is for testing this script (every (a) line must then FAIL).

(a) backend 'cupy' against NumPy on the 20 parity cases of tests/helpers.py (ALIF, LIF, IF, LI;
    per-synapse delays; dense and CSR; batch 1 to 3; 120 steps in chunks of 50), float64 and
    float32, propagation gather, event and matmul, each with direct launches and with CUDA
    graphs of 8 steps (matmul launches directly only). The check is helpers.mode_parity, the
    one tests/test_cupy_backend.py runs: gather bitwise equal, event and matmul equal up to
    counted threshold ties (none in float64, helpers.TIES_FLOAT32 trials in float32), at
    least 10000 spikes compared, graphs replayed, and every run on the expected device.
(b) bench/gpu.py's CUBA rows (float32, 1 s at dt 0.1 ms, propagation event; Brian2 left out):
    the two rows the bar needs first (4k x 80, 1M x 1000), then 64k and 256k and the other
    4k/1M rows while the budget lasts; the copy bandwidth is measured as gpu.py does.
(c) one epoch of `neurosim train` (training.trainer.train): rule bptt, a layered dense(64)
    model on the digits task (sklearn's bundled 8x8 digits) or, without sklearn, delayed_xor;
    on CUDA, and whether training.fused's sequence path ran (it has CPU kernels only).

The dry run runs (a) unchanged through tests/cuda_emulator.py, (b) as two 2000-neuron CUBA
rows of 200 steps through the emulator (their figures are not GPU figures and the thresholds
are NOT CHECKED), and (c) on the CPU. Statuses: PASS, FAIL, NOT RUN (a module the part needs
is missing, or g++ for the dry run), NOT CHECKED (a figure reported only). Exit code: 0 when
no line is FAIL or NOT RUN, 1 otherwise, 2 on bad arguments. Imports: numpy, neurosim,
bench/gpu.py, tests/helpers.py and cuda_emulator.py; cupy (GPU run), torch and training (c).
At run time neurosim.simulate needs tqdm; the trainer tqdm, matplotlib and h5py (training.tasks
imports neurosim.h5read): a part that misses one is NOT RUN, naming it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import math
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "bench", ROOT / "tests", ROOT):
    sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402

import gpu  # noqa: E402  (bench/gpu.py)
import neurosim as ns  # noqa: E402
from helpers import PARITY_STEPS, mode_parity, parity_case, reference  # noqa: E402
from neurosim.backends import available as backends_available  # noqa: E402

PASS, FAIL, NOT_RUN, NOT_CHECKED = "PASS", "FAIL", "NOT RUN", "NOT CHECKED"
DTYPES, MODES = ("float64", "float32"), ("gather", "event", "matmul")
NETWORKS, CHUNK, GRAPH_STEPS, MIN_SPIKES = 20, 50, 8, 10000
BW_FRACTION, STEPS_PER_S = 0.30, 20000.0
BW_ROW, SPEED_ROW = (1000000, 1000), (4000, 80)
DRY_ROWS = ((2000, 80), (2000, 1000))
DRY_CUBA = ["--duration", "0.02", "--chunk", "100", "--numpy-seconds", "2"]
FAULT_STEP = PARITY_STEPS // 2


def log(msg: str) -> None:
    print(msg, flush=True)


class Unavailable(Exception):
    """A part cannot run here: reported NOT RUN (dry run without g++) or FAIL (no GPU on a GPU run)."""

    def __init__(self, reason: str, status: str) -> None:
        super().__init__(reason)
        self.status = status


class Report:
    """The run's record; :meth:`save` writes OUT/gpu_accept.json and OUT/gpu_accept.md."""

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.out, self.t0 = out, time.perf_counter()
        self.data: dict[str, Any] = {**header, "parts": {}}

    def part(self, key: str, title: str, **info: Any) -> dict[str, Any]:
        log(f"\n== ({key}) {title}")
        self.data["parts"][key] = {"title": title, **info, "lines": []}
        return self.data["parts"][key]

    def line(self, part: str, check: str, status: str, value: str, bar: bool = False, **extra: Any) -> None:
        row = {"part": part, "check": check, "status": status, "value": value, "bar": bar, **extra}
        self.data["parts"][part]["lines"].append(row)
        log(f"[{part}] {status:<11} {check}: {value}")
        self.save()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, part after part."""
        return [r for p in self.data["parts"].values() for r in p["lines"]]

    def exit_code(self) -> int:
        """0 when no line is FAIL or NOT RUN, else 1."""
        return 1 if any(r["status"] in (FAIL, NOT_RUN) for r in self.lines()) else 0

    def save(self) -> None:
        counts = {s: sum(r["status"] == s for r in self.lines()) for s in (PASS, FAIL, NOT_RUN, NOT_CHECKED)}
        self.data.update(summary=counts, exit_code=self.exit_code(), total_s=time.perf_counter() - self.t0)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_accept.json").write_text(json.dumps(_plain(self.data), indent=1))
        (self.out / "gpu_accept.md").write_text(self.markdown())

    def markdown(self) -> str:
        d = self.data
        v = ", ".join(f"{k} {x}" for k, x in d["versions"].items())
        s = ", ".join(f"{n} {k}" for k, n in d["summary"].items())
        out = [f"# GPU acceptance (issue 23 item 4): {d['mode']}", "", f"- GPU: {d['gpu']}", f"- versions: {v}",
               f"- command: `{d['command']}`", f"- total {d['total_s']:.0f} s; lines: {s}; exit code {d['exit_code']}",
               "", "| part | check | result | status | bar |", "|---|---|---|---|---|"]
        cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
        out += [f"| {r['part']} | {cell(r['check'])} | {cell(r['value'])} | {r['status']} | {'bar' if r['bar'] else ''} |"
                for r in self.lines()]
        for key, p in d["parts"].items():
            out += ["", f"## ({key}) {p['title']}"] + [f"- {k}: {x}" for k, x in p.items() if k in ("settings", "note")]
            out += p.get("tables", [])
        return "\n".join(out) + "\n"


def _plain(x: Any) -> Any:
    """`x` as strict JSON values: non-finite floats become None, sets and tuples lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_plain(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def describe(exc: BaseException) -> str:
    """One line for `exc`; a missing module is named."""
    if isinstance(exc, ModuleNotFoundError):
        return f"needs {(exc.name or '?').split('.')[0]} ({exc})"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


def guarded(rep: Report, part: str, check: str, bar: bool, run: Callable[[], tuple[str, str, dict[str, Any]]]) -> None:
    """One line from run() -> (status, value, extra); an exception is the line's FAIL (NOT RUN for
    a missing module or an Unavailable part) with the error as its value."""
    try:
        status, value, extra = run()
    except Unavailable as exc:
        status, value, extra = exc.status, str(exc), {}
    except ModuleNotFoundError as exc:
        status, value, extra = NOT_RUN, describe(exc), {}
    except Exception as exc:  # noqa: BLE001  (every failure is a FAIL line, never a crash)
        traceback.print_exc()
        status, value, extra = FAIL, describe(exc), {}
    rep.line(part, check, status, value, bar, **extra)


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages the parts use, from the packages'
    metadata (nothing is imported); the distribution's name where it differs (cupy-cuda13x)."""
    out = {"python": platform.python_version()}
    dists = importlib.metadata.packages_distributions()
    for name in ("numpy", "torch", "cupy", "numba", "triton", "tqdm", "h5py", "matplotlib", "sklearn"):
        found = sorted(dists.get(name, []))
        out[name] = "not installed"
        with contextlib.suppress(importlib.metadata.PackageNotFoundError, IndexError):
            out[name] = importlib.metadata.version(found[0]) + (f" ({found[0]})" if found[0] != name else "")
    out["neurosim"] = ns.__version__
    with contextlib.suppress(Exception):
        out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                       text=True, timeout=10).stdout.strip() or "unknown"
    return out


# ------------------------------------------------------------------------ (a) parity with NumPy


def part_a(rep: Report, ctx: argparse.Namespace) -> None:
    rep.part("a", "backend cupy against numpy on 20 random networks",
             settings=f"{NETWORKS} parity cases of tests/helpers.py (ALIF/LIF/IF/LI, delays, dense and CSR, batch 1-3), "
                      f"{PARITY_STEPS} steps, chunks of {CHUNK}; CUDA graphs of {GRAPH_STEPS} steps or direct launches; "
                      f"device expected: {ctx.device}" + (" (the same settings as the GPU run)" if ctx.dry_run else ""),
             note="fault injected: numpy's reference of network 0 has all input channels of trial 0 flipped at "
                  f"step {FAULT_STEP}, so every line must FAIL" if ctx.inject_fault else "none")
    refs: dict[str, dict[int, ns.SimulationResult]] = {}

    def references(dtype: str) -> dict[int, ns.SimulationResult]:
        if dtype not in refs:
            refs[dtype] = {seed: reference(seed, dtype) for seed in range(NETWORKS)}
            if ctx.inject_fault:
                inp = parity_case(0)[1]
                inp["in"][FAULT_STEP, 0, :] ^= True
                refs[dtype][0] = reference(0, dtype, inputs=inp)
        return refs[dtype]

    for dtype in DTYPES:
        for mode in MODES:
            for graphs in ((0, GRAPH_STEPS) if mode != "matmul" else (0,)):
                how = f"CUDA graphs of {graphs} steps" if graphs else "direct launches"
                want = "spikes and traces bitwise equal to numpy" if mode == "gather" else "equal to numpy up to counted ties"
                check = f"{dtype} {mode}, {how}: {want}"

                def run(mode: str = mode, dtype: str = dtype, graphs: int = graphs) -> tuple[str, str, dict[str, Any]]:
                    ctx.require()
                    t = time.perf_counter()
                    found = mode_parity(mode, dtype, {"graph_steps": graphs}, range(NETWORKS), PARITY_STEPS, CHUNK,
                                        references(dtype))
                    problems = found.problems(MIN_SPIKES)
                    if found.devices != {ctx.device}:
                        problems.append(f"ran on {sorted(found.devices)}, not on {ctx.device}")
                    value = (f"{found.networks} networks, {found.trials} trials, {found.spikes} spikes, "
                             f"{found.parted} parted at ties (allowed {found.ties_allowed}), "
                             f"{found.graph_replays} graph replays")
                    if problems:
                        value += f"; {len(problems)} problem(s), first: {problems[0]}"
                    extra = {"networks": found.networks, "trials": found.trials, "spikes": found.spikes,
                             "parted": found.parted, "ties_allowed": found.ties_allowed,
                             "graph_replays": found.graph_replays, "problems": problems,
                             "seconds": time.perf_counter() - t}
                    return (FAIL if problems else PASS), value, extra

                guarded(rep, "a", check, dtype == "float64" and mode in ("gather", "event"), run)


# ------------------------------------------------------------------------------ (b) throughput


def part_b(rep: Report, ctx: argparse.Namespace) -> None:
    info = rep.part("b", "CUBA throughput (bench/gpu.py) against the copy bandwidth",
                    settings="emulator rows 2000 x 80 and 2000 x 1000, 200 steps: they exercise the code path; "
                             "emulator figures, not GPU figures" if ctx.dry_run else
                             f"float32, 1 s at dt 0.1 ms, event propagation; rows {SPEED_ROW} and {BW_ROW} first, "
                             f"the others until {ctx.budget:.0f} s")
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    figures: dict[str, Any] = {}
    notes: list[str] = []
    setup_error: Optional[BaseException] = None
    argv = ["--out", str(ctx.out / "gpu_bench"), "--brian2-max", "0"] + (DRY_CUBA if ctx.dry_run else [])
    args = gpu.parser().parse_args(argv)
    cupy: Any = None
    try:
        ctx.require()
        if ctx.dry_run:
            plan = list(DRY_ROWS)
        else:
            import cupy

            figures = gpu.device_figures(cupy)
            info["device"] = figures
            info["kernel_compile_and_first_run_s"] = gpu.warm_up(args.dtype)
            log(f"copy bandwidth {figures['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + write)")
            plan = [SPEED_ROW, BW_ROW] + [(n, k) for k in args.syn for n in args.sizes if (n, k) not in (SPEED_ROW, BW_ROW)]
    except Exception as exc:  # noqa: BLE001  (reported by every line below)
        setup_error, plan = exc, []
    for j, (n, k) in enumerate(plan):
        if j >= 2 and time.perf_counter() - ctx.t0 > ctx.budget:
            notes.append(f"CUBA n={n} k={k} skipped: past the --budget of {ctx.budget:.0f} s")
            continue
        try:
            rows[(n, k)] = row = gpu.cuba_row(n, k, args, figures.get("copy_bytes_per_s", math.nan), cupy)
            log(f"CUBA n={n} k={k}: {row['gpu_steps_per_s']:.0f} steps/s, {row['gpu_events_per_s']:.3g} events/s, "
                f"{row['rate_hz']:.1f} Hz, t = {time.perf_counter() - ctx.t0:.0f} s")
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            rows[(n, k)] = {"n": n, "syn_per_neuron": k, "error": describe(exc)}
    done = [r for r in rows.values() if "error" not in r]
    info["rows"], info["notes"], info["tables"] = list(rows.values()), notes, []
    gpu.print_tables({"args": vars(args), "device": figures, "cuba": done, "layer": [], "notes": notes},
                     info["tables"].append)
    for line in info["tables"]:
        log(line)

    def need(key: tuple[int, int]) -> dict[str, Any]:
        if setup_error is not None:
            raise setup_error
        if key not in rows:
            raise RuntimeError(f"row {key} was not run")
        if "error" in rows[key]:
            raise RuntimeError(rows[key]["error"])
        return rows[key]

    if ctx.dry_run:
        for key in DRY_ROWS:
            def ran(key: tuple[int, int] = key) -> tuple[str, str, dict[str, Any]]:
                r = need(key)
                ok = r["gpu_steps"] == r["steps"] and r["gpu_spikes"] > 0 and r["gpu_stats"]["graph_replays"] > 0
                return (PASS if ok else FAIL), (f"{r['gpu_steps']} of {r['steps']} steps, {r['gpu_spikes']} spikes "
                                                f"(numpy: {r['numpy_spikes']} in {r['numpy_steps']} steps), "
                                                f"{r['gpu_stats']['graph_replays']} graph replays"), {}
            guarded(rep, "b", f"CUBA {key[0]} x {key[1]} runs through gpu.cuba_row on the emulator", False, ran)
    k_bw = DRY_ROWS[1] if ctx.dry_run else BW_ROW
    k_sp = DRY_ROWS[0] if ctx.dry_run else SPEED_ROW

    def bandwidth() -> tuple[str, str, dict[str, Any]]:
        r = need(k_bw)
        if ctx.dry_run:
            return NOT_CHECKED, f"emulator, not a GPU figure: {r['gpu_events_per_s']:.3g} events/s at {k_bw}", {}
        f = r["fraction_of_copy_bw"]
        return (PASS if f >= BW_FRACTION else FAIL), (f"{100 * f:.1f}%: {r['gpu_events_per_s']:.3g} events/s x "
                                                      f"{r['bytes_per_event']} B = {r['bytes_per_s'] / 1e9:.0f} GB/s "
                                                      f"of {figures['copy_bytes_per_s'] / 1e9:.0f} GB/s"), {}

    def speed() -> tuple[str, str, dict[str, Any]]:
        r = need(k_sp)
        if ctx.dry_run:
            return NOT_CHECKED, f"emulator, not a GPU figure: {r['gpu_steps_per_s']:.0f} steps/s at {k_sp}", {}
        s = r["gpu_steps_per_s"]
        return (PASS if s >= STEPS_PER_S else FAIL), f"{s:.0f} steps/s ({r['gpu_steps']} steps, {r['rate_hz']:.1f} Hz)", {}

    guarded(rep, "b", f"CUBA 1M neurons x 1000 synapses: synaptic events at >= {100 * BW_FRACTION:.0f}% of the "
                      "copy-bandwidth bound (4 B index + 4 B weight per event)", True, bandwidth)
    guarded(rep, "b", f"CUBA 4000 neurons x 80 synapses: >= {STEPS_PER_S:.0f} steps/s", True, speed)


# ------------------------------------------------------------------------------ (c) training


@contextlib.contextmanager
def counting(module: Any, name: str) -> Iterator[list[int]]:
    """Count the calls of module.name (replaced by a counting wrapper inside the block)."""
    calls, original = [0], getattr(module, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        calls[0] += 1
        return original(*a, **k)

    setattr(module, name, wrapper)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def part_c(rep: Report, ctx: argparse.Namespace) -> None:
    device = "cpu" if ctx.dry_run else "cuda"
    digits = importlib.util.find_spec("sklearn") is not None
    task, arch = ("digits", "dense(64),dense(10)") if digits else ("delayed_xor", "dense(64),dense(2)")
    info = rep.part("c", f"one training epoch on {device}",
                    settings=f"neurosim train: task {task}, --arch {arch}, rule bptt, batch 32, 1 epoch, seed 0, "
                             f"device {device}" + (" (dry run: the GPU run uses cuda)" if ctx.dry_run else ""),
                    note="digits needs sklearn" + ("" if digits else ", missing here: delayed_xor instead"))
    state: dict[str, Any] = {}

    def epoch() -> tuple[str, str, dict[str, Any]]:
        import torch

        import training.fused.layered as fused_layered
        from training.config import TrainConfig
        from training.trainer import train

        config = TrainConfig(task=task, rule="bptt", epochs=1, batch_size=32, seed=0, arch=arch)
        rows: list[dict[str, float]] = []
        t = time.perf_counter()
        note = ""
        with counting(fused_layered, "fused_forward") as calls:
            try:
                res = train(config, ctx.out / "train_run", progress=False, device=device, on_epoch=rows.append,
                            overwrite=True)
            except ModuleNotFoundError as exc:
                if not rows:
                    raise
                res, note = None, f"; the epoch ran, then writing its files failed: {describe(exc)}"
        info["epoch"] = rows[0] if rows else None
        state.update(calls=calls[0], torch=torch, res=res, fused_layered=fused_layered)
        row = rows[0]
        on = next(res["model"].parameters()).device.type if res else "unknown"
        ok = len(rows) == 1 and math.isfinite(row["train_loss"]) and (res is None or on == device)
        n = len(res["task"].train.inputs) if res else "?"
        value = (f"{task} ({n} samples), {row['seconds']:.1f} s, train loss {row['train_loss']:.3f}, "
                 f"test accuracy {row['test_acc']:.3f}, parameters on {on}, {time.perf_counter() - t:.1f} s "
                 f"with evaluation and files{note}")
        return (PASS if ok else FAIL), value, {"epoch": row, "task": task, "samples": n, "device": on}

    guarded(rep, "c", f"one training epoch runs on {device}", not ctx.dry_run, epoch)

    def fused() -> tuple[str, str, dict[str, Any]]:
        if "calls" not in state:
            raise Unavailable("the epoch did not run", NOT_RUN)
        torch, res, calls = state["torch"], state["res"], state["calls"]
        from training.fused import available

        extra = {"fused_calls": calls}
        if available(torch.device(device)):
            return (PASS if calls > 0 else FAIL), f"{calls} fused sequence calls (training.fused.layered)", extra
        why = "no fused kernel for this device"
        if res is not None:
            x = torch.as_tensor(np.asarray(res["task"].train.inputs[:2]), device=device).transpose(0, 1)
            why = state["fused_layered"].unsupported(res["model"], x.reshape(x.shape[0], 2, -1), ("v",)) or why
        return NOT_CHECKED, f"not available on {device} ({why}); the per-step path ran ({calls} fused calls)", extra

    guarded(rep, "c", "the fused layers ran where they exist", False, fused)


# ------------------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gpu_accept.json and gpu_accept.md (created)")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: kernels on tests/cuda_emulator.py, training on the CPU")
    ap.add_argument("--parts", default="abc", help="which parts to run, e.g. 'a' or 'bc' (default abc)")
    ap.add_argument("--budget", type=float, default=330.0,
                    help="seconds from the start after which optional CUBA rows are skipped (default 330)")
    ap.add_argument("--inject-fault", action="store_true",
                    help="for testing this script: corrupt numpy's reference of network 0 in part (a); every (a) line must FAIL")
    return ap


def main(argv: Optional[list[str]] = None) -> int:
    """Run the parts asked for; 0 when every line passes, 1 when one fails or did not run, 2 on bad arguments."""
    ap = parser()
    args = ap.parse_args(argv)
    if not args.parts or set(args.parts) - set("abc"):
        ap.error(f"--parts: letters a, b, c, got {args.parts!r}")
    if args.inject_fault and "a" not in args.parts:
        ap.error("--inject-fault corrupts part (a): include a in --parts")
    reason = backends_available()["cupy"]  # before the emulator replaces the backend's check
    meta: dict[str, Any] = {}
    if not reason:
        import cupy

        meta = gpu.device_meta(cupy)
    ctx = argparse.Namespace(**{**vars(args), "out": Path(args.out)}, t0=time.perf_counter())
    rep = Report(ctx.out, {"mode": "dry-run (emulator)" if args.dry_run else "gpu", "gpu": meta.get("device", "none"),
                           "gpu_meta": meta, "versions": versions(), "command": " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    log(f"gpu_accept: {rep.data['mode']}, GPU {rep.data['gpu']}; "
        + ", ".join(f"{k} {v}" for k, v in rep.data["versions"].items()))
    with contextlib.ExitStack() as stack:
        if args.dry_run:
            import cuda_emulator

            emulator = cuda_emulator.available()
            ctx.device = "host emulator (g++)"
            if not emulator:
                stack.enter_context(cuda_emulator.installed())

            def require() -> None:
                if emulator:
                    raise Unavailable(f"the emulator cannot run: {emulator}", NOT_RUN)
        else:
            ctx.device = meta.get("device")

            def require() -> None:
                if reason:
                    raise Unavailable(f"no usable CUDA device: {reason}", FAIL)
        ctx.require = require
        for key, run in (("a", part_a), ("b", part_b)):
            if key in args.parts:
                run(rep, ctx)
    if "c" in args.parts:  # the emulator is gone again: the trainer's own runs use the real backends
        part_c(rep, ctx)
    rep.save()
    s = rep.data["summary"]
    log(f"\n{', '.join(f'{n} {k}' for k, n in s.items())}; {rep.data['total_s']:.0f} s; wrote "
        f"{ctx.out / 'gpu_accept.json'} and {ctx.out / 'gpu_accept.md'}; exit code {rep.exit_code()}")
    return rep.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
