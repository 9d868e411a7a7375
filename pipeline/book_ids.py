"""The --books syntax: "84,1342", "1000-1100", "@ids.txt", "author:austen lang:en" -> the ebook ids, in order, each once."""

import pathlib
import re
from collections.abc import Callable, Sequence

from errors import UserError
from pipeline.book_queries import looks_like_query

MAX_BOOK_IDS = 100_000  # more than Gutenberg holds: a larger --books is a typo in a range


def parse_book_ids(text: str, *, select_books: Callable[[str], Sequence[int]] | None = None) -> tuple[int, ...]:
    """The ebook ids that a --books value names, in order, each once.

    '84, 1342,1000-1003' -> (84, 1342, 1000, 1001, 1002, 1003); '@ids.txt' reads ids from a file,
    one or more per line (commas or spaces between them), ranges allowed, '#' starts a comment.
    A catalog query between commas ('shelf:"Gothic Fiction",1342') is resolved by `select_books(query)`.
    """
    ids = []
    for item in _split_outside_quotes(text):
        if looks_like_query(item):
            if select_books is None:
                raise UserError(f"--books {item!r} is a catalog query, which this command cannot look up; give ebook ids")
            ids.extend(select_books(item))
            continue
        for word in _id_items(item):
            if word.startswith("@"):
                ids.extend(_ids_in_file(word[1:]))
            else:
                ids.extend(_parse_id_item(word, where="--books"))
        if len(ids) > MAX_BOOK_IDS:
            raise UserError(f"--books names more than {MAX_BOOK_IDS:,} ebooks; check its ranges")
    return tuple(dict.fromkeys(ids))


def holds_query(text: str) -> bool:
    """Whether a --books value holds a catalog query, and so needs the catalog."""
    return any(looks_like_query(item) for item in _split_outside_quotes(text))


def _split_outside_quotes(text: str) -> list[str]:
    """'shelf:"Gothic, Horror",1342' -> ['shelf:"Gothic, Horror"', '1342']: the items between commas, stripped."""
    items = re.findall(r'(?:"[^"]*"?|[^,"])+', text)
    return [item.strip() for item in items if item.strip()]


def _id_items(text: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", text) if item]


def _parse_id_item(item: str, *, where: str) -> range:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
    if not match:
        raise UserError(f"{where}: {item!r} is not an ebook id or a range of them; write e.g. 84 or 1000-1100")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if first == 0:
        raise UserError(f"{where}: {item!r}: Gutenberg ebook ids start at 1")
    if last < first:
        raise UserError(f"{where}: the range {item!r} runs backwards; write {last}-{first}")
    if last - first >= MAX_BOOK_IDS:
        raise UserError(f"{where}: the range {item!r} names more than {MAX_BOOK_IDS:,} ebooks; check it")
    return range(first, last + 1)


def _ids_in_file(name: str) -> list[int]:
    path = pathlib.Path(name).expanduser()
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not a text file"
        raise UserError(
            f"cannot read the --books file {name!r}: {reason}; give @ and the path of a file of ebook ids"
        ) from None
    ids = []
    for number, line in enumerate(lines, start=1):
        for item in _id_items(line.partition("#")[0]):
            if item.startswith("@"):
                raise UserError(f"{name} line {number}: a --books file cannot name another file ({item!r})")
            ids.extend(_parse_id_item(item, where=f"{name} line {number}"))
            if len(ids) > MAX_BOOK_IDS:
                raise UserError(f"{name} names more than {MAX_BOOK_IDS:,} ebooks; check its ranges")
    if not ids:
        raise UserError(f"the --books file {name} holds no ebook ids; write one or more per line, e.g. 84 or 1000-1100")
    return ids
