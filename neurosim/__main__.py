"""``python -m neurosim`` is the ``neurosim`` command."""
import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A rank of a distributed run: every file is written (atomically) and the process group
        # is closed. Leave without running native libraries' static destructors, which
        # occasionally abort ("terminate called without an active exception") on a thread
        # still joinable at interpreter exit, turning a finished run into exit code 134.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    sys.exit(code)
