"""Memory-budgeted BPTT, independent of the rest of training: the Gruslys et al. 2016 dynamic
programs (`schedule`: plan, cost_tables, simulate, slots_for_bytes), their execution with torch
autograd (`execute`: budgeted_backward, full_bptt_backward, ExecStats) and the live-memory
probe (`memory`: LiveBytes). The rule that uses them on an SNN is training.rules.BudgetedBPTT.
"""
