"""Raw bytes to clean text: decoding, line endings, Project Gutenberg header/footer removal, optional reflowing."""

import codecs
import re

from errors import UserError

UTF8_BOM = codecs.BOM_UTF8
# UTF-32 first: its little-endian mark begins with UTF-16's.
_BYTE_ORDER_MARKS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
_SNIFF_BYTES = 65536
# Control characters that have no place in text (tab, line feed, vertical tab, form feed, carriage return,
# Ctrl-Z, once an end-of-file mark, and escape, used for terminal colours, are left out).
_BINARY_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 11, 12, 13, 26, 27}) + b"\x7f"
_MAX_CONTROL_SHARE = 0.01  # random bytes (zip, jpeg) are about 11% control characters; text is about 0%
# Headers naming these are not needed (the bytes tell them apart better) and often wrong (ISO-8859-1 for Windows-1252).
_LATIN1_FAMILY = {"ascii", "latin-1", "iso8859-1", "cp1252"}
# "Character set encoding: ISO-8859-1" in the header of older Gutenberg files.
_CHARSET_LINE = re.compile(rb"^Character set encoding:[ \t]*([A-Za-z0-9 _.:-]+?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)

# "*** START OF THE PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***" (current style) and
# "*** START OF THIS PROJECT GUTENBERG EBOOK ..." (older files); some spell it "EBook" or "E-BOOK".
_START_MARKER = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)
_END_MARKER = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE)
# Books whose markers were already cut off often keep this closing line:
# "End of the Project Gutenberg EBook of The Dunwich Horror, by H. P. Lovecraft".
_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*\Z", re.IGNORECASE | re.MULTILINE | re.DOTALL)

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n[ \t\n\f\v]*")
_WHITESPACE_RUN = re.compile(r"[ \t\n\f\v]+")


def detect_encoding(raw: bytes) -> str:
    """The codec that reads `raw` as its author meant it; never one that would need U+FFFD.

    A byte-order mark decides first; then valid UTF-8 is UTF-8; then a Gutenberg header's
    'Character set encoding:' line naming a codec outside the Latin-1 family, if the bytes fit it;
    then Windows-1252 when bytes 0x80-0x9F occur (its curly quotes and dashes; in Latin-1 they
    are unused control codes, so files labelled ISO-8859-1 that hold them are really Windows-1252);
    else Latin-1, which reads any byte.
    """
    for mark, codec in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            return codec
    if _decodes(raw, "utf-8"):
        return "utf-8-sig" if raw.startswith(UTF8_BOM) else "utf-8"
    hint = _declared_codec(raw)
    if hint and hint not in _LATIN1_FAMILY and not hint.startswith("utf") and _decodes(raw, hint):
        return hint
    if re.search(rb"[\x80-\x9f]", raw) and _decodes(raw, "cp1252"):
        return "cp1252"
    return "latin-1"


def decode_text(raw: bytes, *, name: str) -> str:
    """Bytes of a text file in UTF-8 (with or without BOM), UTF-16/32 with BOM, Windows-1252 or Latin-1 to str.

    `name` is for the error message that refuses binary files.
    """
    codec = detect_encoding(raw)
    if codec.startswith(("utf-16", "utf-32")):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError as error:
            encoding = codec.upper()
            raise UserError(
                f"{name} starts with a {encoding} byte-order mark but is not valid {encoding} (byte {error.start}): "
                "it is cut short or damaged; save it again, as UTF-8 if you can"
            ) from None
    _refuse_binary(raw, name=name)
    return raw.decode(codec)


def _refuse_binary(raw: bytes, *, name: str) -> None:
    sample = raw[:_SNIFF_BYTES]
    if b"\x00" in sample:
        raise UserError(
            f"{name} looks binary (it contains NUL bytes), not like text; pass text files only "
            "(UTF-16 text needs a byte-order mark, or convert it to UTF-8)"
        )
    controls = len(sample) - len(sample.translate(None, _BINARY_CONTROL_BYTES))
    if controls > len(sample) * _MAX_CONTROL_SHARE:
        raise UserError(
            f"{name} looks binary ({controls / len(sample):.0%} of its first bytes are control codes), not like text; "
            "pass text files only"
        )


def _decodes(raw: bytes, codec: str) -> bool:
    try:
        raw.decode(codec)
        return True
    except (UnicodeDecodeError, LookupError):  # LookupError: a codec that is no text encoding ('base64')
        return False


def _declared_codec(raw: bytes) -> str | None:
    """The Python codec named by a 'Character set encoding:' line near the top, if Python knows it."""
    match = _CHARSET_LINE.search(raw[:_SNIFF_BYTES])
    if not match:
        return None
    label = match.group(1).decode("ascii").strip().lower()
    if "latin-1" in label or "latin1" in label:
        return "latin-1"
    try:
        return codecs.lookup(label.replace(" ", "-")).name
    except LookupError:
        return None


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


def reflow_paragraphs(text: str) -> str:
    """Paragraphs as single lines: lines of a paragraph joined by single spaces, one blank line between paragraphs.

    'It is  a\\ntruth.\\n\\n\\n  Mr.\\tBennet\\n' -> 'It is a truth.\\n\\nMr. Bennet\\n'
    (Runs of spaces, tabs and line breaks inside a paragraph become one space; a paragraph
    ends at a line that is empty or holds only spaces and tabs.)
    """
    paragraphs = (_WHITESPACE_RUN.sub(" ", p).strip(" ") for p in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(p for p in paragraphs if p) + "\n"


def apply_cleaning_options(text: str, *, lowercase: bool = False, collapse_whitespace: bool = False) -> str:
    """The --collapse_whitespace and --lowercase options, applied to any decoded, LF-only text."""
    if collapse_whitespace:
        text = reflow_paragraphs(text)
    return text.lower() if lowercase else text


def clean_book_text(raw: bytes, *, name: str, lowercase: bool = False, collapse_whitespace: bool = False) -> str:
    """Decoded, LF-only text of one book with any Gutenberg header and licence footer removed, then the options applied.

    Training, validation, evaluation and the vocabulary all read books through this function.
    """
    text = normalize_line_endings(decode_text(raw, name=name))
    text = strip_gutenberg_boilerplate(text)
    text = apply_cleaning_options(text, lowercase=lowercase, collapse_whitespace=collapse_whitespace)
    if not text.strip():
        raise UserError(f"{name} holds no text (it is empty or only blank lines); remove it from the corpus")
    return text
