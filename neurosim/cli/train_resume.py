"""`neurosim train --resume` with only --out (the run's options read back from RUN/config.json),
the resume command printed after an interrupt, and the per-epoch console line (epochs counted
from 1, as in metrics.csv and curve.png)."""
from __future__ import annotations

import argparse
import os
from dataclasses import fields
from typing import Any, Callable


def resumed_arguments(args: argparse.Namespace,
                      register: Callable[[Any], argparse.ArgumentParser]) -> argparse.Namespace:
    """`args` of ``train --resume``: every run option not on the command line is read from
    RUN_DIR/config.json; `register` adds the train subparser (neurosim.cli.train.register), to
    tell which options the command line gave. The options given again are checked against the
    checkpoint's by training.runfiles.read_checkpoint, which names each one that differs."""
    import json

    from neurosim.errors import NeurosimError

    from training.config import TrainConfig

    path = os.path.join(args.out, "config.json")
    if not os.path.isfile(path):
        if args.task is not None:  # the options are all on the command line (train checks the checkpoint)
            return args
        raise NeurosimError(f"{path}: missing, so the run's options are unknown ("
                            + ("no checkpoint to resume from either; start the run without --resume)"
                               if not os.path.isfile(os.path.join(args.out, "checkpoint.pt"))
                               else "give them again, with --task)"))
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NeurosimError(f"{path}: not a readable run configuration ({type(exc).__name__}); "
                            "give the run's options again or start a new run directory") from None
    if not isinstance(saved, dict):
        raise NeurosimError(f"{path}: expected the run's options as a JSON object")
    saved = exact_types(saved, os.path.join(args.out, "checkpoint.pt"))
    given = given_options(args, register)
    merged = argparse.Namespace(**vars(args))
    fields_ = {f.name for f in fields(TrainConfig)}
    for key, value in saved.items():
        flag = {"task_options": "task_option", "rule_options": "rule_option"}.get(key, key)
        if key not in fields_ or flag in given:
            continue
        if flag in ("task_option", "rule_option"):
            if not isinstance(value, dict):
                raise NeurosimError(f"{path}: {key}: expected an object of options")
            value = list(value.items())
        setattr(merged, flag, value)
    if merged.task is None:
        raise NeurosimError(f"{path}: task: missing; give --task")
    return merged


def exact_types(saved: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    """config.json's options with the checkpoint's copy of each that JSON wrote alike (a tuple
    such as --rule-option lr_layers=(0.1, 0.05) reads back from JSON as a list)."""
    import json
    from pathlib import Path

    from training.runfiles import load_tensors

    if not os.path.isfile(checkpoint):
        return saved
    try:
        stored = load_tensors(Path(checkpoint)).get("config")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by train itself
        return saved
    if not isinstance(stored, dict):
        return saved
    out = dict(saved)
    for key, value in saved.items():
        try:
            if key in stored and json.loads(json.dumps(stored[key])) == value:
                out[key] = stored[key]
        except (TypeError, ValueError):
            continue
    return out


def given_options(args: argparse.Namespace, register: Callable[[Any], argparse.ArgumentParser]) -> set[str]:
    """The destinations of the options written on `args.argv`'s train command line (argparse
    parses it again, with the subparser `register` adds and every default None: what is not
    None was given)."""
    top = argparse.ArgumentParser(add_help=False)
    parser = register(top.add_subparsers(dest="command"))
    parser.set_defaults(**{key: None for key in vars(args)})
    argv = list(args.argv)
    start = argv.index("train") if "train" in argv else 0
    parsed = vars(parser.parse_known_args(argv[start + 1:])[0])
    return {key for key, value in parsed.items() if value is not None}


def print_resume_hint(out: str) -> None:
    """After an interrupt: the command that continues the run, if an epoch was saved."""
    import shlex
    import sys

    if os.path.isfile(os.path.join(out, "checkpoint.pt")):
        print(f"resume with: neurosim train --out {shlex.quote(out)} --resume", file=sys.stderr, flush=True)
    else:
        print("no epoch finished: nothing to resume (start the run again)", file=sys.stderr, flush=True)


def epoch_printer(config: Any, printed: list[dict[str, float]]) -> Any:
    """on_epoch callback of training.trainer.train: one line per epoch (numbered from 1, as in
    metrics.csv and curve.png), written above the progress bar; each row is appended to `printed`."""
    from tqdm.auto import tqdm

    def show(row: dict[str, float]) -> None:
        printed.append(row)
        tqdm.write(f"epoch {int(row['epoch']) + 1}/{config.epochs}: train loss {row['train_loss']:.4f}, "
                   f"train accuracy {row['train_acc']:.3f}, test accuracy {row['test_acc']:.3f}")

    return show
