"""Score an exported model on any books or text files, in bits per character (lower is better).

    python evaluate.py --export_dir=exports/demo --books=50133,31469
    python evaluate.py --export_dir=exports/demo --corpus=files --files='held_out/*.txt'

Text is cut into windows of --seq_len + 1 characters, each scored from an empty LSTM state, the
same way train.py scores its validation text, so the numbers compare directly.
"""

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import export
import training
from errors import UserError
from pipeline.datasets import make_evaluation_books

# Settings of training batches and of the vocabulary mean nothing here: whole books are scored, in order.
SKIPPED = (
    "validation_fraction",
    "shuffle_buffer",
    "window_stride",
    "max_vocab",
    "min_char_count",
    "deterministic",
    "data_service_address",
)
cli.define_config_flags("run", "data", skip=SKIPPED)


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --books=84")
    exported = export.load_export(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "data", skip=SKIPPED, base=exported.config)
    evaluate = training.make_evaluate(export.load_model(exported))
    total_bits, total_chars = 0.0, 0
    for book in make_evaluation_books(cfg, vocabulary=exported.vocabulary):
        bits_per_char, num_chars = evaluate(book.batches)
        total_bits += bits_per_char * num_chars
        total_chars += num_chars
        unknown = ""
        if book.unknown_chars:
            listed = ", ".join(repr(c) for c, _ in book.unknown_chars.most_common(5))
            unknown = f"  ({sum(book.unknown_chars.values()):,} characters unknown to the model: {listed})"
        print(f"{book.name}: {bits_per_char:.3f} bits/char over {num_chars:,} characters{unknown}")
    bits_per_char = total_bits / total_chars
    print(f"all: {bits_per_char:.3f} bits/char, perplexity {2 ** bits_per_char:.2f} per character, {total_chars:,} characters")


if __name__ == "__main__":
    cli.run(main)
