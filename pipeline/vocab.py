"""The character vocabulary: counted from training text book by book, saved as JSON, applied by StringLookup or numpy."""

import collections
import functools
import json
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from errors import UserError

OOV_TOKEN = "[UNK]"
OOV_ID = 0  # StringLookup puts its single out-of-vocabulary id first


class Vocabulary:
    """Characters <-> ids. Id 0 stands for any character not in the vocabulary; chars[i] has id i + 1."""

    def __init__(self, chars: Iterable[str]):
        self.chars = tuple(chars)
        if not self.chars or any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError("a vocabulary is a non-empty list of distinct single characters")
        # Code point -> id for encode_codepoints; one slot past the largest known code point stands for all unknown ones.
        codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._id_of_codepoint = np.full(codepoints.max() + 2, OOV_ID, dtype=self.id_dtype)
        self._id_of_codepoint[codepoints] = np.arange(1, len(self.chars) + 1)

    # Made on first use: each costs TensorFlow lookup tables, which reading an export does not need.
    @functools.cached_property
    def chars_to_ids(self) -> keras.layers.StringLookup:
        return keras.layers.StringLookup(vocabulary=list(self.chars), mask_token=None, oov_token=OOV_TOKEN)

    @functools.cached_property
    def ids_to_chars(self) -> keras.layers.StringLookup:
        return keras.layers.StringLookup(vocabulary=list(self.chars), mask_token=None, oov_token=OOV_TOKEN, invert=True)

    @property
    def size(self) -> int:
        """Number of ids, the OOV id included: the width of the model's output layer."""
        return len(self.chars) + 1

    @property
    def id_dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id: uint8 up to 255 characters, else uint16 (or uint32)."""
        return np.dtype(np.uint8 if self.size <= 2**8 else np.uint16 if self.size <= 2**16 else np.uint32)

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        """A string (tensor [] or str) to int32 ids [num_chars]: 'hello' -> [8, 5, 12, 12, 15] (ids depend on the vocabulary)."""
        return tf.cast(self.chars_to_ids(tf.strings.unicode_split(text, "UTF-8")), tf.int32)

    def encode_codepoints(self, codepoints: np.ndarray) -> np.ndarray:
        """Code points (see codepoints_of) to ids of id_dtype, the same ids `encode` gives, at numpy speed."""
        return self._id_of_codepoint[np.minimum(codepoints, len(self._id_of_codepoint) - 1)]

    def encode_text(self, text: str) -> np.ndarray:
        """`text` to ids of id_dtype, the same ids `encode` gives, at numpy speed."""
        return np.concatenate([self.encode_codepoints(piece) for piece in codepoint_pieces(text)])

    def decode(self, ids) -> str:
        """Ids (any shape, read in order) back to a Python string; the OOV id decodes as '[UNK]'."""
        chars = self.ids_to_chars(tf.reshape(tf.cast(ids, tf.int64), [-1]))
        return tf.strings.reduce_join(chars).numpy().decode("utf-8")

    def unknown_chars(self, text: str) -> list[str]:
        """Distinct characters of `text` that are not in the vocabulary, in order of first appearance."""
        return list(self.count_unknown_chars(text))

    def count_unknown_chars(self, text: str) -> collections.Counter:
        """How often each character of `text` that is not in the vocabulary occurs, in order of first appearance."""
        known = set(self.chars)
        return collections.Counter({c: n for c, n in collections.Counter(text).items() if c not in known})

    def to_json(self) -> str:
        return json.dumps({"oov_token": OOV_TOKEN, "chars": list(self.chars)}, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Vocabulary":
        try:
            return cls(json.loads(text)["chars"])
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"the vocabulary file is damaged ({error}); export the model again") from None


# Characters turned into code points at a time: a huge single-file book never needs 4 bytes per character at once.
CODEPOINTS_PER_PIECE = 1 << 24


def codepoints_of(text: str) -> np.ndarray:
    """The characters of `text` as uint32 code points, without a Python loop: 'hé' -> [104, 233]."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def codepoint_pieces(text: str):
    """codepoints_of(text) in consecutive pieces of at most CODEPOINTS_PER_PIECE characters."""
    for start in range(0, max(len(text), 1), CODEPOINTS_PER_PIECE):
        yield codepoints_of(text[start : start + CODEPOINTS_PER_PIECE])


def count_chars(text: str) -> collections.Counter:
    """How often each character of `text` occurs: 'hih' -> {'h': 2, 'i': 1}."""
    counts = collections.Counter()
    for piece in codepoint_pieces(text):
        values, piece_counts = np.unique(piece, return_counts=True)
        counts.update({chr(v): int(n) for v, n in zip(values.tolist(), piece_counts.tolist())})
    return counts


def vocabulary_from_counts(counts: collections.Counter, *, max_vocab: int = 0, min_char_count: int = 1) -> Vocabulary:
    """The characters seen at least `min_char_count` times, at most the `max_vocab` most frequent (0: no limit).

    Ties in frequency go to the lower code point, and the kept characters are in code-point order,
    so the same counts always give the same ids. The characters left out read as the unknown id.
    """
    kept = [c for c, n in counts.items() if n >= min_char_count]
    if max_vocab:
        kept = sorted(kept, key=lambda c: (-counts[c], c))[:max_vocab]
    if not kept:
        raise UserError(
            f"no character occurs at least --min_char_count={min_char_count} times in the training text; "
            "lower --min_char_count or add text"
        )
    return Vocabulary(sorted(kept))


def build_vocabulary(texts: Iterable[str], *, max_vocab: int = 0, min_char_count: int = 1) -> Vocabulary:
    """The vocabulary of `texts`, read one at a time (see vocabulary_from_counts)."""
    counts = collections.Counter()
    for text in texts:
        counts.update(count_chars(text))
    return vocabulary_from_counts(counts, max_vocab=max_vocab, min_char_count=min_char_count)
