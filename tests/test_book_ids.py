import pytest

from errors import UserError
from pipeline.book_ids import parse_book_ids


@pytest.mark.parametrize(
    "text, ids",
    [
        ("84", (84,)),
        ("1342, 84,2701", (1342, 84, 2701)),
        ("1000-1003", (1000, 1001, 1002, 1003)),
        ("5-5,7", (5, 7)),
        ("84,80-85", (84, 80, 81, 82, 83, 85)),  # each book once, where it first appears
        ("", ()),
    ],
)
def test_book_ids_ranges_and_lists(text, ids):
    assert parse_book_ids(text) == ids


def test_book_ids_from_a_file(tmp_path):
    (tmp_path / "ids.txt").write_bytes(b"\xef\xbb\xbf# my favourites\r\n84 1342   # Frankenstein, Pride\n\n2701,11\n100-102\n")
    assert parse_book_ids(f"5,@{tmp_path / 'ids.txt'},6") == (5, 84, 1342, 2701, 11, 100, 101, 102, 6)


@pytest.mark.parametrize(
    "text, file_text, error",
    [
        ("12a", None, r"--books: '12a' is not an ebook id or a range of them; write e.g. 84 or 1000-1100"),
        ("84,-3", None, r"'-3' is not an ebook id"),
        ("5-3", None, r"--books: the range '5-3' runs backwards; write 3-5"),
        ("0", None, r"--books: '0': Gutenberg ebook ids start at 1"),
        ("1-200000", None, r"the range '1-200000' names more than 100,000 ebooks"),
        ("@ids.txt", "", r"the --books file .*ids.txt holds no ebook ids"),
        ("@ids.txt", "# only a comment\n\n", r"holds no ebook ids"),
        ("@ids.txt", "84\n12a\n", r"ids.txt line 2: '12a' is not an ebook id"),
        ("@ids.txt", "@other.txt\n", r"ids.txt line 1: a --books file cannot name another file"),
        ("@ids.txt", "1-90000\n90001-190000\n", r"ids.txt names more than 100,000 ebooks"),
        ("@missing.txt", None, r"cannot read the --books file '.*missing.txt': No such file or directory"),
    ],
)
def test_malformed_book_ids_are_refused_clearly(tmp_path, text, file_text, error):
    if file_text is not None:
        (tmp_path / "ids.txt").write_text(file_text)
    text = text.replace("@", f"@{tmp_path}/")
    with pytest.raises(UserError, match=error):
        parse_book_ids(text)
