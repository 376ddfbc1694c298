"""How a command ends: its exit status, and one line on stderr when it fails.

Problems the user can fix (:class:`~emoportrait.errors.EmoportraitError`, a full disk)
end with one ``emoportrait: error: ...`` line and status 2; Ctrl-C with 130, SIGTERM
with 143; unexpected failures print one line too (``--debug`` shows the traceback) and
exit with 1. Outputs themselves are written to a temporary file and renamed at the end
by the stages (:func:`emoportrait.media.atomic_output`), so a failure leaves none behind.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import EmoportraitError

STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
"""A full disk or quota, a read-only file system, a file too large for it: the user's to fix."""


class Terminated(BaseException):
    """SIGTERM (what ``timeout``, docker and Slurm send), raised like Ctrl-C's
    KeyboardInterrupt so every ``finally`` runs and no temporary file is left."""


def _terminate(signum: int, frame) -> None:
    raise Terminated()


def check_output_folders(args: argparse.Namespace) -> None:
    """Every command's output folder (``--out`` of runs, caches and datasets, analyze's
    ``--report``) is checked before its work starts, not found unwritable at its end."""
    from .. import media

    for name in ("out", "report"):
        folder = getattr(args, name, None)
        if isinstance(folder, Path):
            media.check_output_folder(folder)


def run(handler: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    """Run a command's ``handler`` on its parsed ``args``; return the process exit status."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        check_output_folders(args)
        handler(args)
    except EmoportraitError as exc:
        print(f"emoportrait: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emoportrait: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("emoportrait: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader went away (e.g. `emoportrait info | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS:
            where = f" writing '{exc.filename}'" if exc.filename else ""
            print(f"emoportrait: error: {os.strerror(exc.errno).lower()}{where}; free some space or "
                  "write somewhere else (the partial output was removed)", file=sys.stderr)
            return 2
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"emoportrait: internal error: {type(exc).__name__}: {first_line} "
              "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
