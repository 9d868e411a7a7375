"""Train the character model on Gutenberg books or your own text files, then export it.

    python train.py --corpus=gutenberg --books=1342,84,2701 --export_dir=exports/austen
    python train.py --corpus=files --files='my/texts/*.txt' --steps=2000
"""

import cli  # first: it imports TensorFlow without the C++ start-up chatter

import keras

import export
import training
from errors import UserError
from models.char_lstm import build_model
from pipeline.datasets import make_datasets

cli.define_config_flags("run", "data", "model", "train")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --steps=100")
    cfg = cli.config_from_flags("run", "data", "model", "train")
    export.check_can_write(cfg.export_dir)
    keras.utils.set_random_seed(cfg.seed)
    data = make_datasets(cfg)
    print(
        f"corpus: {data.num_books} book(s), {data.train_chars:,} training and {data.validation_chars:,} validation "
        f"characters, {data.vocabulary.size} ids in the vocabulary; prepared data in {data.prepared_dir}"
    )
    total_steps = cfg.steps or cfg.epochs * data.steps_per_epoch
    print(
        f"training {total_steps:,} steps of {cfg.batch_size} x {cfg.seq_len} characters "
        f"({total_steps / data.steps_per_epoch:.2f} epochs of {data.steps_per_epoch:,} steps)"
    )
    model = build_model(cfg, data.vocabulary.size)
    result = training.train(
        model,
        data.train,
        validation_batches=data.validation,
        total_steps=total_steps,
        steps_per_epoch=data.steps_per_epoch,
        learning_rate=cfg.learning_rate,
        chars_per_step=cfg.batch_size * cfg.seq_len,
        log_every=cfg.log_every,
        logdir=cfg.logdir or f"{cfg.export_dir}.logs",
    )
    if result.steps_completed == 0:
        raise KeyboardInterrupt
    directory = export.write_export(
        cfg.export_dir, model=model, config=cfg, vocabulary=data.vocabulary, steps_completed=result.steps_completed
    )
    validation = f", validation {result.validation_bits_per_char:.3f}" if result.validation_bits_per_char is not None else ""
    status = "interrupted" if result.interrupted else "done"
    print(f"{status}: {result.steps_completed:,} steps, train {result.train_bits_per_char:.3f}{validation} bits/char")
    print(f"exported to {directory}; generate with: python generate.py --export_dir={directory}")
    if result.interrupted:
        raise KeyboardInterrupt


if __name__ == "__main__":
    cli.run(main)
