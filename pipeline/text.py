"""Raw bytes to clean text: decoding, line endings and Project Gutenberg header/footer removal."""

import re

from errors import UserError

UTF8_BOM = b"\xef\xbb\xbf"

# "*** START OF THE PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***" (current style) and
# "*** START OF THIS PROJECT GUTENBERG EBOOK ..." (older files); some spell it "EBook" or "E-BOOK".
_START_MARKER = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)
_END_MARKER = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)
# Books whose markers were already cut off often keep this closing line:
# "End of the Project Gutenberg EBook of The Dunwich Horror, by H. P. Lovecraft".
_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*\Z", re.IGNORECASE | re.MULTILINE | re.DOTALL)

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def decode_text(raw: bytes, *, name: str) -> str:
    """UTF-8 bytes (with or without a byte-order mark) to str; `name` is for the error message."""
    if b"\x00" in raw[:65536]:
        raise UserError(f"{name} looks like a binary file (it contains NUL bytes), not text; pass text files only")
    try:
        return raw.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{name} is not valid UTF-8 (byte {error.start}: {raw[error.start:error.start + 1]!r}); "
            "convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8"
        ) from None


def normalize_line_endings(text: str) -> str:
    """Windows (CRLF) and old Mac (CR) line endings become LF: 'a\\r\\nb\\rc' -> 'a\\nb\\nc'."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg_boilerplate(text: str) -> str:
    """The book between the Gutenberg START and END markers; a text without markers is kept whole.

    '...licence...\\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\\nIt is a truth...\\n*** END OF ...'
    -> 'It is a truth...'
    """
    start = _START_MARKER.search(text)
    if start:
        text = text[start.end():]
    end = _END_MARKER.search(text)
    if end:
        text = text[: end.start()]
    end_line = _END_LINE.search(text, max(0, len(text) - 1000))
    if end_line:
        text = text[: end_line.start()]
    # Drop blank lines around the book but keep the first line's indentation (title pages are centred).
    return _LEADING_BLANK_LINES.sub("", text).rstrip() + "\n"


def clean_book_text(raw: bytes, *, name: str) -> str:
    """Decoded, LF-only text of one book with any Gutenberg header and licence footer removed."""
    return strip_gutenberg_boilerplate(normalize_line_endings(decode_text(raw, name=name)))
