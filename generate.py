"""Generate text from an exported model, streaming characters as they are sampled.

    python generate.py --export_dir=exports/model --seed_text="It was " --length=1000 --temperature=0.8 --seed=1
    python generate.py --export_dir=exports/model --top_k=5 --top_p=0.9
    python generate.py --export_dir=exports/model --num_samples=4 --stop_at=$'\\n\\n'
"""

import sys

import cli  # first: it imports TensorFlow without the C++ start-up chatter

import export
from errors import UserError
from models.sampling import generate_samples

cli.define_config_flags("run", "generate")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --length=500")
    exported = export.load_export(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "generate", base=exported.config)
    unknown = exported.vocabulary.unknown_chars(cfg.seed_text)
    if unknown and cfg.allow_unknown:
        listed = ", ".join(repr(c) for c in unknown)
        print(f"warning: the model never saw {listed}; reading them as 'unknown character'", file=sys.stderr)
    model = export.load_model(exported, batch_size=cfg.num_samples, stateful=True)
    samples = generate_samples(
        model,
        exported.vocabulary,
        seed_text=cfg.seed_text,
        length=cfg.length,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        stop_at=cfg.stop_at,
        allow_unknown=cfg.allow_unknown,
        seed=cfg.seed,
    )
    if cfg.num_samples == 1:
        sys.stdout.write(cfg.seed_text)
        for (text,) in samples:  # streamed as it is sampled
            sys.stdout.write(text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = [cfg.seed_text] * cfg.num_samples
    for chunk in samples:
        texts = [text + new_text for text, new_text in zip(texts, chunk)]
    for number, text in enumerate(texts, start=1):
        print(f"--- sample {number} of {cfg.num_samples} ---\n{text}")


if __name__ == "__main__":
    cli.run(main)
