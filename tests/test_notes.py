from pipeline.notes import CappedNotes


def test_each_key_is_noted_once_the_first_few_in_full_then_the_rest_counted():
    said = []
    notes = CappedNotes(limit=2, rest="note: and {count:,} more", notify=said.append)
    for name in ["a", "b", "a", "c", "b", "d"]:
        notes.add(name, f"note: {name}")
    notes.flush()
    notes.add("c", "note: c")  # read again, after the count: still said once
    notes.flush()
    assert said == ["note: a", "note: b", "note: and 2 more"]


def test_nothing_held_back_means_no_count_line():
    said = []
    notes = CappedNotes(limit=10, rest="note: and {count:,} more", notify=said.append)
    notes.add("a", "note: a")
    notes.flush()
    assert said == ["note: a"]
