import pytest

from config import Config
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
        ({"download_workers": 0}, "--download_workers=0 must be between 1 and 256"),
        ({"download_timeout": 0.0}, "--download_timeout=0.0 must be above 0"),
        ({"corpus": "tfds:"}, "or tfds:NAME"),
        ({"seq_len": 10, "window_stride": 12}, "--window_stride=12 must be at most --seq_len \\+ 1 = 11"),
        ({"min_char_count": 0}, "--min_char_count=0 must be between 1"),
        ({"gutenberg_mirror": "htp://www.gutenberg.org"}, "--gutenberg_mirror='htp://www.gutenberg.org' is neither"),
        ({"gutenberg_mirror": "http://[::1"}, "--gutenberg_mirror='http://\\[::1' is neither"),
        ({"gutenberg_mirror": "https://host:port"}, "is neither an http://, https:// or file:// URL nor a directory"),
        ({"gutenberg_mirror": ""}, "--gutenberg_mirror='' is neither"),
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


def test_any_tensorflow_datasets_name_is_a_corpus():
    assert Config(corpus="tfds:pg19").corpus == "tfds:pg19"
