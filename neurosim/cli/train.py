"""`neurosim train`: argument definitions and the command (torch is imported only when it runs)."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from typing import Any

from .common import SIGTERM_ARRIVED, int_at_least, key_value, seed_arg


# event datasets read from local files through tonic (training.tasks.tonic_data): --task-option root=PATH
EVENT_TASKS = ("shd", "ssc", "nmnist", "dvs_gesture")


def rule_and_task_choices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The choices of --rule and --task: the rules of training.rules and the methods with their own
    model (training.methods.METHODS), the bundled tasks and those of the methods."""
    from training.methods import METHODS

    rules = ("bptt", "tbptt", "budgeted", "ottt", "eprop", "ratebp") + tuple(METHODS)
    tasks = tuple(dict.fromkeys(("store_recall", "evidence", "delayed_xor", "delayed_copy", "digits", "nmnist_digits")
                                + tuple(t for m in METHODS.values() for t in m.tasks) + EVENT_TASKS))
    return rules, tasks


def register(sub: Any) -> argparse.ArgumentParser:
    """Add the `train` subparser to `sub` (argparse subparsers of the neurosim CLI); returns it."""
    positive_int = int_at_least(1)
    rules, tasks = rule_and_task_choices()
    p = sub.add_parser(
        "train", help="train a recurrent spiking network on a bundled task",
        description="Train input -> recurrent LIF/ALIF -> LI readout, or the layered (convolutional) model of --arch, on a bundled task with a learning rule. "
                    "Writes into --out, atomically after every epoch: checkpoint.pt, metrics.csv, curve.png "
                    "and config.json; at the end, for the rules that train a neurosim network (all but ep, "
                    "msg and sab, which bring their own models), the trained network as model.h5 (neurosim "
                    "HDF5). --resume continues from the last checkpoint with the options of RUN_DIR/config.json "
                    "(only --out is needed; an option given again must match, --epochs may extend a constant "
                    "schedule) and ends with the same weights as an uninterrupted run; a run directory that "
                    "holds a run is refused without --resume or --overwrite. Epochs are numbered from 1 on the "
                    "console, in metrics.csv and in curve.png.")
    p.add_argument("--task", default=None, choices=tasks,
                   help="bundled task (no download), or an event dataset from local files (shd, ssc, nmnist, "
                        "dvs_gesture: --task-option root=PATH; nothing is downloaded); required unless --resume "
                        "reads it from RUN_DIR/config.json")
    p.add_argument("--rule", default="bptt", choices=rules,
                   help="bptt: full BPTT; tbptt: truncated every --k steps; budgeted: exact BPTT within "
                        "--budget memory (Gruslys et al. 2016); ottt: online training through time (Xiao et al. "
                        "2022); eprop: eligibility propagation (Bellec et al. 2020); ratebp: rate-based "
                        "backpropagation (Yu et al. 2024); ep: Equilibrium Propagation in discrete time "
                        "(Ernoult et al. 2019; task digits_static); msg: spiking graph network on manifolds "
                        "trained by differentiation via manifold (Sun et al. 2024; tasks sbm, graph); sab: Sparse "
                        "Attentive Backtracking (Ke et al. 2018; tasks copy, adding, digits; LSTM or LIF/ALIF cell). "
                        "ep, msg and sab take --rule-option KEY=VALUE")
    p.add_argument("--k", type=positive_int, default=None, metavar="STEPS", help="truncation length for tbptt")
    p.add_argument("--budget", default=None, metavar="N|BYTES",
                   help="for budgeted: number of stored hidden states, or bytes such as 64MB or 1.5GiB")
    p.add_argument("--policy", default="hsm", choices=("hsm", "ism", "mixed"),
                   help="budgeted: what the schedule may store (hidden states, internal states, or both)")
    p.add_argument("--block", type=block_length, default="auto", metavar="W|auto",
                   help="budgeted: plan over blocks of W steps, each run with one graph and one backward "
                        "call (fewer autograd calls for W steps' graph of working memory); auto (default) "
                        "picks W on the first batch from the plan's cost for the byte budget "
                        "(training.rules.BudgetedBPTT.choose_block; 1 for a budget counted in states)")
    p.add_argument("--update", default="sequence", choices=("sequence", "step"),
                   help="ottt: accumulate over each sequence and update once (default), or update after "
                        "every step with a loss (OTTT_O)")
    p.add_argument("--feedback", default="symmetric", choices=("symmetric", "random"),
                   help="eprop: learning signal through the readout weights (default) or a fixed random matrix")
    p.add_argument("--epochs", type=positive_int, default=10, metavar="N", help="training epochs (default 10)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B", help="mini-batch size (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    p.add_argument("--hidden", type=positive_int, default=64, metavar="N", help="hidden neurons (default 64)")
    p.add_argument("--arch", default=None, metavar="SPEC|FILE.json",
                   help="a layered model instead of the recurrent one (--hidden, --model): layers separated by "
                        "commas, e.g. 'conv(12,k=5,s=2,p=2),pool(2),conv(32,k=3,p=1),pool(2),flatten,dense(10)' "
                        "(conv, pool, flatten, dense, rdense; neuron=lif|alif|if|li, beta=, theta=, train=beta+theta; "
                        "see training.layered.spec), or a JSON model file")
    p.add_argument("--model", default="alif", choices=("alif", "lif"), help="hidden neuron model (default alif)")
    p.add_argument("--reset", default="subtract", choices=("subtract", "zero"),
                   help="reset of the spiking neurons (hidden, and a LIF readout): subtract theta (default) or "
                        "set v to 0 (Lava's LIF: --model lif --reset zero exports to NetX)")
    p.add_argument("--readout", default="li", choices=("li", "lif"),
                   help="readout population: li, a non-spiking leaky integrator (default; in NetX a CUBA layer "
                        "that never reaches its threshold, read through its v), or lif, a spiking LIF (theta 1, "
                        "--reset); the loss reads the readout's membrane potential either way")
    p.add_argument("--tau-adapt", type=float, default=0.2, metavar="SECONDS",
                   help="ALIF adaptation time constant in seconds (default 0.2; the e-prop evidence task used 2.0)")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "constant"),
                   help="learning rate per epoch: cosine decay from --lr to 0 over --epochs (default), or constant")
    p.add_argument("--adapt", type=float, default=1.8, metavar="B",
                   help="ALIF threshold adaptation strength b (default 1.8): a spike raises the threshold by "
                        "b*(1 - exp(-dt/tau_adapt)); e-prop's evidence tutorial corresponds to b of about 35 "
                        "with --tau-adapt 2.0")
    p.add_argument("--clip", type=float, default=None, metavar="NORM",
                   help="clip the gradient's global norm to NORM before each update (default: no clipping)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="floating-point type of weights, states and gradients (default float32; float64 for "
                        "comparisons at rounding level, e.g. of a --nproc run with one process)")
    p.add_argument("--quantize", default=None, choices=("loihi",),
                   help="quantisation-aware training: the forward pass runs the network's Loihi fixed-point "
                        "arithmetic (neurosim.fixed_point: 8-bit weight mantissas with a shared exponent, 12-bit "
                        "decays and thresholds, the integer neuron step) with straight-through gradients, so the "
                        "test accuracy is that of quantize(model.h5) run by simulate_fixed or Lava fixed_pt. "
                        "Needs --dtype float64 and rule bptt, tbptt or budgeted; also for --arch (conv layers run as "
                        "their CSR lowering does in the fixed-point mode; layers with trainable beta, theta or bias are "
                        "refused); model.h5 holds the float weights that quantise to the trained integers")
    p.add_argument("--surrogate", default="fast_sigmoid", choices=("fast_sigmoid", "atan", "triangle"),
                   help="pseudo-derivative of the spike (default fast_sigmoid)")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE", dest="task_option",
                   type=key_value,
                   help="override one of the task's options (repeatable), e.g. --task-option coding=regular "
                        "--task-option row_steps=20 for digits; the options are those of the task's builder in "
                        "training.tasks")
    p.add_argument("--rule-option", action="append", default=[], metavar="KEY=VALUE", dest="rule_option",
                   type=key_value,
                   help="an option of a method with its own model (sab, ep, msg; repeatable), e.g. "
                        "--rule-option k_att=10; the options are listed in the method's module docstring")
    p.add_argument("--n-train", type=positive_int, default=None, metavar="N", help="training samples (task default)")
    p.add_argument("--n-test", type=positive_int, default=None, metavar="N", help="test samples (task default)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of data, initial weights and shuffling (default 0)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (created if missing)")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/checkpoint.pt with the options in RUN_DIR/config.json")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a RUN_DIR that holds a run (without it, such a RUN_DIR is refused: "
                        "--resume continues it)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="torch device (default auto: CUDA when torch sees a GPU, else CPU)")
    p.add_argument("--nproc", type=positive_int, default=1, metavar="N",
                   help="data-parallel processes on this machine (default 1): each trains on 1/N of every batch, "
                        "gradients are averaged (gloo on CPU, NCCL with one GPU per process); the result equals "
                        "one process up to float summation order. 'torchrun -m neurosim train ...' works too")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    return p


def block_length(text: str) -> Any:
    """--block: 'auto' or a whole number of steps >= 1."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 1 or 'auto', got {text!r}")
    return int(text)


def task_options(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The --task-option pairs (parsed by neurosim.cli.common.key_value) as a dict; the options that
    have their own flag are refused."""
    from neurosim.errors import NeurosimError

    for key, value in pairs:
        if key in ("seed", "n_train", "n_test"):
            raise NeurosimError(f"--task-option {key}={value}: use --{key.replace('_', '-')} for this option")
    return dict(pairs)


def cmd_train(args: argparse.Namespace) -> int:
    """`neurosim train`: check the options, then train into --out (or start --nproc ranks that do)."""
    from neurosim.errors import NeurosimError

    import torch

    from training import distributed
    from training.methods import METHODS
    from training.trainer import TrainConfig, pick_device, train

    from .train_resume import epoch_printer, print_resume_hint, resumed_arguments

    if args.resume:
        args = resumed_arguments(args, register)
    elif args.task is None:
        raise NeurosimError("--task: required to start a run (or --resume to continue the run in --out)")
    names = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names},
                         task_options=task_options(args.task_option), rule_options=dict(args.rule_option))
    if config.clip is not None and not (config.clip > 0 and config.clip < float("inf")):
        raise NeurosimError(f"--clip: expected a finite gradient norm > 0, got {config.clip}")
    if not (config.tau_adapt > 0 and config.tau_adapt < float("inf")):
        raise NeurosimError(f"--tau-adapt: expected a finite time constant > 0 seconds, got {config.tau_adapt}")
    if not (config.adapt >= 0 and config.adapt < float("inf")):
        raise NeurosimError(f"--adapt: expected a finite adaptation strength >= 0, got {config.adapt}")
    if not (config.lr > 0 and config.lr < float("inf")):
        raise NeurosimError(f"--lr: expected a finite learning rate > 0, got {config.lr}")
    if config.rule == "tbptt" and config.k is None:
        raise NeurosimError("--k: rule tbptt needs a truncation length, e.g. --k 50")
    if config.rule == "budgeted" and config.budget is None:
        raise NeurosimError("--budget: rule budgeted needs a budget, e.g. --budget 20 or --budget 64MB")
    if config.k is not None and config.rule not in ("tbptt", *METHODS):
        raise NeurosimError(f"--k {config.k}: only rule tbptt truncates")
    if config.budget is not None and config.rule != "budgeted":
        raise NeurosimError(f"--budget {config.budget}: only rule budgeted works within a memory budget")
    if config.policy != "hsm" and config.rule != "budgeted":
        raise NeurosimError(f"--policy {config.policy}: only rule budgeted chooses what to store")
    if args.block != "auto" and config.rule != "budgeted":
        raise NeurosimError(f"--block {config.block}: only rule budgeted plans over blocks")
    if config.update != "sequence" and config.rule != "ottt":
        raise NeurosimError(f"--update {config.update}: only rule ottt updates during a sequence")
    if config.feedback != "symmetric" and config.rule != "eprop":
        raise NeurosimError(f"--feedback {config.feedback}: only rule eprop uses a feedback matrix")
    if config.readout == "lif" and config.rule == "eprop":
        raise NeurosimError("--readout lif: rule eprop's learning signal assumes a non-spiking LI readout; "
                            "use --readout li or another rule")
    if distributed.rank_environment():
        if args.nproc not in (1, int(os.environ["WORLD_SIZE"])):
            raise NeurosimError(f"--nproc {args.nproc}: this process is one of {os.environ['WORLD_SIZE']} ranks "
                                "started by torchrun; leave --nproc out under torchrun")
    elif args.nproc > 1:
        if args.nproc > config.batch_size:
            raise NeurosimError(f"--nproc {args.nproc}: more processes than samples in a batch (--batch-size "
                                f"{config.batch_size}); every process trains on a share of each batch")
        gpus = torch.cuda.device_count() if pick_device(args.device).type == "cuda" else 0
        cores = os.cpu_count() or 1
        if not gpus and args.nproc > cores:
            raise NeurosimError(f"--nproc {args.nproc}: this machine has {cores} CPU cores; use --nproc {cores} "
                                "or fewer")
        if 0 < gpus < args.nproc:
            raise NeurosimError(f"--nproc {args.nproc}: NCCL needs one GPU per process and torch sees {gpus}; "
                                f"use --nproc {gpus} or --device cpu")
        return distributed.launch(args.argv, args.nproc)
    main_rank = os.environ.get("RANK", "0") == "0"
    printed: list[dict[str, float]] = []  # the rows whose line epoch_printer wrote
    try:
        result = train(config, args.out, resume=args.resume, progress=not args.no_progress, device=args.device,
                       overwrite=args.overwrite, on_epoch=epoch_printer(config, printed) if main_rank else None)
    except BaseException as exc:  # Ctrl-C or SIGTERM (Terminated, or a library's error it became): say how to go on
        if main_rank and (isinstance(exc, KeyboardInterrupt) or SIGTERM_ARRIVED.is_set()):
            print_resume_hint(args.out)
        raise
    if not main_rank:
        return 0
    last = result["history"][-1] if result["history"] else None
    if last and not printed:  # a method's own loop, or a resumed run with no epoch left
        print(f"epoch {int(last['epoch']) + 1}: train loss {last['train_loss']:.4f}, "
              f"test accuracy {last['test_acc']:.3f}")
    if last and "val_acc" in last:  # model selection: report the test accuracy at the best validation epoch
        best = max(result["history"], key=lambda row: row["val_acc"])
        print(f"best validation accuracy {best['val_acc']:.3f} at epoch {int(best['epoch']) + 1}: "
              f"test accuracy {best['test_acc']:.3f}")
    files = result.get("files", ("model.h5", "metrics.csv", "curve.png", "checkpoint.pt"))
    print(f"wrote {args.out}/{', '.join(files)}")
    return 0
