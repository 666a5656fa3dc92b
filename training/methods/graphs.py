"""Node-classification graphs: a seeded stochastic block model, and a loader for a user's files.

A :class:`Graph` has N nodes, undirected edges (each unordered pair once, no self-loops),
features (N, F) float64, integer labels (N,) in [0, C) and boolean train/val/test masks that
partition the nodes. :meth:`Graph.norm_adjacency` gives the GCN propagation matrix
``A_hat = D^-1/2 (A + I) D^-1/2`` (Kipf & Welling 2017) as a torch sparse tensor.

Stochastic block model (`sbm`): node n is in block y_n = n mod C (balanced classes); each
unordered pair (m, n) is an edge with probability p_in if y_m = y_n else p_out, independently.
Features: ``x_n = mu[y_n] + feature_noise * eps_n`` with class means ``mu[c] ~ N(0, I_F)``
scaled to norm `separation` and ``eps_n ~ N(0, I_F)``. Everything derives from `seed`.

User files (`graph`): `edges` is a text file of two whitespace-separated integer node ids per
line (0-based; '#' starts a comment; blank lines allowed); an edge is undirected, so "i j" and
"j i" are the same edge; duplicates and self-loops are refused. `features` has one row per node
(N rows, F numbers per row, commas or whitespace between them). `labels` has one integer class
per line, N lines. Any defect is a FileFormatError naming the file, the line and the expected form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from neurosim.errors import FileFormatError, NeurosimError


@dataclass(frozen=True)
class Graph:
    """edges: (E, 2) int64 with edges[:, 0] < edges[:, 1]; features (N, F); labels (N,);
    masks (N,) bool partitioning the nodes."""

    edges: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1

    def norm_adjacency(self, dtype: Any = None, device: Any = None) -> Any:
        """``D^-1/2 (A + I) D^-1/2`` as a coalesced torch sparse COO tensor (N, N)."""
        import torch

        n = self.n_nodes
        loops = np.arange(n)
        rows = np.concatenate([self.edges[:, 0], self.edges[:, 1], loops])
        cols = np.concatenate([self.edges[:, 1], self.edges[:, 0], loops])
        deg = np.bincount(rows, minlength=n).astype(np.float64)
        vals = 1.0 / np.sqrt(deg[rows] * deg[cols])
        a = torch.sparse_coo_tensor(torch.as_tensor(np.stack([rows, cols])), torch.as_tensor(vals),
                                    (n, n), dtype=dtype or torch.float32, device=device, check_invariants=True)
        return a.coalesce()


def split_masks(n: int, seed: int, train_frac: float, val_frac: float) -> tuple[np.ndarray, ...]:
    """Random train/val/test masks of n nodes (seeded); the test set is the rest."""
    for name, f in (("train_frac", train_frac), ("val_frac", val_frac)):
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise NeurosimError(f"task option {name}: expected a fraction in (0, 1), got {f!r}")
    if train_frac + val_frac >= 1:
        raise NeurosimError(f"task options train_frac + val_frac: expected < 1 (the rest is the test set), "
                            f"got {train_frac + val_frac}")
    order = np.random.default_rng([seed, 7]).permutation(n)
    n_tr, n_va = int(round(train_frac * n)), int(round(val_frac * n))
    if n_tr < 1 or n_va < 1 or n - n_tr - n_va < 1:
        raise NeurosimError(f"{n} nodes: too few for non-empty train/val/test splits "
                            f"(train_frac {train_frac}, val_frac {val_frac})")
    masks = []
    for sel in (order[:n_tr], order[n_tr:n_tr + n_va], order[n_tr + n_va:]):
        m = np.zeros(n, dtype=bool)
        m[sel] = True
        masks.append(m)
    return tuple(masks)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise NeurosimError(f"task option {name}: expected a whole number >= {minimum}, got {value!r}")
    return value


def _finite(name: str, value: Any, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (value > lo if lo_open else value >= lo) or value > hi:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise NeurosimError(f"task option {name}: expected a number in {rng}, got {value!r}")
    return float(value)


def sbm(n_nodes: int = 1000, n_classes: int = 4, n_features: int = 16, p_in: float = 0.015,
        p_out: float = 0.003, feature_noise: float = 1.0, separation: float = 1.0,
        train_frac: float = 0.2, val_frac: float = 0.2, seed: int = 0) -> Graph:
    """Stochastic block model with class-dependent Gaussian features (module docstring)."""
    n = _positive_int("n_nodes", n_nodes, 3)
    c = _positive_int("n_classes", n_classes, 2)
    f = _positive_int("n_features", n_features)
    if c > n:
        raise NeurosimError(f"task option n_classes: {c} classes need at least as many nodes, got n_nodes {n}")
    p_in, p_out = _finite("p_in", p_in, 0, 1), _finite("p_out", p_out, 0, 1)
    noise, sep = _finite("feature_noise", feature_noise, 0), _finite("separation", separation, 0)
    rng = np.random.default_rng([seed, 1])
    labels = np.arange(n) % c
    iu, ju = np.triu_indices(n, k=1)
    prob = np.where(labels[iu] == labels[ju], p_in, p_out)
    keep = rng.random(iu.shape[0]) < prob
    edges = np.stack([iu[keep], ju[keep]], axis=1).astype(np.int64)
    mu = rng.standard_normal((c, f))
    mu *= sep / np.maximum(np.linalg.norm(mu, axis=1, keepdims=True), 1e-12)
    features = mu[labels] + noise * rng.standard_normal((n, f))
    return Graph(edges, features, labels.astype(np.int64), *split_masks(n, seed, train_frac, val_frac))


# ----------------------------------------------------------------------------- user files


def _rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-blank, non-comment lines of `path`."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(str(path), "", f"cannot read the {what} file ({type(exc).__name__}: {exc})") from None
    out = []
    for k, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].replace(",", " ").split()
        if body:
            out.append((k, body))
    if not out:
        raise FileFormatError(str(path), "", f"the {what} file has no data lines")
    return out


def _int(path: Path, k: int, tok: str, expected: str) -> int:
    try:
        return int(tok)
    except ValueError:
        raise FileFormatError(str(path), f"line {k}", f"expected {expected}, got {tok!r}") from None


def load_graph(edges: Any, features: Any, labels: Any, *, train_frac: float = 0.2, val_frac: float = 0.2,
               seed: int = 0) -> Graph:
    """Read the user's edge list, feature and label files (module docstring for the forms)."""
    ep, fp, lp = Path(edges), Path(features), Path(labels)
    feats = []
    for k, toks in _rows(fp, "features"):
        try:
            row = [float(t) for t in toks]
        except ValueError:
            bad = next(t for t in toks if not _is_float(t))
            raise FileFormatError(str(fp), f"line {k}", f"expected numbers separated by commas or spaces, "
                                                        f"got {bad!r}") from None
        if feats and len(row) != len(feats[0]):
            raise FileFormatError(str(fp), f"line {k}", f"expected {len(feats[0])} numbers per row (as on the "
                                                        f"first row), got {len(row)}")
        if not all(math.isfinite(v) for v in row):
            raise FileFormatError(str(fp), f"line {k}", "expected finite numbers, got nan or inf")
        feats.append(row)
    n = len(feats)
    labs = []
    for k, toks in _rows(lp, "labels"):
        if len(toks) != 1:
            raise FileFormatError(str(lp), f"line {k}", f"expected one integer class per line, got {len(toks)} fields")
        y = _int(lp, k, toks[0], "an integer class >= 0")
        if y < 0:
            raise FileFormatError(str(lp), f"line {k}", f"expected an integer class >= 0, got {y}")
        labs.append(y)
    if len(labs) != n:
        raise FileFormatError(str(lp), "", f"expected one label per node: {n} lines (the rows of {fp}), "
                                           f"got {len(labs)}")
    if len(set(labs)) < 2:
        raise FileFormatError(str(lp), "", "expected at least two classes")
    seen: dict[tuple[int, int], int] = {}
    for k, toks in _rows(ep, "edges"):
        if len(toks) != 2:
            raise FileFormatError(str(ep), f"line {k}", f"expected two integer node ids 'i j', got {len(toks)} fields")
        i, j = (_int(ep, k, t, f"an integer node id in [0, {n})") for t in toks)
        for v in (i, j):
            if not 0 <= v < n:
                raise FileFormatError(str(ep), f"line {k}", f"expected node ids in [0, {n}) ({n} feature rows "
                                                            f"in {fp}), got {v}")
        if i == j:
            raise FileFormatError(str(ep), f"line {k}", f"self-loop {i} {j}: expected two different nodes "
                                                        "(the propagation adds every self-loop itself)")
        key = (min(i, j), max(i, j))
        if key in seen:
            raise FileFormatError(str(ep), f"line {k}", f"edge {i} {j} repeats line {seen[key]} "
                                                        "(edges are undirected: list each pair once)")
        seen[key] = k
    e = np.array(sorted(seen), dtype=np.int64).reshape(-1, 2)
    return Graph(e, np.asarray(feats, dtype=np.float64), np.asarray(labs, dtype=np.int64),
                 *split_masks(n, seed, train_frac, val_frac))


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def make_graph(task: str, seed: int, options: Optional[dict[str, Any]] = None) -> Graph:
    """The graph of task `task` ('sbm' or 'graph') with its task options."""
    opts = dict(options or {})
    if task == "sbm":
        known = set(sbm.__code__.co_varnames[:sbm.__code__.co_argcount]) - {"seed"}
        unknown = set(opts) - known
        if unknown:
            raise NeurosimError(f"--task-option {sorted(unknown)[0]}: not an option of task sbm "
                                f"(expected {', '.join(sorted(known))})")
        return sbm(seed=seed, **opts)
    if task == "graph":
        missing = [k for k in ("edges", "features", "labels") if k not in opts]
        if missing:
            raise NeurosimError(f"task graph: needs --task-option {missing[0]}=PATH (edges, features and labels "
                                "files; see training.methods.graphs)")
        unknown = set(opts) - {"edges", "features", "labels", "train_frac", "val_frac"}
        if unknown:
            raise NeurosimError(f"--task-option {sorted(unknown)[0]}: not an option of task graph (expected edges, "
                                "features, labels, train_frac, val_frac)")
        return load_graph(str(opts.pop("edges")), str(opts.pop("features")), str(opts.pop("labels")),
                          seed=seed, **opts)
    raise NeurosimError(f"--task {task}: not a graph task (expected sbm or graph)")
