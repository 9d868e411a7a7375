"""The catalog query language of --books: 'author:austen lang:en top:10' -> the ebook ids it selects, in a fixed order.

A query is terms `field:value`, separated by spaces; a value with spaces is quoted ('subject:"science fiction"').
Terms of different fields must all hold (AND); a field given twice is either (OR): 'lang:en lang:fr'.

    author:  the book's authors ("Austen, Jane, 1775-1817" or "Jane Austen"), not its translators, editors or illustrators
    title:   the title              subject:  a Library of Congress subject    shelf:  a Gutenberg bookshelf
    lang:    a language code, whole ('en' is not 'enm')                       type:   Text (the default), Sound, Image...
    top:N    the N most downloaded of the rest (needs the download counts)

Matching ignores case and accents ('bronte' finds Brontë) and looks for the value anywhere in the field, except lang:
and type:, which name a whole code. Books come most downloaded first with top:, by id otherwise; ties go to the lower id.
"""

import dataclasses
import itertools
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence

from errors import UserError

TEXT_FIELDS = ("author", "title", "subject", "shelf")  # matched anywhere in the field
CODE_FIELDS = ("lang", "type")  # matched as a whole code
FIELDS = (*TEXT_FIELDS, *CODE_FIELDS, "top")
DEFAULT_TYPE = "Text"  # audio books, images and data sets have no text to train on
MAX_TOP = 100_000

_TERM = re.compile(r'([A-Za-z]+):("[^"]*"|[^\s"]*)')  # a value is quoted with "..." (the shell has taken the '...')


@dataclasses.dataclass(frozen=True)
class Query:
    """A parsed query: each field's values (any of them may match), and top:N or None."""

    text: str
    values: Mapping[str, tuple[str, ...]]
    top: int | None = None


def looks_like_query(item: str) -> bool:
    """Whether a --books item is a query ('author:austen ...') rather than ids, ranges or an @file."""
    return bool(re.search(r"(^|\s)[A-Za-z]+:", item))


def parse_query(text: str) -> Query:
    """'author:austen lang:en top:3' -> Query(values={'author': ('austen',), 'lang': ('en',), 'type': ('text',)}, top=3).

    Values are folded for matching (search_key); type: defaults to Text.
    """
    if text.count('"') % 2:
        raise UserError(f"--books {text!r}: a quote is not closed; write e.g. subject:\"science fiction\"")
    values: dict[str, list[str]] = {}
    top = None
    position = 0
    for match in _TERM.finditer(text):
        _refuse_stray_words(text, text[position : match.start()])
        position = match.end()
        field, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = value[1:-1]
        if field not in FIELDS:
            raise UserError(f"--books {text!r}: {field + ':'!r} is not a query field; use {', '.join(f + ':' for f in FIELDS)}")
        if not value.strip():
            raise UserError(f"--books {text!r}: {field}: has no value; write e.g. {field}:{_EXAMPLES[field]}")
        if field == "top":
            top = _parse_top(text, value, top)
        else:
            values.setdefault(field, []).append(search_key(value))
    _refuse_stray_words(text, text[position:])
    if not values and top is not None:
        raise UserError(f"--books {text!r}: top: needs something to rank; add e.g. lang:en")
    values.setdefault("type", [search_key(DEFAULT_TYPE)])
    return Query(text=text, values={field: tuple(dict.fromkeys(v)) for field, v in values.items()}, top=top)


_EXAMPLES = {"author": "austen", "title": '"pride and prejudice"', "subject": '"science fiction"', "shelf": "gothic",
             "lang": "en", "type": "text", "top": "100"}


def _refuse_stray_words(text: str, between: str) -> None:
    if between.strip():
        word = between.split()[0]
        raise UserError(
            f"--books {text!r}: {word!r} is not a query term; write field:value (e.g. author:{word}), "
            "and put a comma between a query and ebook ids"
        )


def _parse_top(text: str, value: str, earlier: int | None) -> int:
    if earlier is not None:
        raise UserError(f"--books {text!r}: top: is given twice; give it once")
    if not value.isdigit() or not 1 <= int(value) <= MAX_TOP:
        raise UserError(f"--books {text!r}: top:{value} must be a whole number from 1 to {MAX_TOP:,}, e.g. top:100")
    return int(value)


def search_key(text: str) -> str:
    """Text folded for matching: accents dropped, case folded, runs of white space one space. 'Brontë,\\n Emily' -> 'bronte, emily'."""
    return " ".join(fold_column([text])[0].split())


_ROW = "\x1f"  # joins a column's rows while they are folded together


def fold_column(values: Sequence[str]) -> list[str]:
    """search_key of every value (less the stripping of their ends; white space other than spaces, tabs and line
    breaks stays): done on all of them joined into one string, as a few calls on 20 MB are many times faster than
    400,000 calls on short strings."""
    joined = _ROW.join(values)
    if joined.count(_ROW) != len(values) - 1:  # a value holds _ROW itself
        joined = _ROW.join(value.replace(_ROW, " ") for value in values)
    if not joined.isascii():  # accented letters come apart into a letter and a combining accent, which is dropped
        joined = re.sub(r"[^\x00-\x7f]", _without_accent, unicodedata.normalize("NFKD", joined))
    joined = joined.casefold()
    for space in "\t\n\r\v\f":  # str.replace scans at memory speed; a regular expression over 20 MB takes seconds
        joined = joined.replace(space, " ")
    while "  " in joined:
        joined = joined.replace("  ", " ")
    return joined.split(_ROW)


def _without_accent(match: re.Match) -> str:
    return "" if unicodedata.combining(match.group()) else match.group()


def code_key(codes: str) -> str:
    """Codes (a Language or Type field) for whole-code matching: 'en; fr' -> ';en;fr;', so ';en;' finds en, not enm."""
    return ";" + codes.replace(" ", "") + ";"


def select_books(query: Query, key_column: Callable[[str], Sequence[str]], ids: Sequence[int], ranked: Sequence[int] | None) -> list[int]:
    """The ids of the catalog rows `query` selects: most downloaded first with top: (then the lower id), else by id.

    `key_column(field)` is the folded column of a field (fold_column; code_key for lang and type, then folded),
    row by row like `ids`; `ranked` holds ids most downloaded first (ties by id), needed only for top:.
    Books missing from `ranked` come after those in it, by id.
    """
    rows = None
    # The fields that select fewest rows usually come first, so the later ones test fewer rows.
    for field in sorted(query.values, key=FIELDS.index):
        column = key_column(field)
        needles = [f";{value};" for value in query.values[field]] if field in CODE_FIELDS else list(query.values[field])
        if len(needles) == 1:
            (needle,) = needles
            rows = [row for row, key in enumerate(column) if needle in key] if rows is None else [row for row in rows if needle in column[row]]
        else:
            rows = [row for row in (range(len(column)) if rows is None else rows) if any(n in column[row] for n in needles)]
    selected = [ids[row] for row in rows]
    if query.top is None:
        return sorted(selected)
    if ranked is None:
        raise ValueError("top: needs the download counts")
    wanted = set(selected)
    top = list(itertools.islice((book_id for book_id in ranked if book_id in wanted), query.top))
    if len(top) < query.top:
        top += sorted(wanted.difference(top).difference(ranked))[: query.top - len(top)]
    return top
