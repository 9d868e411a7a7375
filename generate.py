"""Generate text from an exported model, streaming characters as they are sampled.

    python generate.py --export_dir=exports/model --seed_text="It was " --length=1000 --temperature=0.8 --seed=1
    python generate.py --export_dir=exports/model --top_k=5 --top_p=0.9
    python generate.py --export_dir=exports/model --num_samples=4 --stop_at=$'\\n\\n'
"""

import sys

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import api
from errors import UserError

cli.define_config_flags("run", "generate")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --length=500")
    generator = api.load(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "generate", base=generator.export.config)
    settings, notes = generator.fit_settings(**api.sampling_settings(cfg))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    unknown = generator.unknown_chars(cfg.seed_text)
    if unknown and cfg.allow_unknown:
        listed = ", ".join(repr(c) for c in unknown)
        print(f"warning: the model never saw {listed}; reading them as 'unknown character'", file=sys.stderr)
    if cfg.num_samples == 1:
        chunks = generator.stream(cfg.seed_text, **settings)  # raises on a bad seed text before printing it
        sys.stdout.write(cfg.seed_text)
        for text in chunks:
            sys.stdout.write(text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = generator.generate_many(cfg.seed_text, num_samples=cfg.num_samples, **settings)
    for number, text in enumerate(texts, start=1):
        print(f"--- sample {number} of {cfg.num_samples} ---\n{text}")


if __name__ == "__main__":
    cli.run(main)
