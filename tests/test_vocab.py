import numpy as np
import pytest

from errors import UserError
from pipeline.vocab import OOV_ID, Vocabulary, build_vocabulary


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
