"""Books from TensorFlow Datasets: --corpus=tfds:pg19 (a book per example) or tfds:tiny_shakespeare (one text).

Each example of the split is one book; its text feature is cleaned like any other book. The
dataset is downloaded and prepared by tensorflow_datasets itself, into --tfds_data_dir.
"""

import os
from collections.abc import Iterator

from errors import UserError

# The feature holding the text, for the datasets this tool names in its help; any other dataset with
# exactly one Text feature works too.
TEXT_FEATURES = {"pg19": "book_text", "tiny_shakespeare": "text"}
# Features that name an example better than its position does.
TITLE_FEATURES = ("book_title", "title")


def describe(name: str, *, split: str, data_dir: str) -> tuple[list, int]:
    """What identifies the split's texts (for the prepared data's key), and how many books it holds."""
    builder = _builder(name, data_dir=data_dir)
    _text_feature(builder)
    identity = ["tfds", name, str(builder.info.version), split, data_dir]
    splits = builder.info.splits
    num_books = splits[split].num_examples if split in splits else sum(1 for _ in _examples(builder, split))
    return identity, num_books


def read_texts(name: str, *, split: str, data_dir: str) -> Iterator[tuple[str, bytes]]:
    """(name, raw UTF-8 text) of every example of the split, one at a time, in the dataset's order."""
    builder = _builder(name, data_dir=data_dir)
    text_feature = _text_feature(builder)
    title_feature = next((f for f in TITLE_FEATURES if f in builder.info.features), None)
    for index, example in enumerate(_examples(builder, split)):
        title = f": {example[title_feature].decode('utf-8', 'replace')}" if title_feature else ""
        yield f"tfds:{name} {split} example {index}{title}", example[text_feature]


def _builder(name: str, *, data_dir: str):
    import tensorflow_datasets as tfds  # only here: it takes seconds to import

    try:
        builder = tfds.builder(name, data_dir=os.path.expanduser(data_dir) if data_dir else None)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"--corpus=tfds:{name}: TensorFlow Datasets has no dataset {name!r}; try tfds:pg19") from None
    try:
        builder.download_and_prepare()
    except OSError as error:
        raise UserError(
            f"--corpus=tfds:{name} could not be downloaded or prepared ({error}); check the network, the disk space "
            "and --tfds_data_dir"
        ) from None
    return builder


def _examples(builder, split: str):
    import tensorflow_datasets as tfds

    if split not in builder.info.splits and builder.info.splits:
        raise UserError(f"{builder.name} has no split {split!r}; it has {', '.join(builder.info.splits)} (--tfds_split)")
    return tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def _text_feature(builder) -> str:
    import tensorflow_datasets as tfds

    if builder.name in TEXT_FEATURES:
        return TEXT_FEATURES[builder.name]
    texts = [name for name, feature in builder.info.features.items() if isinstance(feature, tfds.features.Text)]
    if len(texts) != 1:
        raise UserError(f"{builder.name} has {len(texts)} text features ({', '.join(texts)}), not one; it cannot be a corpus")
    return texts[0]
