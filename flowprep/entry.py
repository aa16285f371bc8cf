"""The ``flowprep`` console script: Ctrl-C or SIGTERM before the CLI is ready is one line, not a traceback.

Importing :mod:`flowprep.cli` takes a second or two (every command module and the stages it
names, numpy, click). Until :func:`flowprep.cli.main` installs its signal handlers, Python's
default Ctrl-C handler raises KeyboardInterrupt wherever the import is, and SIGTERM kills the
process silently. :func:`main` answers both with ``flowprep: interrupted`` on stderr and exit status
130 (SIGINT) or 143 (SIGTERM, 128 + 15, what a shell reports for a process killed by it). Once the
CLI's handlers are in place they take over (the command's own cleanup and messages). This module
imports only the standard library and the cheap package root; a signal during interpreter
start-up, before it runs, still gets Python's default answer.
"""

from __future__ import annotations

import signal
import sys


class _Terminated(KeyboardInterrupt):
    """SIGTERM before the CLI's handlers are installed."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> int:
    """Run the CLI; return the exit status of an early interrupt (the CLI itself exits through
    :func:`sys.exit`)."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        from flowprep.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:
        # a second Ctrl-C while the line is written must not print the traceback this avoids
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("flowprep: interrupted", file=sys.stderr, flush=True)
        return 128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
    return 0
