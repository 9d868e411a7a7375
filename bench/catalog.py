"""How fast the Gutenberg catalog is read and queried, and how much memory reading the RDF archive takes.

Writes a mirror directory with a catalog and an RDF archive of the real ones' size and shape (about 90,000
rows in pg_catalog.csv.gz; about 75,000 files of 10-20 KB each in rdf-files.tar.bz2) into a temporary
directory, then through pipeline.catalog, as --books queries use it:

    csv_parse_seconds        the first load of the catalog: gunzip, parse, fold the query columns, write the cache
    rdf_parse_seconds        the first load of the download counts: stream the archive, one regex per file, cache
    rdf_parse_peak_rss_mb    the peak resident memory (VmHWM) of a fresh process that does only that
    query_seconds            the slowest of QUERIES, each in a fresh CatalogSource: load the cached files, select
    query_seconds_each       each of them

    python bench/catalog.py [--rows=90000] [--rdf_files=75000] [--quick]

Prints one JSON line. Generating the archive takes a few minutes (bzip2 is slow to compress); --quick makes
a small one to check the script runs.
"""

import bz2
import gzip
import io
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from absl import app, flags  # noqa: E402

from pipeline import book_queries, catalog  # noqa: E402

flags.DEFINE_integer("rows", 90_000, "Rows of the generated pg_catalog.csv.")
flags.DEFINE_integer("rdf_files", 75_000, "Files in the generated rdf-files.tar.bz2.")
flags.DEFINE_bool("quick", False, "3,000 rows and 2,000 RDF files: checks that the script runs; the figures mean nothing.")
FLAGS = flags.FLAGS

QUERIES = (
    "author:austen",
    "lang:en",
    "title:the",
    'subject:"science fiction" lang:en top:200',
    "lang:en top:500",
    'shelf:"gothic fiction",author:dickens lang:en type:text type:sound top:50',
)
WORDS = ("the of and a in to love war house night river stone garden letters history voyage island tale "
         "secret king queen city sea mountain shadow winter summer journey life death children").split()


def main(argv):
    rows, rdf_files = (3_000, 2_000) if FLAGS.quick else (FLAGS.rows, FLAGS.rdf_files)
    with tempfile.TemporaryDirectory(prefix="charbook-catalog-bench-") as temporary:
        mirror, cache = pathlib.Path(temporary) / "mirror", pathlib.Path(temporary) / "cache"
        feeds = mirror / "cache/epub/feeds"
        feeds.mkdir(parents=True)
        started = time.perf_counter()
        random.seed(0)
        csv_bytes = make_catalog_csv(rows)
        (feeds / "pg_catalog.csv.gz").write_bytes(gzip.compress(csv_bytes))
        write_rdf_archive(feeds / "rdf-files.tar.bz2", rdf_files)
        generate_seconds = time.perf_counter() - started

        start = time.perf_counter()
        books = catalog.CatalogSource(mirror=str(mirror), cache_dir=cache).catalog
        csv_parse_seconds = time.perf_counter() - start

        rdf = measure_rdf_in_fresh_process(mirror, cache)

        each = {}
        for query in QUERIES:
            start = time.perf_counter()
            source = catalog.CatalogSource(mirror=str(mirror), cache_dir=cache)
            for item in query.split(","):
                parsed = book_queries.parse_query(item)
                source.catalog.select(parsed, source.downloads if parsed.top else None)
            each[query] = round(time.perf_counter() - start, 4)

        print(json.dumps({
            "csv_parse_seconds": round(csv_parse_seconds, 3),
            "rdf_parse_seconds": rdf["seconds"],
            "rdf_parse_peak_rss_mb": rdf["peak_rss_mb"],
            "query_seconds": max(each.values()),
            "query_seconds_each": each,
            "catalog_rows": len(books.ids),
            "rdf_files": rdf_files,
            "download_counts": rdf["counts"],
            "catalog_csv_mb": round(len(csv_bytes) / 1e6, 1),
            "catalog_gz_mb": round((feeds / "pg_catalog.csv.gz").stat().st_size / 1e6, 1),
            "rdf_archive_mb": round((feeds / "rdf-files.tar.bz2").stat().st_size / 1e6, 1),
            "catalog_cache_mb": round(sum(p.stat().st_size for p in (cache / "catalog").glob("catalog-*")) / 1e6, 1),
            "generate_seconds": round(generate_seconds, 1),
            "quick": FLAGS.quick,
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }))


def measure_rdf_in_fresh_process(mirror: pathlib.Path, cache: pathlib.Path) -> dict:
    """Seconds, peak RSS and the number of counts of the first load of the download counts, in a new interpreter
    whose memory holds nothing else (this one holds the generated catalog)."""
    script = (
        "import json, pathlib, sys, time\n"
        f"sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parent.parent)!r})\n"
        "from pipeline import catalog\n"
        "start = time.perf_counter()\n"
        f"counts = catalog.CatalogSource(mirror={str(mirror)!r}, cache_dir=pathlib.Path({str(cache)!r})).downloads.counts\n"
        "seconds = time.perf_counter() - start\n"
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'seconds': round(seconds, 2), 'peak_rss_mb': round(int(hwm) / 1024, 1), 'counts': len(counts)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


# --- a catalog and an archive shaped like the real ones ---


def make_catalog_csv(rows: int) -> bytes:
    """pg_catalog.csv: ids with gaps, about 95% texts, 80% English, authors with life dates and some translators, a few
    multi-line titles and accented names, several subjects and bookshelves; about 200 bytes a row, as the real one."""
    import csv

    surnames = [f"{random.choice(WORDS).title()}{random.choice(['son', 'er', 'ley', 'é', 'ton', 'ard'])}" for _ in range(4000)]
    authors = [f"{random.choice(surnames)}, {random.choice(WORDS).title()}, {y}-{y + random.randint(30, 90)}"
               for y in (random.randint(1500, 1950) for _ in range(20_000))] + ["Austen, Jane, 1775-1817", "Dickens, Charles, 1812-1870"]
    subjects = [f"{random.choice(WORDS).title()} {random.choice(WORDS)} -- {random.choice(['Fiction', 'History', 'Juvenile fiction'])}"
                for _ in range(5000)] + ["Science fiction", "Horror tales", "Love stories", "Gothic fiction"]
    shelves = [f"Category: {random.choice(WORDS).title()} {random.choice(WORDS).title()}" for _ in range(300)] + ["Gothic Fiction"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Text#", "Type", "Issued", "Title", "Language", "Authors", "Subjects", "LoCC", "Bookshelves"])
    book_id = 0
    for _ in range(rows):
        book_id += random.choice((1, 1, 1, 2))
        title = " ".join(random.choice(WORDS) for _ in range(random.randint(2, 9))).capitalize()
        if random.random() < 0.02:
            title += "\nVolume " + str(random.randint(1, 5))
        people = random.sample(authors, random.choice((1, 1, 1, 2)))
        if random.random() < 0.1:
            people.append(random.choice(authors) + " [Translator]")
        writer.writerow([
            book_id,
            "Text" if random.random() < 0.95 else "Sound",
            f"{random.randint(1971, 2025)}-01-01",
            title,
            "en" if random.random() < 0.8 else random.choice(("fr", "de", "fi", "nl", "es", "en; fr")),
            "; ".join(people),
            "; ".join(random.sample(subjects, random.randint(1, 5))),
            random.choice(("PR", "PS", "PQ", "PT")),
            "; ".join(random.sample(shelves, random.randint(0, 3))),
        ])
    return buffer.getvalue().encode("utf-8")


def rdf_file(book_id: int) -> bytes:
    """One cache/epub/<id>/pg<id>.rdf: the ebook's description and summary, its download count, and the files it comes as."""
    formats = "".join(
        f'    <dcterms:hasFormat>\n      <pgterms:file rdf:about="https://www.gutenberg.org/ebooks/{book_id}.{kind}">\n'
        f'        <dcterms:extent rdf:datatype="http://www.w3.org/2001/XMLSchema#integer">{random.randint(10_000, 900_000)}</dcterms:extent>\n'
        f'        <dcterms:modified rdf:datatype="http://www.w3.org/2001/XMLSchema#dateTime">2024-0{random.randint(1, 9)}-1{random.randint(0, 9)}T0{random.randint(0, 9)}:12:33</dcterms:modified>\n'
        f'        <dcterms:format><rdf:Description><dcam:memberOf rdf:resource="http://purl.org/dc/terms/IMT"/>\n'
        f'          <rdf:value rdf:datatype="http://purl.org/dc/terms/IMT">{mime}</rdf:value></rdf:Description></dcterms:format>\n'
        f'        <dcterms:isFormatOf rdf:resource="ebooks/{book_id}"/>\n      </pgterms:file>\n    </dcterms:hasFormat>\n'
        for kind, mime in random.sample(FORMATS, random.randint(8, len(FORMATS)))
    )
    subjects = "".join(
        f"    <dcterms:subject><rdf:Description><dcam:memberOf rdf:resource=\"http://purl.org/dc/terms/LCSH\"/>"
        f"<rdf:value>{random.choice(WORDS).title()} {random.choice(WORDS)} -- Fiction</rdf:value></rdf:Description></dcterms:subject>\n"
        for _ in range(random.randint(1, 5))
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF xml:base="http://www.gutenberg.org/"\n'
        f'  xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcterms="http://purl.org/dc/terms/"\n'
        f'  xmlns:pgterms="http://www.gutenberg.org/2009/pgterms/" xmlns:dcam="http://purl.org/dc/dcam/">\n'
        f'  <pgterms:ebook rdf:about="ebooks/{book_id}">\n    <dcterms:publisher>Project Gutenberg</dcterms:publisher>\n'
        f'    <dcterms:issued rdf:datatype="http://www.w3.org/2001/XMLSchema#date">20{random.randint(10, 24)}-01-01</dcterms:issued>\n'
        f'    <pgterms:downloads rdf:datatype="http://www.w3.org/2001/XMLSchema#integer">{random.randint(0, 100_000)}</pgterms:downloads>\n'
        f"    <dcterms:title>{' '.join(random.choice(WORDS) for _ in range(5))}</dcterms:title>\n"
        f"    <pgterms:marc520>{''.join(random.choices(SUMMARY_LETTERS, k=1800))}</pgterms:marc520>\n{subjects}{formats}"
        f"  </pgterms:ebook>\n</rdf:RDF>\n"
    ).encode("utf-8")


SUMMARY_LETTERS = "abcdefghijklmnopqrstuvwxyz      ,."  # a summary's worth of entropy, so the archive compresses as the real one
FORMATS = [("html", "text/html"), ("epub3.images", "application/epub+zip"), ("epub.images", "application/epub+zip"),
           ("epub.noimages", "application/epub+zip"), ("kf8.images", "application/x-mobipocket-ebook"),
           ("kindle.images", "application/x-mobipocket-ebook"), ("txt.utf-8", "text/plain; charset=utf-8"),
           ("html.images", "text/html"), ("rdf", "application/rdf+xml"), ("zip", "application/zip"),
           ("cover.medium", "image/jpeg"), ("cover.small", "image/jpeg"), ("txt", "text/plain; charset=us-ascii")]


def write_rdf_archive(path: pathlib.Path, files: int) -> None:
    """rdf-files.tar.bz2 with `files` books' RDF, as Gutenberg packs it, and the stray cache/epub/test/ entry."""
    with bz2.open(path, "wb", compresslevel=9) as compressed, tarfile.open(fileobj=compressed, mode="w|") as archive:
        for number, book_id in enumerate([*range(1, files + 1), "test"]):
            data = rdf_file(number + 1) if book_id != "test" else b"<not a catalog entry/>"
            member = tarfile.TarInfo(f"cache/epub/{book_id}/pg{book_id}.rdf")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


if __name__ == "__main__":
    app.run(main)
