"""Score an exported model on any books or text files, in bits per character (lower is better).

    python evaluate.py --export_dir=exports/demo --books=50133,31469
    python evaluate.py --export_dir=exports/demo --corpus=files --files='held_out/*.txt'

Text is cut into windows of --seq_len + 1 characters, each scored from an empty LSTM state, or, for
a model trained with --stream_windows, into streams of that many windows, each window scored from the
state the one before it left: the same way train.py scores its validation text, so the numbers compare directly.
"""

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import evaluation
import export
from config import names_in_groups
from errors import UserError

# Settings of training batches and of the vocabulary mean nothing here: whole books are scored, in order.
SKIPPED = names_in_groups("data.training")
cli.define_config_flags("run", "data", skip=SKIPPED)


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --books=84")
    exported = export.load_export(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "data", skip=SKIPPED, base=exported.config)
    scores = []
    for score in evaluation.evaluate_books(cfg, exported):  # each book's line as soon as it is scored
        scores.append(score)
        unknown = ""
        if score.unknown_chars:
            listed = ", ".join(repr(c) for c, _ in score.unknown_chars.most_common(5))
            unknown = f"  ({sum(score.unknown_chars.values()):,} characters unknown to the model: {listed})"
        print(f"{score.name}: {score.bits_per_char:.3f} bits/char over {score.num_chars:,} characters{unknown}")
    total = evaluation.combine_scores(scores)
    print(
        f"all: {total.bits_per_char:.3f} bits/char, perplexity {2 ** total.bits_per_char:.2f} per character, "
        f"{total.num_chars:,} characters"
    )


if __name__ == "__main__":
    cli.run(main)
