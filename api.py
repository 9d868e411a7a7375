"""The Python API for notebooks: load an export once, then generate strings from it.

    import api
    generator = api.load("exports/demo")
    print(generator.generate("It was ", length=300, temperature=0.7, seed=1))
    for text in generator.stream("It was ", length=2000):
        print(text, end="", flush=True)
"""

import os
from collections.abc import Iterator

import export
from config import Config, names_in_groups
from errors import UserError
from models.sampling import generate_samples, generate_text


def sampling_settings(cfg: Config) -> dict:
    """The generate settings of `cfg` as keyword arguments of generate_samples and generate_text."""
    names = (*names_in_groups("generate.sampling"), "seed")
    return {name: getattr(cfg, name) for name in names}


class TextGenerator:
    """An export's model and vocabulary, loaded once; the generation loop is compiled on first use only."""

    def __init__(self, exported: export.Export):
        self.export = exported
        self.model = export.load_model(exported)

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` the model never saw in training (a seed text with them needs allow_unknown)."""
        return self.export.vocabulary.unknown_chars(self.as_trained(text))

    def as_trained(self, seed_text: str) -> str:
        """The seed text as the model reads it: lower-cased if it was trained on --lowercase text."""
        return seed_text.lower() if self.export.config.lowercase else seed_text

    def fit_settings(self, **settings) -> tuple[dict, list[str]]:
        """The sampling settings as this model can follow them, and a note for each one changed to fit it.

        Settings left out take the export's saved values. A top_k above the number of characters the
        model knows means all of them (the top 500 of 80 characters are all 80); a stop_at is read as
        the model writes, lower-cased if it was trained on --lowercase text, as the seed text is.
        Raises UserError for a stop_at with characters the model never writes: no sample would stop.
        stream, generate and generate_many fit their settings silently; generate.py prints the notes.
        """
        settings = sampling_settings(self.export.config) | settings
        notes = []
        num_chars = len(self.export.vocabulary.chars)
        if settings["top_k"] > num_chars:
            notes.append(
                f"--top_k={settings['top_k']} is more than the {num_chars} characters the model knows; "
                "sampling among all of them"
            )
            settings["top_k"] = num_chars
        stop_at = settings["stop_at"]
        if self.as_trained(stop_at) != stop_at:
            settings["stop_at"] = self.as_trained(stop_at)
            notes.append(
                f"the model writes lower-case text (it was trained with --lowercase), so --stop_at={stop_at!r} "
                f"is read as {settings['stop_at']!r}"
            )
        never_written = self.export.vocabulary.unknown_chars(settings["stop_at"])
        if never_written:
            listed = ", ".join(repr(c) for c in never_written)
            raise UserError(
                f"--stop_at={stop_at!r} has characters the model never writes: {listed}, so no sample would ever "
                f"stop there; give a --stop_at of characters it writes (listed in {self.export.directory / export.VOCAB_FILE})"
            )
        return settings, notes

    def stream_samples(self, seed_text: str, *, num_samples: int = 1, **settings) -> Iterator[list[str]]:
        """Chunks of new text, one string per sample, as they are sampled.

        Settings: length, temperature, top_k, top_p, stop_at, allow_unknown and seed, as generate.py's
        flags of the same names; those left out take the export's saved values (see fit_settings).
        """
        settings, _ = self.fit_settings(**settings)
        return generate_samples(
            self.model, self.export.vocabulary, seed_text=self.as_trained(seed_text), num_samples=num_samples, **settings
        )

    def stream(self, seed_text: str, **settings) -> Iterator[str]:
        """The new text of one sample, a few characters at a time, as it is sampled."""
        settings, _ = self.fit_settings(**settings)
        return generate_text(self.model, self.export.vocabulary, seed_text=self.as_trained(seed_text), **settings)

    def generate(self, seed_text: str, **settings) -> str:
        """The seed text followed by one generated sample."""
        return seed_text + "".join(self.stream(seed_text, **settings))

    def generate_many(self, seed_text: str, *, num_samples: int, **settings) -> list[str]:
        """`num_samples` samples generated together, each starting with the seed text."""
        texts = [seed_text] * num_samples
        for chunk in self.stream_samples(seed_text, num_samples=num_samples, **settings):
            texts = [text + new_text for text, new_text in zip(texts, chunk)]
        return texts


def load(export_dir: str | os.PathLike) -> TextGenerator:
    """Reads and checks the export in `export_dir` (a UserError names what is wrong with it)."""
    return TextGenerator(export.load_export(export_dir))
