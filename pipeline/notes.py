"""Notes that may come by the thousand (one per book): each said once, the first few in full, the rest counted."""

import sys
from collections.abc import Callable, Hashable


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class CappedNotes:
    """One line per note, once per key, for the first `limit` keys; `flush()` then counts the others in one line.

        notes = CappedNotes(limit=2, rest="note: and {count:,} more")
        for name in ["a", "b", "a", "c", "d"]:
            notes.add(name, f"note: {name}")
        notes.flush()
    prints 'note: a', 'note: b', 'note: and 2 more'. A key added again (a book read a second time) is not
    noted again, so one object per run reports each book once however often the books are read.
    """

    def __init__(self, *, limit: int, rest: str, notify: Callable[[str], None] = print_to_stderr):
        self.limit, self.rest, self.notify = limit, rest, notify
        self.keys = set()
        self.unshown = 0  # notes held back since the last flush

    def add(self, key: Hashable, message: str) -> None:
        if key in self.keys:
            return
        self.keys.add(key)
        if len(self.keys) <= self.limit:
            self.notify(message)
        else:
            self.unshown += 1

    def flush(self) -> None:
        """The line counting the notes held back (`rest` with {count}), if any."""
        if self.unshown:
            self.notify(self.rest.format(count=self.unshown))
            self.unshown = 0
