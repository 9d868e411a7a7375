"""Generate text from an exported model, streaming characters as they are sampled.

    python generate.py --export_dir=exports/model --seed_text="It was " --length=1000 --temperature=0.8 --seed=1
    python generate.py --export_dir=exports/model --top_k=5 --top_p=0.9
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
    chunks = generate_text(
        model,
        exported.vocabulary,
        seed_text=cfg.seed_text,
        length=cfg.length,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        seed=cfg.seed,
    )
    sys.stdout.write(cfg.seed_text)
    for text in chunks:
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.stdout.write("\n")


if __name__ == "__main__":
    cli.run(main)
