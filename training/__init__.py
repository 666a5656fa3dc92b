"""Torch layers built from a neurosim.Network, surrogate gradients and learning rules.

training.layers.from_network (the SNN module, on neurosim.models.neuron_step), training.nets
(the standard recurrent network), training.layered (layered and convolutional
models from a layer spec), training.rules (the rule interface in
rules.base; BPTT, truncated and memory-budgeted BPTT, OTTT, e-prop, rate-based BP; the registry
make_rule), training.budget (Gruslys schedules and their execution, independent of the rest),
training.methods (SAB, EP, MSG: their own models), training.tasks (bundled tasks),
training.scoring (accuracy), training.config (TrainConfig), training.runfiles (checkpoints,
metrics, epoch helpers) and training.trainer (the loop behind ``neurosim train``).
"""
