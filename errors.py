"""UserError: a problem the user can fix, reported as one clear message instead of a traceback."""


class UserError(Exception):
    """Raised for bad settings, bad input files, failed downloads or damaged exports.

    The message names the problem and what to do; the command-line entry points print it
    and exit with status 2 (see cli.py).
    """
