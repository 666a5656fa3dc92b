"""The options that define a training run (`neurosim train`): stored in config.json and in
every checkpoint (training.runfiles), read by the trainer and by every method."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from neurosim.errors import NeurosimError

DTYPES = ("float32", "float64")
RESETS = ("subtract", "zero")
READOUTS = ("li", "lif")
QUANTIZE = ("loihi",)
QAT_RULES = ("bptt", "tbptt", "budgeted")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; stored in config.json and in every checkpoint."""

    task: str = "evidence"
    rule: str = "bptt"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    hidden: int = 64
    model: str = "alif"
    surrogate: str = "fast_sigmoid"
    k: Optional[int] = None
    budget: Optional[str] = None
    policy: str = "hsm"
    block: Union[int, str] = "auto"
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    tau_adapt: float = 0.2
    clip: Optional[float] = None
    update: str = "sequence"
    feedback: str = "symmetric"
    adapt: float = 1.8
    schedule: str = "cosine"
    task_options: dict[str, Any] = field(default_factory=dict)
    rule_options: dict[str, Any] = field(default_factory=dict)
    # floating-point type of weights, states and gradients (a run directory written before this
    # option existed has none in its config.json or checkpoint: it was float32)
    dtype: str = "float32"
    # reset of the spiking neurons (hidden and a LIF readout) and the readout population: a
    # non-spiking LI or a spiking LIF (runs written before these options: subtract, li)
    reset: str = "subtract"
    readout: str = "li"
    # a layered model (training.layered.parse_arch: a spec string or a JSON model file) instead of
    # the recurrent network of --hidden/--model; None (and absent from runs written before): none
    arch: Optional[str] = None
    # quantisation-aware training: the forward pass is the network's fixed-point run
    # (training.quantized); None (and absent from runs written before): float training
    quantize: Optional[str] = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise NeurosimError(f"--dtype: expected {' or '.join(DTYPES)}, got {self.dtype!r}")
        if self.reset not in RESETS:
            raise NeurosimError(f"--reset: expected {' or '.join(RESETS)}, got {self.reset!r}")
        if self.readout not in READOUTS:
            raise NeurosimError(f"--readout: expected {' or '.join(READOUTS)}, got {self.readout!r}")
        if self.quantize is not None:
            if self.quantize not in QUANTIZE:
                raise NeurosimError(f"--quantize: expected {' or '.join(QUANTIZE)}, got {self.quantize!r}")
            if self.dtype != "float64":
                raise NeurosimError(f"--quantize {self.quantize}: the fixed-point forward pass carries its integers "
                                    "exactly in float64; add --dtype float64")
            if self.rule not in QAT_RULES:
                raise NeurosimError(f"--quantize {self.quantize}: trains with {', '.join(QAT_RULES)} (rule "
                                    f"{self.rule!r} does not run the model's forward pass); use one of them")
