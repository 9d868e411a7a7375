import pytest

from conftest import gutenberg_file
from errors import UserError
from pipeline import sources
from pipeline.text import (
    CleanedBook,
    apply_cleaning_options,
    clean_book,
    clean_book_text,
    decode_text,
    detect_encoding,
    normalize_line_endings,
    reflow_paragraphs,
    strip_gutenberg_boilerplate,
)

WINDOWS_QUOTES = "café — “quoted” ‘single’ … œuvre €5"


def read_book(gutenberg_mirror, book_id) -> bytes:
    return (gutenberg_mirror / "cache" / "epub" / str(book_id) / f"pg{book_id}.txt").read_bytes()


def test_book_with_bom_header_and_footer_keeps_only_the_novel(gutenberg_mirror):
    raw = read_book(gutenberg_mirror, 1342)
    assert raw.startswith(b"\xef\xbb\xbf")

    text = clean_book_text(raw, name="Pride and Prejudice")

    assert not text.startswith("\ufeff")
    assert "Project Gutenberg" not in text
    assert "*** START" not in text and "*** END" not in text
    assert text.lstrip().startswith("[Illustration:")
    assert "It is a truth universally acknowledged" in text
    assert text.endswith("TOOKS COURT, CHANCERY LANE, LONDON.\n")


@pytest.mark.parametrize("book_id", [84, 2701])
def test_every_book_with_markers_loses_its_header_and_licence(gutenberg_mirror, book_id):
    raw = read_book(gutenberg_mirror, book_id)
    assert raw.count("Project Gutenberg™".encode()) > 40

    text = clean_book_text(raw, name=str(book_id))

    assert "Project Gutenberg™" not in text
    assert "gutenberg.org" not in text
    assert "Title:" not in text


def test_book_already_stripped_is_kept_whole(gutenberg_mirror):
    raw = read_book(gutenberg_mirror, 11)
    text = clean_book_text(raw, name="Alice")
    assert text == raw.decode("utf-8").strip() + "\n"


def test_closing_end_of_project_gutenberg_line_is_removed(gutenberg_mirror):
    text = clean_book_text(read_book(gutenberg_mirror, 50133), name="The Dunwich Horror")
    assert "Project Gutenberg" not in text
    assert text.lstrip().startswith("_The_ Dunwich Horror")


def test_older_this_marker_style_is_understood():
    book = (
        "The Project Gutenberg EBook of Tiny, by Nobody\n\nlicence words\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK TINY ***\n\nOnce upon a time.\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK TINY ***\nmore licence words\n"
    )
    assert strip_gutenberg_boilerplate(book) == "Once upon a time.\n"


START = "*** START OF THE PROJECT GUTENBERG EBOOK X ***"
END = "*** END OF THE PROJECT GUTENBERG EBOOK X ***"


def test_books_back_to_back_keep_every_body_in_order():
    books = [("One", "Body one."), ("Two", "Body two,\nin two lines."), ("Three", "    BOOK THREE\n\nBody three.")]
    # A BOM on each, as gutenberg.org serves them: a user who concatenates the downloads gets this.
    raw = b"".join(gutenberg_file(title, body).encode("utf-8-sig") for title, body in books)

    text = clean_book_text(raw, name="three.txt")

    assert text == "Body one.\n\nBody two,\nin two lines.\n\n    BOOK THREE\n\nBody three.\n"


@pytest.mark.parametrize(
    "text, kept",
    [
        pytest.param("A poem.\n\n\nIts second verse.\n", "A poem.\n\n\nIts second verse.\n", id="no markers"),
        pytest.param(f"The book.\n{END}\nlicence\n", "The book.\n", id="END with no START: the text before it"),
        pytest.param(
            f"Book one.\n{END}\nlicence\nheader\n{START}\nBook two.\n{END}\nlicence\n",
            "Book one.\n\nBook two.\n",
            id="a book without header, then a whole one",
        ),
        pytest.param(f"header\n{START}\nThe book,\nto the end.\n", "The book,\nto the end.\n", id="START with no END"),
        pytest.param(
            f"header\n{START}\nBook one.\n{START}\nBook two.\n{END}\nlicence\n",
            "Book one.\n\nBook two.\n",
            id="START after START: both kept",
        ),
        pytest.param(
            f"header\n{START}\nBook one.\n{END}\nlicence\n{END}\nlicence\n{START}\nBook two.\n{END}\nlicence",
            "Book one.\n\nBook two.\n",
            id="stray END inside a licence",
        ),
        pytest.param(
            f"header\n{START}\n\n\n{END}\nlicence\n{START}\nBook two.\n{END}\nlicence\n",
            "Book two.\n",
            id="an empty book adds nothing",
        ),
        pytest.param(
            "header\n*** START OF THIS PROJECT GUTENBERG EBOOK A ***\nBook one.\n\n"
            "End of the Project Gutenberg EBook of A, by Nobody\n\n*** END OF THIS PROJECT GUTENBERG EBOOK A ***\n"
            "licence\nheader\n*** START OF THIS PROJECT GUTENBERG EBOOK B ***\nBook two.\n\n"
            "End of the Project Gutenberg EBook of B, by Nobody\n\n*** END OF THIS PROJECT GUTENBERG EBOOK B ***\n",
            "Book one.\n\nBook two.\n",
            id="older style: each book's closing line goes",
        ),
        pytest.param("The book.\n\nEnd of Project Gutenberg's The Book, by Nobody\n", "The book.\n", id="closing line"),
    ],
)
def test_only_markers_that_frame_a_book_cut_text(text, kept):
    assert strip_gutenberg_boilerplate(text) == kept


def test_real_books_back_to_back_keep_every_books_first_and_last_sentences(gutenberg_mirror):
    book_ids = [1342, 84, 2701]  # each with its BOM, header and licence
    raw = b"".join(read_book(gutenberg_mirror, book_id) for book_id in book_ids)

    text = clean_book_text(raw, name="three novels.txt")

    words = " ".join(text.split())
    sentences = [  # the first and the last sentence of each novel, in order
        "It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want",
        "by bringing her into Derbyshire, had been the means of uniting them.",
        "You will rejoice to hear that no disaster has accompanied the commencement of an enterprise",
        "He was soon borne away by the waves and lost in darkness and distance.",
        "Call me Ishmael.",
        "that in her retracing search after her missing children, only found another orphan.",
    ]
    positions = [words.find(sentence) for sentence in sentences]
    assert -1 not in positions and positions == sorted(positions), positions
    # Each book's last line, a blank line, the next book's first line: the licence and header between are gone.
    assert "TOOKS COURT, CHANCERY LANE, LONDON.\n\nFrankenstein;\n" in text
    assert "lost in darkness and distance.\n\nMOBY-DICK;\n" in text
    assert "Project Gutenberg™" not in text and "\ufeff" not in text and "*** START" not in text
    assert text == "\n".join(clean_book_text(read_book(gutenberg_mirror, book_id), name="") for book_id in book_ids)


def test_removal_note_says_how_much_of_the_file_was_kept():
    def note(file_chars, kept_chars):
        return CleanedBook(text="...", file_chars=file_chars, kept_chars=kept_chars).removal_note("Gutenberg book 1234")

    suffix = " after removing Gutenberg headers and licences"
    assert note(63_900, 41_200) == "note: Gutenberg book 1234: kept 41,200 of 63,900 characters (64%)" + suffix
    assert note(1000, 899) == "note: Gutenberg book 1234: kept 899 of 1,000 characters (89%)" + suffix  # not 90%
    assert note(1000, 900) is None  # exactly a tenth removed


def test_cleaning_counts_what_the_headers_and_licences_took(gutenberg_mirror):
    short = gutenberg_file("Tiny", "A very short story.")
    cleaned = clean_book(short.encode("utf-8-sig"), name="tiny.txt", lowercase=True)
    assert (cleaned.text, cleaned.file_chars, cleaned.kept_chars) == ("a very short story.\n", len(short), 20)
    assert cleaned.removal_note("tiny.txt").startswith(f"note: tiny.txt: kept 20 of {len(short)} characters")

    novel = clean_book(read_book(gutenberg_mirror, 84), name="Frankenstein")  # loses about 4%: not worth a note
    assert novel.kept_chars < novel.file_chars and novel.removal_note("Frankenstein") is None


def test_line_endings_become_lf():
    assert normalize_line_endings("a\r\nb\rc\nd") == "a\nb\nc\nd"
    assert clean_book_text(b"\xef\xbb\xbfone\r\ntwo\r\n", name="x") == "one\ntwo\n"


@pytest.mark.parametrize(
    "raw, encoding, text",
    [
        (b"plain ASCII", "utf-8", "plain ASCII"),
        ("café “quoted”".encode("utf-8"), "utf-8", "café “quoted”"),
        (b"\xef\xbb\xbf" + "café".encode("utf-8"), "utf-8-sig", "café"),
        (WINDOWS_QUOTES.encode("cp1252"), "cp1252", WINDOWS_QUOTES),
        ("café ÿ £ © déjà vu".encode("latin-1"), "latin-1", "café ÿ £ © déjà vu"),
        # 0x81 and 0x8d mean nothing in Windows-1252: such bytes can only be Latin-1 (control codes).
        (b"caf\xe9 \x81\x8d", "latin-1", "café \x81\x8d"),
        (b"\xff\xfe" + "café — “quoted”".encode("utf-16-le"), "utf-16", "café — “quoted”"),
        (b"\xfe\xff" + "café".encode("utf-16-be"), "utf-16", "café"),
        (b"\xff\xfe\x00\x00" + "café".encode("utf-32-le"), "utf-32", "café"),
        # A header naming a codec outside the Latin-1 family is believed when the bytes fit it.
        (b"Character set encoding: ISO-8859-2\r\n\r\n" + "Dvořák".encode("iso8859-2"), "iso8859-2", "Dvořák"),
        # A header saying ISO-8859-1 over Windows-1252 quotes (common in older Gutenberg files) is overruled.
        (b"Character set encoding: ISO-8859-1\n\n" + "“Hi”".encode("cp1252"), "cp1252", "“Hi”"),
        (b"Character set encoding: ISO Latin-1\n\n" + "naïve".encode("latin-1"), "latin-1", "naïve"),
        (b"Character set encoding: ASCII\n\n" + "café".encode("latin-1"), "latin-1", "café"),
        # Headers naming a multi-byte or non-text codec over 8-bit bytes are not believed.
        (b"Character set encoding: UTF-16\n\n" + "caf\xe9s!".encode("latin-1"), "latin-1", "cafés!"),
        (b"Character set encoding: base64\n\n" + "caf\xe9".encode("latin-1"), "latin-1", "café"),
    ],
)
def test_encodings_are_detected_and_decoded_without_replacement_characters(raw, encoding, text):
    assert detect_encoding(raw) == encoding
    decoded = decode_text(raw, name="x")
    assert decoded.endswith(text)
    assert "\ufffd" not in decoded and not decoded.startswith("\ufeff")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"MZ\x90\x00\x03\x00\x00\x00", "program.exe looks binary .*NUL bytes"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00", "program.exe looks binary"),
        (b"PK\x03\x04\x14\x08\x08\x08" + bytes(range(1, 256)) * 4, "program.exe looks binary"),
        (bytes(range(1, 256)) * 8, "program.exe looks binary .*control codes"),
        ("text".encode("utf-16-le"), "program.exe looks binary .*UTF-16"),
    ],
)
def test_binary_files_are_refused_by_name(raw, message):
    with pytest.raises(UserError, match=message):
        decode_text(raw, name="program.exe")


def test_form_feeds_tabs_and_a_dos_end_of_file_mark_are_still_text():
    assert decode_text(b"Chapter 1\f\n\tIt was\r\n\x1a", name="x") == "Chapter 1\f\n\tIt was\r\n\x1a"


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf", b"  \r\n\t\n", b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n"])
def test_empty_or_blank_text_is_refused_by_name(raw):
    with pytest.raises(UserError, match="empty.txt holds no text"):
        clean_book_text(raw, name="empty.txt")


@pytest.mark.parametrize(
    "text, reflowed",
    [
        ("It is  a\ntruth.\n\n\n  Mr.\tBennet\n", "It is a truth.\n\nMr. Bennet\n"),
        ("one\n \t \ntwo\n", "one\n\ntwo\n"),  # a line of only spaces ends a paragraph
        ("\n\n  lead and trail  \n\n\n", "lead and trail\n"),
        ("a\u00a0b\n", "a\u00a0b\n"),  # a no-break space is a character of the text, not layout
    ],
)
def test_collapse_whitespace_reflows_paragraphs(text, reflowed):
    assert reflow_paragraphs(text) == reflowed


def test_cleaning_options_apply_after_the_boilerplate_is_gone():
    raw = "licence\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\nIt WAS\r\n  Late.\r\n\r\nThe  End\r\n".encode("cp1252")
    assert clean_book_text(raw, name="x") == "It WAS\n  Late.\n\nThe  End\n"
    assert clean_book_text(raw, name="x", lowercase=True) == "it was\n  late.\n\nthe  end\n"
    assert clean_book_text(raw, name="x", collapse_whitespace=True) == "It WAS Late.\n\nThe End\n"
    assert apply_cleaning_options("A  B\nC", lowercase=True, collapse_whitespace=True) == "a b c\n"


def test_latin1_book_end_to_end_through_the_cache_and_cleaning(tmp_path):
    book = "Character set encoding: ISO-8859-1\n\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nDéjà vu, señor.\r\n"
    mirror = tmp_path / "mirror"
    (mirror / "cache/epub/7").mkdir(parents=True)
    (mirror / "cache/epub/7/pg7.txt").write_bytes(book.encode("latin-1"))

    raw = sources.load_gutenberg_book(7, mirror=str(mirror), cache_dir=tmp_path / "cache")

    assert clean_book_text(raw, name="Gutenberg book 7") == "Déjà vu, señor.\n"
