"""The main job end to end: train -> simulate -> export -> cross-check -> report.

``run_demo(DemoConfig(), "runs/demo")`` writes into the run directory::

    train/          checkpoint.pt, metrics.csv, curve.png, config.json, model.h5 (training.trainer;
                    its model.h5 is the last epoch's)
    model.h5        the trained network at the kept epoch (neurosim HDF5)
    simulate.h5     neurosim's simulation of the test set (readout traces)
    model.nir       NIR graph (if expressible)          model.netx.h5   lava-dl NetX (if expressible)
    brian2/model.py standalone Brian2 script (+ .npz)   crosscheck/     report.md, CSV, overlays,
                                                                        activity maps (shaped layers)
    rasters.png     one test trial in every simulator, side by side (shaped layers banded per channel)
    activity.png    spike counts per channel of every shaped layer (conv demo)
    report.md       the report, and report.html: the same, self-contained (images inlined)

Two networks: the recurrent LSNN (default) and, with ``arch`` (``--arch conv``), a layered
model such as issue 19's conv SNN on the event digits (:func:`conv_config`). The kept epoch is
chosen on the task's validation split where it has one (neurosim.cli.demo_train). The report
gives the test accuracy in every arithmetic the network runs in (neurosim.cli.demo_accuracy):
torch float32, neurosim float64, neurosim's fixed-point mode (the first `n_fixed` test trials)
and Lava fixed_pt (the cross-check's first `n_check` trials).

Every stage is timed; a stage that a target cannot express (e.g. NetX has no ALIF; on this
branch NIR and NetX have no conv layers yet) is reported with the exporter's reason instead of
failing the run. The NIR export is strict (target neurosim,
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

from .. import paths
from ..atomic import write_text
from ..errors import BackendUnavailable, ExportError, NetworkError, NeurosimError
from .common import int_at_least, resolve_backend, seed_arg
from .demo_report import check_bar, plot_activity, plot_rasters, report_html, report_markdown
from .demo_train import CONV_ARCH, resolve_arch


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
    # where training runs: 'auto' is CUDA when torch sees a GPU (training.trainer.pick_device); the
    # configuration table records the device that was used
    device: str = "auto"
    n_check: int = 2
    targets: tuple[str, ...] = ("brian2", "lava-float", "lava-fixed")
    # a layered model (training.layered spec, or 'conv' for demo_train.CONV_ARCH) instead of the LSNN
    arch: Optional[str] = None
    n_fixed: Optional[int] = None  # test trials run in neurosim's fixed-point mode (None: all)


def conv_config(**changes: Any) -> DemoConfig:
    """The conv demo: issue 19's conv SNN (every layer resetting to zero, as Lava's LIF, NIR and NetX
    do) on the event digits, 8 epochs as issue 19 measured it
    (the kept epoch chosen on the validation split), the fixed-point accuracy on every test trial
    (simulate_fixed runs the convolutions as FixedConv: about 0.05 s a trial) and Lava on 4."""
    base = dict(task="nmnist_digits", arch=CONV_ARCH, epochs=8, n_check=4)
    return DemoConfig(**{**base, **changes})


@dataclass
class DemoResult:
    """Figures and files of one demo run. test_accuracy: the trainer's (torch float32) at the
    kept epoch; simulated_accuracy: neurosim float64 on the whole test set; accuracy: every
    arithmetic's per-trial scores (neurosim.cli.demo_accuracy), columns: (label, first k trials)."""

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
    accuracy: list[Any] = field(default_factory=list)  # demo_accuracy.Scores, one per arithmetic
    columns: list[tuple[str, int]] = field(default_factory=list)
    epoch: str = ""  # which epoch was kept and why
    chip: Any = None  # mapping.chip_report.ChipReport on Loihi 2 of the test-set run, or the refusal (str)


def register(sub: Any) -> None:
    """Add the `demo` subparser to `sub` (argparse subparsers of the neurosim CLI)."""
    positive_int = int_at_least(1)
    d, c = DemoConfig(), conv_config()
    p = sub.add_parser(
        "demo", help="the main job: train an LSNN (or, with --arch conv, a conv SNN), simulate, export, "
                     "cross-check, write a report",
        description="Train a recurrent ALIF network (LSNN) on a bundled task (with --arch conv: issue 19's conv "
                    "SNN on the event digits nmnist_digits, the epoch kept chosen on the validation split), "
                    "simulate the trained network "
                    "on the test set in neurosim (CuPy on a GPU, else numba or NumPy), export it to NIR, "
                    "NetX and a Brian2 script, cross-check it in Brian2 and Lava (floating and fixed point) "
                    "and write DIR/report.md and DIR/report.html (training curve, test accuracy in torch, "
                    "neurosim float64, neurosim fixed point and Lava fixed point, rasters of "
                    "every simulator, activity maps of shaped layers, agreement table, the Loihi 2 resource "
                    "and cost report, quantisation error, "
                    "timings, versions). Exit code 1 "
                    "when the task bar or exact cross-check agreement is not reached (a skipped target, or no "
                    "exact comparison, counts as not reached). A failed run removes the directory it created, "
                    "unless training already saved a checkpoint.")
    p.add_argument("--out", default=os.path.join("runs", "demo"), metavar="DIR",
                   help="run directory, created if missing (default runs/demo)")
    p.add_argument("--arch", default=None, metavar="conv|SPEC",
                   help="train a layered model instead of the LSNN: 'conv' (" + CONV_ARCH + ") or any "
                        "'neurosim train --arch' spec or JSON file; its task defaults to nmnist_digits")
    p.add_argument("--task", default=None,
                   help=f"bundled task (default {d.task}; with --arch {c.task})")
    p.add_argument("--rule", default=d.rule,
                   help=f"learning rule: bptt, ottt, eprop or ratebp, as for 'neurosim train' (default {d.rule})")
    p.add_argument("--hidden", type=positive_int, default=d.hidden, metavar="N",
                   help=f"hidden ALIF neurons of the LSNN (default {d.hidden})")
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help=f"training epochs (default {d.epochs}; with --arch {c.epochs})")
    p.add_argument("--n-train", type=positive_int, default=None, metavar="N",
                   help="training samples (default: 2048 for store_recall, whose 512 overfit; else the task's)")
    p.add_argument("--n-test", type=positive_int, default=None, metavar="N", help="test samples (task default)")
    p.add_argument("--n-check", type=positive_int, default=None, metavar="N",
                   help=f"test trials run in every cross-check target, Lava fixed point's accuracy among them "
                        f"(default {d.n_check}; with --arch {c.n_check})")
    p.add_argument("--n-fixed", type=positive_int, default=None, metavar="N",
                   help="test trials run in neurosim's fixed-point mode for its accuracy (default: all)")
    p.add_argument("--against", default=",".join(d.targets), metavar="T1,T2",
                   help=f"cross-check targets (default {','.join(d.targets)})")
    p.add_argument("--backend", default=d.backend, choices=("numpy", "numba", "cupy", "auto"),
                   help="neurosim backend for the test-set simulation (default auto)")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"),
                   help="where training runs (default auto: CUDA when torch sees a GPU, else the CPU)")
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

    base = conv_config() if args.arch is not None else DemoConfig()
    task = args.task or base.task
    bundled = sorted(t for t in TASKS if t not in EVENT_TASKS)  # event datasets need a root: 'neurosim train'
    if task not in bundled:  # checked before anything is created
        extra = (f" (the event dataset {task} needs --task-option root=PATH: use 'neurosim train')"
                 if task in EVENT_TASKS else "")
        raise NeurosimError(f"--task {task}: expected one of {', '.join(bundled)}{extra}")
    rules = [r for r in RULE_NAMES if r not in ("tbptt", "budgeted")]  # those need --k / --budget
    if args.rule not in rules:
        raise NeurosimError(f"--rule {args.rule}: the demo trains with one of {', '.join(rules)} (for other rules "
                            "use 'neurosim train')")
    arch = resolve_arch(args.arch)
    if arch is not None:
        _check_arch(arch)
    paths.check_directory(args.out, "--out")
    resolve_backend(args.backend)  # an unusable backend fails now, not after training
    from training.trainer import pick_device

    pick_device(args.device)  # --device cuda without a GPU fails now, in one line (run_demo records the device)
    pick = lambda given, default: default if given is None else given  # noqa: E731
    config = dataclasses.replace(
        base, task=task, rule=args.rule, hidden=args.hidden, epochs=pick(args.epochs, base.epochs),
        n_train=args.n_train, n_test=args.n_test, n_check=pick(args.n_check, base.n_check),
        n_fixed=pick(args.n_fixed, base.n_fixed), targets=targets, backend=args.backend, device=args.device, seed=args.seed,
        arch=arch)
    # a failure removes what the run created, unless training already saved a checkpoint (resumable)
    with paths.output_directory(args.out, "--out", keep=("checkpoint.pt",)):
        result = run_demo(config, args.out, progress=not args.no_progress)
    problems = check_bar(result)
    for p in problems:
        print(f"demo: {p}")
    return 1 if problems else 0


def _check_arch(arch: str) -> None:
    """--arch parses as 'neurosim train --arch' does (before anything is created)."""
    from training.layered import parse_arch

    try:
        parse_arch(arch)  # a spec, or a JSON model file
    except NetworkError as exc:
        raise NeurosimError(f"--arch: {exc}") from None


def run_demo(config: DemoConfig, out: str, *, progress: bool = True, log: Any = print) -> DemoResult:
    """Run every stage into directory `out` (created if missing); see the module docstring."""
    from mapping.agreement import crosscheck
    from training.trainer import TrainConfig, pick_device

    from .. import backends, storage
    from ..metrics import neurobench_metrics
    from ..simulate import simulate
    from .demo_accuracy import READOUT, fixed_readout, scores_of, test_spikes, torch_readout
    from .demo_train import train_stage

    os.makedirs(out, exist_ok=True)
    files: dict[str, str] = {}
    stages: dict[str, float] = {}
    t_all = time.perf_counter()

    # 1. train ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    tc = TrainConfig(task=config.task, rule=config.rule, epochs=config.epochs, batch_size=config.batch_size,
                     lr=config.lr, seed=config.seed, hidden=config.hidden, model=config.model,
                     n_train=config.n_train if config.n_train is not None else DEMO_N_TRAIN.get(config.task),
                     n_test=config.n_test, tau_adapt=config.tau_adapt, clip=config.clip,
                     arch=resolve_arch(config.arch))
    run_dir = os.path.join(out, "train")
    device = str(pick_device(config.device).type)
    config = dataclasses.replace(config, device=device)  # the report names the device used, not 'auto'
    trained = train_stage(tc, run_dir, progress=progress, device=device)  # the demo owns its directory
    task, net = trained.task, trained.network
    # the report's configuration table gives the trial counts used, not None for "the default"
    n_fixed = len(task.test) if config.n_fixed is None else min(config.n_fixed, len(task.test))
    n_val = len(task.val) if getattr(task, "val", None) is not None else 0  # drawn from the n_train samples
    config = dataclasses.replace(config, n_train=len(task.train) + n_val, n_test=len(task.test), n_fixed=n_fixed)
    test_acc = trained.test_accuracy
    stages["train"] = time.perf_counter() - t0
    files.update(curve=os.path.join(run_dir, "curve.png"), metrics=os.path.join(run_dir, "metrics.csv"),
                 checkpoint=os.path.join(run_dir, "checkpoint.pt"))
    what = f"layered {config.arch}" if config.arch else f"{config.model} x {config.hidden}"
    epoch = f"epoch {trained.epoch + 1} of {len(trained.history)}, {trained.chosen_by}"
    log(f"[demo] trained {what} on {config.task} with {config.rule} on {device}: kept {epoch}; test accuracy {test_acc:.3f} "
        f"(bar {task.bar}) in {stages['train']:.1f} s")

    # 2. simulate the trained network on the test set --------------------------------------
    t0 = time.perf_counter()
    files["model"] = os.path.join(out, "model.h5")
    storage.save(net, files["model"])
    spikes_in = test_spikes(task)  # (T, N, n_in)
    backend = backends.resolve(config.backend)
    sim = simulate(net, {"in": spikes_in}, task.steps, backend=backend, traces={READOUT: ["v"]}, progress=progress)
    metrics = neurobench_metrics(net, sim)
    files["simulation"] = os.path.join(out, "simulate.h5")
    storage.save_result(sim, files["simulation"])
    stages[f"simulate test set ({backend})"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    chip = _chip_report(net, sim, out, files, log)
    stages["resource and cost report (Loihi 2)"] = time.perf_counter() - t0

    # 3. accuracy in every arithmetic --------------------------------------------------------
    t0 = time.perf_counter()
    evals = [scores_of("torch (float32)", "the trained torch module", task, torch_readout(trained.model, task)),
             scores_of("neurosim (float64)", f"neurosim.simulate ({backend})", task, sim.traces[READOUT]["v"])]
    sim_acc = evals[1].accuracy()
    v_fixed, _ = fixed_readout(net, task, n_fixed, progress=progress)
    evals.append(scores_of("neurosim fixed point", "simulate_fixed of quantize(network); readout v decoded "
                           "from its integers", task, v_fixed))
    stages[f"fixed-point accuracy ({n_fixed} trials)"] = time.perf_counter() - t0
    log(f"[demo] test accuracy: torch {evals[0].accuracy():.4f}, neurosim float64 ({backend}) {sim_acc:.4f}, "
        f"neurosim fixed point {evals[2].accuracy():.4f} (first {n_fixed} trials)")

    # 4. export ----------------------------------------------------------------------------
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

    # 5. cross-check -----------------------------------------------------------------------
    t0 = time.perf_counter()
    n = min(config.n_check, spikes_in.shape[1])
    check = crosscheck(net, {"in": spikes_in[:, :n]}, task.steps, list(config.targets), seed=config.seed,
                       progress=progress)
    reports = check.write_report(os.path.join(out, "crosscheck"))
    files.update({f"crosscheck_{k}": v for k, v in reports.items()})
    stages["cross-check"] = time.perf_counter() - t0
    for target, reason in check.skipped.items():
        log(f"[demo] cross-check {target}: skipped ({reason})")
    lava = check.results.get("lava-fixed")
    if lava is not None and READOUT in lava.traces:
        evals.append(scores_of("Lava fixed_pt", "the cross-check's Lava run (Loihi2SimCfg fixed_pt)", task,
                               lava.traces[READOUT]["v"]))
    columns = [(f"all {len(task.test)} test trials", len(task.test))]
    columns += [(f"first {k} trials", k) for k in sorted({n_fixed, n}, reverse=True) if k < len(task.test)]

    # 6. report ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    files["rasters"] = os.path.join(out, "rasters.png")
    plot_rasters(check.results, files["rasters"], net)
    if any(len(p.shape) > 1 for p in net.populations):
        files["activity"] = os.path.join(out, "activity.png")
        plot_activity(check.results["neurosim"], files["activity"], net)
    stages["report"] = time.perf_counter() - t0
    stages["total"] = time.perf_counter() - t_all
    res = DemoResult(config, test_acc, sim_acc, task.bar, stages, files, exports, check, quantisation, versions(),
                     metrics, evals, columns, epoch, chip)
    files["report"] = os.path.join(out, "report.md")
    files["html"] = os.path.join(out, "report.html")
    write_text(files["report"], report_markdown(res, out))
    write_text(files["html"], report_html(res, out))
    log(f"[demo] wrote {files['report']} and {files['html']} ({stages['total']:.1f} s in all)")
    return res


def _chip_report(net: Any, sim: Any, out: str, files: dict[str, str], log: Any) -> Any:
    """mapping.chip_report of `net` on Loihi 2 with the activity of the test-set run `sim`
    (written to DIR/loihi2.md and .json, as ``neurosim map`` writes them); the refusal's reason
    (str) when no placement exists."""
    from mapping.chip_report import chip_report
    from mapping.chips import ChipError, load_chip

    try:
        rep = chip_report(net, sim, load_chip("loihi2"))
    except ChipError as exc:
        log(f"[demo] resource report (Loihi 2): does not fit: {exc}")
        return f"does not fit: {exc}"
    files["chip_md"], files["chip_json"] = os.path.join(out, "loihi2.md"), os.path.join(out, "loihi2.json")
    write_text(files["chip_md"], rep.markdown())
    write_text(files["chip_json"], rep.to_json())
    log("[demo] resource report (Loihi 2): " + "; ".join(f"{k} {v}" for k, v in rep.rows()[1:4]))
    return rep


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
