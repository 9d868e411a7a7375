"""List the Gutenberg books a --books value selects, without training: id, downloads, cached or not, language, title and author.

    python books.py 'author:austen'
    python books.py 'lang:en subject:"science fiction" top:20' --gutenberg_mirror=../shared/corpora/gutenberg
    python books.py --count 'lang:fr'

The query language is the one of train.py --books (see README.md); ids, ranges and @files work too.
"""

import cli

cli.import_tensorflow_quietly()  # cli.run imports TensorFlow; quietly, before anything else does

from absl import flags

from errors import UserError
from pipeline import book_ids, catalog, sources

cli.define_config_flags("data.fetch")
flags.DEFINE_bool("count", False, "Print only the number of books the query selects.")


def main(argv):
    text = " ".join(argv[1:])
    if not text.strip():
        raise UserError("give a query, e.g. python books.py 'author:austen' (or ids, e.g. 84,1342)")
    cfg = cli.config_from_flags("data.fetch")
    source = cli.catalog_source(cfg)
    ids = book_ids.parse_book_ids(text, select_books=lambda query: catalog.choose_books(query, source, log=lambda line: None))
    if cli.FLAGS.count:
        print(len(ids))
        return
    listing = catalog.list_books(
        list(ids),
        source.catalog,
        source.downloads.counts,
        cached=lambda book_id: sources.cached_book_path(book_id, cache_dir=source.cache_dir).is_file(),
    )
    print("\n".join(listing))


if __name__ == "__main__":
    cli.run(main)
