"""Torch layers built from a neurosim.Network, surrogate gradients and learning rules.

training.layers.from_network (the SNN module, on neurosim.models.neuron_step), training.rules
(BPTT, truncated and memory-budgeted BPTT), training.ottt / eprop / ratebp (online and
rate-based rules), training.methods (SAB, EP, MSG: their own models), training.tasks (bundled
tasks), training.scoring (accuracy), training.trainer (the loop behind ``neurosim train``).
"""
