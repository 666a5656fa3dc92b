"""Exact accounting of tensor memory: the bytes of storages alive, counted as ops create them."""
from __future__ import annotations


class LiveBytes:
    """Context manager: peak bytes of tensor storages created inside it and still alive.

    An op's output that shares the storage of one of its inputs (a view such as ``x[t]`` or
    ``w.t()``, an in-place op) is not new memory and is not counted: data and parameters made
    before the context never count, however they are indexed inside it."""

    def __init__(self) -> None:
        import weakref

        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_map_only

        tracker = self
        self.live = self.peak = 0
        self._sizes: dict[int, int] = {}

        def track(t: "torch.Tensor") -> None:
            st = t.untyped_storage()
            key, n = st.data_ptr(), st.nbytes()
            if n == 0 or key in tracker._sizes:
                return
            tracker._sizes[key] = n
            tracker.live += n
            tracker.peak = max(tracker.peak, tracker.live)
            weakref.finalize(st, tracker._free, key)

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                seen: set[int] = set()
                dense = lambda f: lambda t: f(t) if t.layout == torch.strided else None  # noqa: E731
                # sparse tensors have no storage of their own: their dense parts are counted as made
                tree_map_only(torch.Tensor, dense(lambda t: seen.add(t.untyped_storage().data_ptr())), (args, kwargs))
                tree_map_only(torch.Tensor, dense(lambda t: None if t.untyped_storage().data_ptr() in seen
                                                  else track(t)), out)
                return out

        self._mode = Mode()

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)

    def __enter__(self) -> "LiveBytes":
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
