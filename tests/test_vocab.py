import numpy as np
import pytest

from errors import UserError
from pipeline.text import clean_book_text
from pipeline import vocab
from pipeline.vocab import OOV_ID, Vocabulary, build_vocabulary, count_chars


def test_vocabulary_is_every_character_in_code_point_order():
    vocabulary = build_vocabulary(["hello", "world\n"])
    assert vocabulary.chars == ("\n", "d", "e", "h", "l", "o", "r", "w")
    assert vocabulary.size == 9  # 8 characters + the out-of-vocabulary id


def test_text_round_trips_through_ids():
    vocabulary = build_vocabulary(["hello world"])
    ids = vocabulary.encode("hello world").numpy()
    assert ids.dtype == np.int32
    assert ids.tolist() == [4, 3, 5, 5, 6, 1, 8, 6, 7, 5, 2]
    assert vocabulary.decode(ids) == "hello world"


def test_unseen_characters_get_the_oov_id():
    vocabulary = build_vocabulary(["abc"])
    assert vocabulary.encode("abz").numpy().tolist() == [1, 2, OOV_ID]
    assert vocabulary.decode([1, OOV_ID]) == "a[UNK]"
    assert vocabulary.unknown_chars("zabyz") == ["z", "y"]
    assert vocabulary.count_unknown_chars("zabyz") == {"z": 2, "y": 1}


def test_vocabulary_survives_json_with_any_character():
    vocabulary = build_vocabulary(["Celæno said “hi”\n\t"])
    again = Vocabulary.from_json(vocabulary.to_json())
    assert again.chars == vocabulary.chars
    assert again.encode("æ“\t").numpy().tolist() == vocabulary.encode("æ“\t").numpy().tolist()


def test_damaged_vocabulary_file_is_a_clear_error():
    with pytest.raises(UserError, match="vocabulary file is damaged"):
        Vocabulary.from_json('{"chars": ["ab"]')


def test_vocabulary_is_counted_one_text_at_a_time_and_can_drop_rare_characters():
    texts = iter(["aaaa", "bbb", "cc", "d"])  # an iterator: each text is read once
    assert build_vocabulary(texts, min_char_count=2).chars == ("a", "b", "c")
    assert build_vocabulary(["aaaa", "bbb", "cc", "d"], max_vocab=2).chars == ("a", "b")
    assert build_vocabulary(["dd", "cc", "b"], max_vocab=2).chars == ("c", "d")  # ties go to the lower code point
    with pytest.raises(UserError, match="lower --min_char_count"):
        build_vocabulary(["abc"], min_char_count=2)


def test_numpy_encoding_gives_exactly_the_string_lookup_ids(corpora_dir):
    alice = clean_book_text((corpora_dir / "gutenberg/cache/epub/11/pg11.txt").read_bytes(), name="Alice")
    vocabulary = build_vocabulary([alice[:5000]], max_vocab=40)  # the rest of the book has characters it lacks
    text = alice + "日本 \U0001F600 \x00"
    ids = vocabulary.encode_text(text)
    assert ids.dtype == np.uint8
    assert ids.tolist() == vocabulary.encode(text).numpy().tolist()
    assert OOV_ID in ids.tolist()


def test_ids_are_stored_in_the_smallest_unsigned_type():
    assert build_vocabulary(["abc"]).id_dtype == np.uint8
    many = "".join(chr(0x4E00 + i) for i in range(300))
    vocabulary = build_vocabulary([many])
    assert vocabulary.id_dtype == np.uint16
    assert vocabulary.encode_text(many[-3:] + "x").tolist() == [298, 299, 300, OOV_ID]


def test_long_texts_are_encoded_and_counted_in_pieces(monkeypatch):
    vocabulary = build_vocabulary(["hello world"])
    whole_ids, whole_counts = vocabulary.encode_text("hello world").tolist(), count_chars("hello world")
    monkeypatch.setattr(vocab, "CODEPOINTS_PER_PIECE", 3)
    assert vocabulary.encode_text("hello world").tolist() == whole_ids
    assert count_chars("hello world") == whole_counts == {"l": 3, "o": 2, "h": 1, "e": 1, " ": 1, "w": 1, "r": 1, "d": 1}
    assert vocabulary.encode_text("").tolist() == [] and count_chars("") == {}
