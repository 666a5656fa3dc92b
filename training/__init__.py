"""Torch layers built from a neurosim.Network, surrogate gradients and learning rules.

Not implemented in this version: the training issue builds it on neurosim.models.neuron_step.
"""
