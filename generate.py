"""Generate text from an exported model, streaming characters as they are sampled.

    python generate.py --export_dir=exports/model --seed_text="It was " --length=1000 --temperature=0.8 --seed=1
"""

import sys

import cli  # first: it imports TensorFlow without the C++ start-up chatter

import export
from errors import UserError
from models.sampling import generate_text

cli.define_config_flags("run", "generate")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --length=500")
    exported = export.load_export(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "generate", base=exported.config)
    model = export.load_model(exported, batch_size=1, stateful=True)
    chars = generate_text(
        model, exported.vocabulary, seed_text=cfg.seed_text, length=cfg.length, temperature=cfg.temperature, seed=cfg.seed
    )
    sys.stdout.write(cfg.seed_text)
    for char in chars:
        sys.stdout.write(char)
        sys.stdout.flush()
    sys.stdout.write("\n")


if __name__ == "__main__":
    cli.run(main)
