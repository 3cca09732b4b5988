"""Entry script of the one-folder bundle (packaging/vlascope.spec): ``vlascope.cli:main``.

Two things a frozen executable must do itself, since it is not a Python interpreter:
- ``multiprocessing.freeze_support()``: local sweeps start workers with the "spawn" method,
  which re-runs this executable with multiprocessing's own arguments;
- ``-c CODE``: ``vlascope doctor`` probes EGL and the display in a child process
  (``sys.executable -c CODE``) so that a crash there does not take the doctor down; in the
  bundle ``sys.executable`` is this program, so it runs such code like ``python -c``.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if len(sys.argv) >= 3 and sys.argv[1] == "-c":
        code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
        # in __main__'s namespace, as python -c runs it (cProfile.run("...") then works)
        exec(compile(code, "<string>", "exec"), globals())
        sys.exit(0)
    from vlascope.cli import main

    sys.exit(main())
