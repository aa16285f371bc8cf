"""The ``flowprep`` console script: Ctrl-C or SIGTERM before the CLI is ready is one line, not a traceback.

Importing :mod:`flowprep.cli` takes a second or two (every command module and the stages it
names, numpy, click). Until :func:`flowprep.cli.main` installs its signal handlers, Python's
default Ctrl-C handler raises KeyboardInterrupt wherever the import is, and SIGTERM kills the
process silently. :func:`main` answers both with ``flowprep: interrupted`` on stderr and exit status
130 (SIGINT) or 143 (SIGTERM, 128 + 15, what a shell reports for a process killed by it), as the
CLI does once its handlers are in place (the command's own cleanup and messages). This module
imports only the standard library, the cheap package root and :mod:`flowprep.errors`; a signal during interpreter
start-up, before it runs, still gets Python's default answer.
"""

from __future__ import annotations

import signal
import sys

from flowprep.errors import Terminated, interrupt_status


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


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
        return interrupt_status(exc)
    return 0
