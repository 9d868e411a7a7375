import dataclasses

import pytest

from config import Config, ModelSettings, OneOf, Range, names_in_groups
from errors import UserError


def test_config_round_trips_through_json():
    cfg = Config(books=(1342, 84), seq_len=64, seed_text="It was “the” ")
    assert Config.from_json_dict(cfg.to_json_dict()) == cfg


def test_settings_unknown_to_this_version_are_ignored():
    assert Config.from_json_dict({"rnn_units": 32, "setting_from_the_future": 1}) == Config(rnn_units=32)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"seq_len": 0}, "--seq_len=0 must be between 1"),
        ({"batch_size": -5}, "--batch_size=-5 must be between 1"),
        ({"rnn_units": 10_000_000}, "--rnn_units=10000000 must be between"),
        ({"corpus": "library"}, "--corpus='library' is not one of gutenberg, files"),
        ({"corpus": "files"}, "--corpus=files needs --files"),
        ({"books": (84, -1)}, "--books ids must be positive"),
        ({"validation_fraction": 1.0}, "--validation_fraction=1.0 must be at least 0 and below 1"),
        ({"temperature": -1.0}, "--temperature=-1.0 must be 0"),
        ({"temperature": 1e9}, "--temperature=1000000000.0 must be 0 \\(greedy\\) or positive, at most 100"),
        ({"learning_rate": 2.0}, "--learning_rate=2.0 must be above 0 and at most 1 \\(the default is 0.001\\)"),
        ({"learning_rate": 0.0}, "--learning_rate=0.0 must be above 0 and at most 1"),
        ({"clipnorm": float("inf")}, "--clipnorm=inf must be 0 \\(no clipping\\) or positive, at most 1,000,000"),
        ({"clipnorm": -1.0}, "--clipnorm=-1.0 must be 0 \\(no clipping\\) or positive"),
        ({"adam_beta2": 1.0}, "--adam_beta2=1.0 must be at least 0 and below 1"),
        ({"download_workers": 0}, "--download_workers=0 must be between 1 and 256"),
        ({"download_timeout": 0.0}, "--download_timeout=0.0 must be above 0"),
        ({"corpus": "tfds:"}, "or tfds:NAME"),
        ({"seq_len": 10, "window_stride": 12}, "--window_stride=12 must be at most --seq_len \\+ 1 = 11"),
        ({"min_char_count": 0}, "--min_char_count=0 must be between 1"),
        ({"gutenberg_mirror": "htp://www.gutenberg.org"}, "--gutenberg_mirror='htp://www.gutenberg.org' is neither"),
        ({"gutenberg_mirror": "http://[::1"}, "--gutenberg_mirror='http://\\[::1' is neither"),
        ({"gutenberg_mirror": "https://host:port"}, "is neither an http://, https:// or file:// URL nor a directory"),
        ({"gutenberg_mirror": ""}, "--gutenberg_mirror='' is neither"),
        ({"stream_windows": 64, "window_stride": 32}, "--window_stride=32 and --stream_windows=64 both say where windows start"),
        ({"steps": 6000, "train_minutes": 10.0}, "--steps=6000 and --train_minutes=10 both say how long to train; give one"),
        ({"train_minutes": -1.0}, "--train_minutes=-1.0 must be between 0"),
    ],
)
def test_bad_settings_are_refused_with_the_flag_named(settings, message):
    with pytest.raises(UserError, match=message):
        Config(**settings)


def test_the_ends_of_the_ranges_are_accepted():
    cfg = Config(learning_rate=1.0, clipnorm=1_000_000.0, temperature=100.0)
    assert (cfg.learning_rate, cfg.clipnorm, cfg.temperature) == (1.0, 1_000_000.0, 100.0)


@pytest.mark.parametrize("mirror", ["https://www.gutenberg.org", "http://127.0.0.1:8000/", "file:///srv/gutenberg", "~/mirror", "mirror"])
def test_web_and_local_mirrors_are_accepted(mirror):
    assert Config(gutenberg_mirror=mirror).gutenberg_mirror == mirror
    assert Config(corpus="files", files="*.txt", gutenberg_mirror="htp://unused").corpus == "files"


@pytest.mark.parametrize("name", ["export_dir", "checkpoint_dir", "logdir", "cache_dir"])
def test_a_url_for_a_directory_charbook_writes_is_refused(name):
    # Exports, checkpoints and caches are renamed into place and locked with the system's own calls, which a URL cannot take.
    with pytest.raises(
        UserError,
        match=rf"--{name}='gs://bucket/run' is a URL; charbook reads and writes exports, checkpoints, logs and caches in "
        r"local or mounted directories only \(on Colab, Google Drive mounted at /content/drive\): copy to or from gs:// "
        r"with gsutil$",
    ):
        Config(**{name: "gs://bucket/run"})


@pytest.mark.parametrize("path", ["/content/drive/MyDrive/charbook/novels", "exports/a:b", "~/models", "C:\\models"])
def test_local_and_mounted_directories_are_accepted(path):
    assert Config(export_dir=path, checkpoint_dir=path + ".c", logdir=path + ".l", cache_dir=path).export_dir == path


def test_any_tensorflow_datasets_name_is_a_corpus():
    assert Config(corpus="tfds:pg19").corpus == "tfds:pg19"


def test_every_number_setting_says_its_valid_range_where_it_is_defined():
    numbers = [f.name for f in dataclasses.fields(Config) if f.type in (int, float)]
    assert [name for name in numbers if not isinstance(_field(name).metadata["valid"], Range)] == []
    assert _field("learning_rate").metadata["valid"].problem("learning_rate", 2.0) == (
        "--learning_rate=2.0 must be above 0 and at most 1 (the default is 0.001)"
    )
    assert _field("lr_decay").metadata["valid"] == OneOf(("cosine", "linear", "constant"))


def test_lists_of_settings_come_from_their_groups():
    assert names_in_groups("data.fetch") == (
        "gutenberg_mirror", "cache_dir", "download_workers", "download_timeout", "catalog_max_age", "refresh_catalog", "tfds_data_dir"
    )
    assert names_in_groups("record") == ("books_query",)  # kept in the export, set by no flag
    assert names_in_groups("data.text") == ("corpus", "books", "files", "tfds_split", "lowercase", "collapse_whitespace")
    assert names_in_groups("generate.sampling") == ("length", "temperature", "top_k", "top_p", "stop_at", "allow_unknown")
    assert set(names_in_groups("data")) > set(names_in_groups("data.fetch")) | {"seq_len", "batch_size"}


def test_the_model_settings_are_the_model_group_alone():
    assert Config(embedding_dim=4, rnn_units=8, dropout=0.5, batch_size=3).model == ModelSettings(
        embedding_dim=4, rnn_units=8, dropout=0.5
    )


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(Config) if f.name == name)
