"""The main job end to end: train -> simulate -> export -> cross-check -> report.

``run_demo(DemoConfig(), "runs/demo")`` writes into the run directory::

    train/          checkpoint.pt, metrics.csv, curve.png, config.json, model.h5 (training.trainer)
    model.h5        the trained network (neurosim HDF5)
    simulate.h5     neurosim's simulation of the test set (readout traces)
    model.nir       NIR graph (if expressible)          model.netx.h5   lava-dl NetX (if expressible)
    brian2/model.py standalone Brian2 script (+ .npz)   crosscheck/     report.md, CSV, overlays
    rasters.png     one test trial in every simulator, side by side
    report.md       the report, and report.html: the same, self-contained (images inlined)

Every stage is timed; a stage that a target cannot express (e.g. NetX has no ALIF) is
reported with the reason instead of failing the run. The NIR export is strict (target neurosim,
no extensions): the demo's ALIF network is reported as not expressible in NIR, with the reason,
rather than written as a file that ``nir.read`` and every peer reject. ``neurosim demo`` (:func:`cmd_demo`) runs it
from the command line; the report itself is written by :mod:`neurosim.cli.demo_report`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .. import paths
from ..atomic import write_text
from ..errors import BackendUnavailable, ExportError, NetworkError, NeurosimError
from .common import int_at_least, resolve_backend, seed_arg
from .demo_report import check_bar, plot_rasters, report_html, report_markdown


# store-recall's default 512 training trials overfit (test accuracy 0.91-0.97 over seeds at
# 60 epochs); 2048 trials for 20 epochs reach 0.98 on the seed that stayed lowest
DEMO_N_TRAIN = {"store_recall": 2048}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and checks. Defaults: an LSNN (ALIF) on store-and-recall with BPTT."""

    task: str = "store_recall"
    rule: str = "bptt"
    model: str = "alif"
    hidden: int = 128
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    tau_adapt: float = 0.2
    clip: Optional[float] = None
    n_train: Optional[int] = None  # None: DEMO_N_TRAIN for the task, else the task's default
    n_test: Optional[int] = None
    seed: int = 0
    backend: str = "auto"
    n_check: int = 2
    targets: tuple[str, ...] = ("brian2", "lava-float", "lava-fixed")


@dataclass
class DemoResult:
    """Figures and files of one demo run."""

    config: DemoConfig
    test_accuracy: float
    simulated_accuracy: float
    bar: Optional[float]
    stages: dict[str, float]
    files: dict[str, str]
    exports: dict[str, str]
    check: Any
    quantisation: str
    versions: dict[str, str] = field(default_factory=dict)
    metrics: Any = None  # neurosim.metrics.Metrics of the test-set simulation


def register(sub: Any) -> None:
    """Add the `demo` subparser to `sub` (argparse subparsers of the neurosim CLI)."""
    positive_int = int_at_least(1)
    d = DemoConfig()
    p = sub.add_parser(
        "demo", help="the main job: train an LSNN, simulate, export, cross-check, write a report",
        description="Train a recurrent ALIF network (LSNN) on a bundled task, simulate the trained network "
                    "on the test set in neurosim (CuPy on a GPU, else numba or NumPy), export it to NIR, "
                    "NetX and a Brian2 script, cross-check it in Brian2 and Lava (floating and fixed point) "
                    "and write DIR/report.md and DIR/report.html (training curve, accuracy, rasters of "
                    "every simulator, agreement table, quantisation error, timings, versions). Exit code 1 "
                    "when the task bar or exact cross-check agreement is not reached (a skipped target, or no "
                    "exact comparison, counts as not reached). A failed run removes the directory it created, "
                    "unless training already saved a checkpoint.")
    p.add_argument("--out", default=os.path.join("runs", "demo"), metavar="DIR",
                   help="run directory, created if missing (default runs/demo)")
    p.add_argument("--task", default=d.task, help=f"bundled task (default {d.task})")
    p.add_argument("--rule", default=d.rule,
                   help=f"learning rule: bptt, ottt, eprop or ratebp, as for 'neurosim train' (default {d.rule})")
    p.add_argument("--hidden", type=positive_int, default=d.hidden, metavar="N",
                   help=f"hidden ALIF neurons (default {d.hidden})")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, metavar="N",
                   help=f"training epochs (default {d.epochs})")
    p.add_argument("--n-train", type=positive_int, default=None, metavar="N",
                   help="training samples (default: 2048 for store_recall, whose 512 overfit; else the task's)")
    p.add_argument("--n-test", type=positive_int, default=None, metavar="N", help="test samples (task default)")
    p.add_argument("--n-check", type=positive_int, default=d.n_check, metavar="N",
                   help=f"test trials run in every cross-check target (default {d.n_check})")
    p.add_argument("--against", default=",".join(d.targets), metavar="T1,T2",
                   help=f"cross-check targets (default {','.join(d.targets)})")
    p.add_argument("--backend", default=d.backend, choices=("numpy", "numba", "cupy", "auto"),
                   help="neurosim backend for the test-set simulation (default auto)")
    p.add_argument("--seed", type=seed_arg, default=d.seed, metavar="S",
                   help="seed of data and weights (whole number, 0 <= S < 2**63, default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """`neurosim demo`: check the arguments, run the demo into --out; 1 when it falls short of its bar."""
    from mapping.agreement import parse_targets

    try:
        targets = tuple(parse_targets(args.against))
    except NetworkError as exc:
        raise NeurosimError(f"--against: {exc.message}") from None
    from training.rules import RULE_NAMES
    from training.tasks import TASKS

    from .train import EVENT_TASKS

    bundled = sorted(t for t in TASKS if t not in EVENT_TASKS)  # event datasets need a root: 'neurosim train'
    if args.task not in bundled:  # checked before anything is created
        extra = (f" (the event dataset {args.task} needs --task-option root=PATH: use 'neurosim train')"
                 if args.task in EVENT_TASKS else "")
        raise NeurosimError(f"--task {args.task}: expected one of {', '.join(bundled)}{extra}")
    rules = [r for r in RULE_NAMES if r not in ("tbptt", "budgeted")]  # those need --k / --budget
    if args.rule not in rules:
        raise NeurosimError(f"--rule {args.rule}: the demo trains with one of {', '.join(rules)} (for other rules "
                            "use 'neurosim train')")
    paths.check_directory(args.out, "--out")
    resolve_backend(args.backend)  # an unusable backend fails now, not after training
    defaults = DemoConfig()
    config = DemoConfig(task=args.task, rule=args.rule, hidden=args.hidden, epochs=args.epochs,
                        n_train=args.n_train, n_test=args.n_test, n_check=args.n_check, targets=targets,
                        backend=args.backend, seed=args.seed, lr=defaults.lr)
    # a failure removes what the run created, unless training already saved a checkpoint (resumable)
    with paths.output_directory(args.out, "--out", keep=("checkpoint.pt",)):
        result = run_demo(config, args.out, progress=not args.no_progress)
    problems = check_bar(result)
    for p in problems:
        print(f"demo: {p}")
    return 1 if problems else 0


def run_demo(config: DemoConfig, out: str, *, progress: bool = True, log: Any = print) -> DemoResult:
    """Run every stage into directory `out` (created if missing); see the module docstring."""
    import torch

    from mapping.agreement import crosscheck
    from training.scoring import score
    from training.trainer import TrainConfig, train

    from .. import backends, storage
    from ..metrics import neurobench_metrics
    from ..simulate import simulate

    os.makedirs(out, exist_ok=True)
    files: dict[str, str] = {}
    stages: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. train ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    tc = TrainConfig(task=config.task, rule=config.rule, epochs=config.epochs, batch_size=config.batch_size,
                     lr=config.lr, seed=config.seed, hidden=config.hidden, model=config.model,
                     n_train=config.n_train if config.n_train is not None else DEMO_N_TRAIN.get(config.task),
                     n_test=config.n_test, tau_adapt=config.tau_adapt, clip=config.clip)
    run_dir = os.path.join(out, "train")
    trained = train(tc, run_dir, progress=progress, device="cpu", overwrite=True)  # the demo owns its directory
    history, task = trained["history"], trained["task"]
    # the report's configuration table gives the trial counts used, not None for "the default"
    config = dataclasses.replace(config, n_train=len(task.train), n_test=len(task.test))
    test_acc = float(history[-1]["test_acc"])
    stages["train"] = time.perf_counter() - t0
    files.update(curve=os.path.join(run_dir, "curve.png"), metrics=os.path.join(run_dir, "metrics.csv"),
                 checkpoint=os.path.join(run_dir, "checkpoint.pt"))
    log(f"[demo] trained {config.model} x {config.hidden} on {config.task} with {config.rule}: "
        f"test accuracy {test_acc:.3f} (bar {task.bar}) in {stages['train']:.1f} s")

    # 2. simulate the trained network on the test set --------------------------------------
    t0 = time.perf_counter()
    net = storage.load(os.path.join(run_dir, "model.h5"))
    files["model"] = os.path.join(out, "model.h5")
    storage.save(net, files["model"])
    spikes_in = np.ascontiguousarray(np.asarray(task.test.inputs, bool).transpose(1, 0, 2))  # (T, N, n_in)
    backend = backends.resolve(config.backend)
    sim = simulate(net, {"in": spikes_in}, task.steps, backend=backend, traces={"out": ["v"]}, progress=progress)
    v_out = torch.as_tensor(sim.traces["out"]["v"])  # (T, N, n_out), scored as training scores torch's readout
    correct, counted = score(task, {int(t): v_out[t] for t in np.flatnonzero(task.test.loss_mask)},
                             torch.as_tensor(task.test.targets))
    sim_acc = correct / counted
    metrics = neurobench_metrics(net, sim)
    files["simulation"] = os.path.join(out, "simulate.h5")
    storage.save_result(sim, files["simulation"])
    stages[f"simulate test set ({backend})"] = time.perf_counter() - t0
    log(f"[demo] neurosim ({backend}, float64) on the {len(task.test)} test trials: accuracy {sim_acc:.3f} "
        f"(torch float32: {test_acc:.3f})")

    # 3. export ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    exports: dict[str, str] = {}
    quantisation = ""
    for name, path, export in _exporters(out):
        try:
            result = export(net, path)
            files[name] = path
            exports[name] = f"wrote {os.path.relpath(path, out)}"
            if name == "netx" and result is not None:
                quantisation = str(result)
        except (ExportError, BackendUnavailable) as exc:
            exports[name] = f"not exported: {exc}"
        log(f"[demo] export {name}: {exports[name]}")
    if not quantisation:
        quantisation = _quantisation(net)
    stages["export (NIR, NetX, Brian2)"] = time.perf_counter() - t0

    # 4. cross-check -----------------------------------------------------------------------
    t0 = time.perf_counter()
    n = min(config.n_check, spikes_in.shape[1])
    check = crosscheck(net, {"in": spikes_in[:, :n]}, task.steps, list(config.targets), seed=config.seed,
                       progress=progress)
    reports = check.write_report(os.path.join(out, "crosscheck"))
    files.update({f"crosscheck_{k}": v for k, v in reports.items()})
    stages["cross-check"] = time.perf_counter() - t0
    for target, reason in check.skipped.items():
        log(f"[demo] cross-check {target}: skipped ({reason})")

    # 5. report ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    files["rasters"] = os.path.join(out, "rasters.png")
    plot_rasters(check.results, files["rasters"], net)
    stages["report"] = time.perf_counter() - t0
    stages["total"] = time.perf_counter() - t_all
    res = DemoResult(config, test_acc, sim_acc, task.bar, stages, files, exports, check, quantisation, versions(),
                     metrics)
    files["report"] = os.path.join(out, "report.md")
    files["html"] = os.path.join(out, "report.html")
    write_text(files["report"], report_markdown(res, out))
    write_text(files["html"], report_html(res, out))
    log(f"[demo] wrote {files['report']} and {files['html']} ({stages['total']:.1f} s in all)")
    return res


def _exporters(out: str) -> list[tuple[str, str, Any]]:
    def nir(net: Any, path: str) -> None:
        from mapping import write_nir

        write_nir(net, path)  # strict: refused (ExportError, reported) when nir.read could not read it

    def netx(net: Any, path: str) -> Any:
        from mapping import to_netx

        return to_netx(net, path)

    def brian2(net: Any, path: str) -> None:
        from mapping import write_brian2_script

        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_brian2_script(net, path)

    return [("nir", os.path.join(out, "model.nir"), nir), ("netx", os.path.join(out, "model.netx.h5"), netx),
            ("brian2", os.path.join(out, "brian2", "model.py"), brian2)]


def _quantisation(net: Any) -> str:
    """The fixed-point quantisation report of `net` (or why it has none)."""
    try:
        from ..fixed_point import quantize

        return str(quantize(net).report)
    except ExportError as exc:
        return f"no fixed-point form: {exc}"


def versions() -> dict[str, str]:
    """Versions of Python and of every package the pipeline used (or 'not installed')."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("neurosim", "numpy", "numba", "torch", "brian2", "lava-nc", "lava-dl", "nir", "h5py", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class DemoError(NeurosimError):
    """The demo ran but fell short of its bar."""
