import pytest

from errors import UserError
from pipeline.text import clean_book_text, decode_text, normalize_line_endings, strip_gutenberg_boilerplate


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


def test_line_endings_become_lf():
    assert normalize_line_endings("a\r\nb\rc\nd") == "a\nb\nc\nd"
    assert clean_book_text(b"\xef\xbb\xbfone\r\ntwo\r\n", name="x") == "one\ntwo\n"


def test_binary_file_is_refused_by_name():
    with pytest.raises(UserError, match="program.exe looks like a binary file"):
        decode_text(b"MZ\x90\x00\x03\x00\x00\x00", name="program.exe")


def test_text_that_is_not_utf8_is_refused_with_the_fix():
    with pytest.raises(UserError, match="old.txt is not valid UTF-8.*iconv"):
        decode_text("caf\u00e9".encode("cp1252"), name="old.txt")
