"""UserError: a problem the user can fix, reported as one clear message instead of a traceback; and OS errors in few words."""

import os


class UserError(Exception):
    """Raised for bad settings, bad input files, failed downloads or damaged exports.

    The message names the problem and what to do; the command-line entry points print it
    and exit with status 2 (see cli.py).
    """


def os_error_reason(error: OSError) -> str:
    """What the system says went wrong, in its few words ("No space left on device").

    From the error number when there is one: h5py's own messages run to several lines of internals.
    """
    return os.strerror(error.errno) if error.errno else str(error)
