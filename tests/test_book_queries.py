import pytest

from errors import UserError
from pipeline import catalog
from pipeline.book_queries import parse_query, search_key

# The test mirror's catalog (../shared/corpora/gutenberg/cache/epub/feeds) and its download counts, as parsed.
DOWNLOADS = {84: 96381, 1342: 75123, 2701: 38027, 11: 32144, 1661: 29310, 64317: 27391, 345: 22468, 174: 21604,
             1400: 16579, 1260: 14360, 98: 13270, 43: 12033, 158: 11207, 768: 10444, 161: 9812, 2591: 9011, 10: 7120,
             2000: 5634, 105: 5120, 50133: 4533, 5000: 2310, 31469: 1804, 17489: 1789, 2229: 1402, 41445: 850, 19159: 310}


def counts(downloads: dict[int, int]) -> catalog.DownloadCounts:
    return catalog.DownloadCounts(downloads, source="test", fetched_at=0.0)


@pytest.fixture(scope="module")
def test_catalog(gutenberg_mirror):
    text = (gutenberg_mirror / "cache/epub/feeds/pg_catalog.csv").read_text(encoding="utf-8")
    return catalog.parse_catalog_csv(text, source="test", fetched_at=0.0)


@pytest.mark.parametrize(
    "query, ids",
    [
        ("author:lovecraft", [31469, 50133]),
        ("author:austen", [105, 158, 161, 1342]),
        ('author:"jane austen"', [105, 158, 161, 1342]),  # first name first finds the catalog's "Austen, Jane" too
        ("author:bronte", [768, 1260]),  # accents do not matter: the catalog says Brontë
        ("AUTHOR:Brontë", [768, 1260]),  # nor does case, of the field or the value
        ("author:hunt", []),  # Margaret Hunt translated Grimms' Fairy Tales: translators are not authors
        ("author:richter", []),  # nor editors
        ("author:grimm", [2591]),
        ("author:carroll", [11]),  # not the audio book 19159: type:Text is the default
        ("author:carroll type:sound", [19159]),
        ("author:carroll type:text type:sound", [11, 19159]),  # a repeated field is either
        ('title:"modern prometheus volume 1"', [41445]),  # a title over two lines reads as one
        ("title:frankenstein", [84, 41445]),
        ('subject:"science fiction" author:shelley', [84, 41445]),  # terms of different fields all hold
        ('shelf:"gothic fiction"', [84, 174, 345, 768, 1260, 41445]),
        ("lang:fr", [98, 17489]),  # A Tale of Two Cities is "en; fr"
        ("lang:de lang:es", [2000, 2229]),
        ("lang:e", []),  # a language code is matched whole
        ("lang:en top:3", [84, 1342, 2701]),  # most downloaded first
        ("author:austen top:2", [1342, 158]),
        ("author:lovecraft top:10", [50133, 31469]),  # fewer than asked for: all of them
        ("subject:horror top:1", [84]),
    ],
)
def test_queries_select_catalog_rows(test_catalog, query, ids):
    assert test_catalog.select(parse_query(query), counts(DOWNLOADS)) == ids


def test_ties_in_downloads_go_to_the_lower_id(test_catalog):
    even = {book_id: 100 for book_id in test_catalog.ids}
    assert test_catalog.select(parse_query("author:austen top:3"), counts(even)) == [105, 158, 161]
    assert test_catalog.select(parse_query("author:austen top:3"), counts({})) == [105, 158, 161]  # no counts at all
    assert test_catalog.select(parse_query("author:austen top:3"), counts({161: 5})) == [161, 105, 158]  # then those without, by id


def test_query_parts_are_folded_for_matching():
    query = parse_query('Author:Brontë  subject:"Love  Stories" top:5')
    assert query.values == {"author": ("bronte",), "subject": ("love stories",), "type": ("text",)}
    assert query.top == 5
    assert search_key("Les Misérables\n Tome I") == "les miserables tome i"


@pytest.mark.parametrize(
    "query, error",
    [
        ("autor:austen", r"'autor:' is not a query field; use author:, title:, subject:, shelf:, lang:, type:, top:"),
        ("author:", r"author: has no value; write e.g. author:austen"),
        ('subject:"science fiction', r"a quote is not closed"),
        ("austen", r"'austen' is not a query term; write field:value \(e.g. author:austen\)"),
        ("lang:en 84", r"'84' is not a query term; .* put a comma between a query and ebook ids"),
        ("lang:en top:0", r"top:0 must be a whole number from 1 to 100,000"),
        ("lang:en top:ten", r"top:ten must be a whole number"),
        ("lang:en top:3 top:4", r"top: is given twice"),
        ("top:3", r"top: needs something to rank; add e.g. lang:en"),
    ],
)
def test_malformed_queries_are_refused_clearly(query, error):
    with pytest.raises(UserError, match=error):
        parse_query(query)
