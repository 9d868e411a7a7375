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
import re
import unicodedata
from collections.abc import Mapping, Sequence

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
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(text.casefold().split())


def code_key(codes: Sequence[str]) -> str:
    """Codes folded for whole-code matching: ('en', 'fr') -> ';en;fr;', so ';en;' finds en and not enm."""
    return ";" + ";".join(search_key(code) for code in codes) + ";"


def select_books(query: Query, keys: Mapping[str, Sequence[str]], ids: Sequence[int], downloads: Mapping[int, int] | None) -> list[int]:
    """The ids of the catalog rows `query` selects: most downloaded first with top: (then the lower id), else by id.

    `keys` holds a folded column per field (search_key, code_key for lang and type), row by row like `ids`;
    `downloads` (id -> count) is needed only for top:, and a book without a count has none.
    """
    rows = range(len(ids))
    for field, wanted in query.values.items():
        column = keys[field]
        needles = [f";{value};" for value in wanted] if field in CODE_FIELDS else list(wanted)
        rows = [row for row in rows if any(needle in column[row] for needle in needles)]
    selected = [ids[row] for row in rows]
    if query.top is None:
        return sorted(selected)
    if downloads is None:
        raise ValueError("top: needs the download counts")
    return sorted(selected, key=lambda book_id: (-downloads.get(book_id, 0), book_id))[: query.top]
