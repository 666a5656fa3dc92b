"""``python -m neurosim.cli`` is the ``neurosim`` command too (``python -m neurosim`` is the usual form)."""
import sys

from . import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
