"""The character vocabulary: built from training text, saved as JSON, and the StringLookup pair that applies it."""

import collections
import json
from collections.abc import Iterable

import keras
import tensorflow as tf

from errors import UserError

OOV_TOKEN = "[UNK]"
OOV_ID = 0  # StringLookup puts its single out-of-vocabulary id first


class Vocabulary:
    """Characters <-> ids. Id 0 stands for any character not seen in training; chars[i] has id i + 1."""

    def __init__(self, chars: Iterable[str]):
        self.chars = tuple(chars)
        if not self.chars or any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError("a vocabulary is a non-empty list of distinct single characters")
        self.chars_to_ids = keras.layers.StringLookup(vocabulary=list(self.chars), mask_token=None, oov_token=OOV_TOKEN)
        self.ids_to_chars = keras.layers.StringLookup(
            vocabulary=list(self.chars), mask_token=None, oov_token=OOV_TOKEN, invert=True
        )

    @property
    def size(self) -> int:
        """Number of ids, the OOV id included: the width of the model's output layer."""
        return len(self.chars) + 1

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        """A string (tensor [] or str) to int32 ids [num_chars]: 'hello' -> [8, 5, 12, 12, 15] (ids depend on the vocabulary)."""
        return tf.cast(self.chars_to_ids(tf.strings.unicode_split(text, "UTF-8")), tf.int32)

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
    def from_json(cls, text: str) -> "Vocabulary":
        try:
            return cls(json.loads(text)["chars"])
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"the vocabulary file is damaged ({error}); export the model again") from None


def build_vocabulary(texts: Iterable[str]) -> Vocabulary:
    """Every character in `texts`, in code-point order so the same text always gives the same ids."""
    counts = collections.Counter()
    for text in texts:
        counts.update(text)
    return Vocabulary(sorted(counts))

