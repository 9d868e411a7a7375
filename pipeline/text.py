"""Raw bytes to clean text: decoding, line endings, Project Gutenberg header/footer removal, optional reflowing."""

import codecs
import dataclasses
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
_MAX_CONTROL_SHARE = 0.01  # random bytes (zip, jpeg) hold many control characters, text almost none (bench/README.md)
# Headers naming these are not needed (the bytes tell them apart better) and often wrong (ISO-8859-1 for Windows-1252).
_LATIN1_FAMILY = {"ascii", "latin-1", "iso8859-1", "cp1252"}
# "Character set encoding: ISO-8859-1" in the header of older Gutenberg files.
_CHARSET_LINE = re.compile(rb"^Character set encoding:[ \t]*([A-Za-z0-9 _.:-]+?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)

# "*** START OF THE PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***" (current style) and
# "*** START OF THIS PROJECT GUTENBERG EBOOK ..." (older files); some spell it "EBook" or "E-BOOK"; END likewise.
# ("*** START: FULL LICENSE ***", inside older licences, is no marker.)
_MARKER = re.compile(
    r"^\*\*\*\s*(START|END) OF (THE|THIS) PROJECT GUTENBERG E-?BOOK\b.*$", re.IGNORECASE | re.MULTILINE
)
# Books whose markers were already cut off often keep this closing line:
# "End of the Project Gutenberg EBook of The Dunwich Horror, by H. P. Lovecraft".
_END_LINE = re.compile(r"^End of (the )?Project Gutenberg.*\Z", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_END_LINE_WITHIN = 1000  # characters from the end of a book; earlier such lines are the book's own words

# Removing more of a file than this share is reported to the user (CleanedBook.removal_note): a novel's
# header and licence are a small share of it, a short story's a larger one (bench/README.md).
MAX_QUIET_REMOVAL = 0.10

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
    """The body of every book framed by Gutenberg START and END markers, in order, joined by a blank line.

    'header\\n*** START OF THE PROJECT GUTENBERG EBOOK A ***\\nOne.\\n*** END OF THE PROJECT GUTENBERG EBOOK A ***\\n'
    'licence\\nheader\\n*** START OF THE PROJECT GUTENBERG EBOOK B ***\\nTwo.\\n*** END OF ... B ***\\nlicence\\n'
    -> 'One.\\n\\nTwo.\\n'

    The marker lines cut the text into pieces:
    - a piece after a START line is a book, kept (up to the next marker of either kind, or the end):
      so a START with no END keeps all that follows it, and a START after a START keeps both pieces;
    - the piece before the first marker is a header, dropped, if that marker is a START; if it is an
      END, the piece is a book whose header was already cut off, kept;
    - a piece after an END line is a licence (then the next book's header), dropped up to the next
      START or the end; an END line with no START since the last END frames no book and goes with it.
    A text without markers is kept whole. In each kept piece a closing 'End of the Project Gutenberg
    EBook of ...' line in its last 1,000 characters goes, with what follows it; so do the blank lines
    around the piece (not the first line's indentation: title pages are centred). A blank piece adds nothing.
    """
    markers = list(_MARKER.finditer(text))
    if not markers:
        pieces = [text]
    else:
        pieces = [text[: markers[0].start()]] if _is_end(markers[0]) else []
        for marker, following in zip(markers, markers[1:] + [None]):
            if not _is_end(marker):
                pieces.append(text[marker.end() : following.start() if following else len(text)])
    bodies = (_LEADING_BLANK_LINES.sub("", _without_end_line(piece)).rstrip() for piece in pieces)
    return "\n\n".join(body for body in bodies if body) + "\n"


def _is_end(marker: re.Match) -> bool:
    return marker.group(1).upper() == "END"


def _without_end_line(piece: str) -> str:
    end_line = _END_LINE.search(piece, max(0, len(piece) - _END_LINE_WITHIN))
    return piece[: end_line.start()] if end_line else piece


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


@dataclasses.dataclass(frozen=True)
class CleanedBook:
    text: str  # decoded, LF-only, Gutenberg headers and licences removed, options applied
    file_chars: int  # characters of the decoded file, with LF line endings
    kept_chars: int  # characters left once the Gutenberg headers and licences were removed (before the options)

    def removal_note(self, name: str) -> str | None:
        """What removing headers and licences cost, when it took more than MAX_QUIET_REMOVAL of the file; else None.

        'note: pg7.txt: kept 41,200 of 63,900 characters (64%) after removing Gutenberg headers and licences'
        """
        if self.file_chars - self.kept_chars <= self.file_chars * MAX_QUIET_REMOVAL:
            return None
        percent = self.kept_chars * 100 // self.file_chars  # rounded down: never "90%" for more than 10% removed
        return (
            f"note: {name}: kept {self.kept_chars:,} of {self.file_chars:,} characters ({percent}%) "
            "after removing Gutenberg headers and licences"
        )


def clean_book(raw: bytes, *, name: str, lowercase: bool = False, collapse_whitespace: bool = False) -> CleanedBook:
    """Decoded, LF-only text of one file with every Gutenberg header and licence removed, then the options applied.

    Training, validation, evaluation and the vocabulary all read books through this function; `name` is
    for the error message when no text is left. It prints nothing: the caller reports `removal_note`.
    """
    text = normalize_line_endings(decode_text(raw, name=name))
    file_chars = len(text)
    text = strip_gutenberg_boilerplate(text)
    kept_chars = len(text)
    text = apply_cleaning_options(text, lowercase=lowercase, collapse_whitespace=collapse_whitespace)
    if not text.strip():
        raise UserError(f"{name} holds no text (it is empty or only blank lines); remove it from the corpus")
    return CleanedBook(text=text, file_chars=file_chars, kept_chars=kept_chars)


def clean_book_text(raw: bytes, *, name: str, lowercase: bool = False, collapse_whitespace: bool = False) -> str:
    """The text of clean_book(), for callers that need no count of what was removed."""
    return clean_book(raw, name=name, lowercase=lowercase, collapse_whitespace=collapse_whitespace).text
