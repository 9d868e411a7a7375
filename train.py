"""Train the character model on Gutenberg books or your own text files, then export it.

    python train.py --corpus=gutenberg --books=1342,84,2701 --export_dir=exports/austen
    python train.py --corpus=files --files='my/texts/*.txt' --steps=2000

Rerunning the same command after a crash, a kill or Ctrl-C resumes from the latest checkpoint.
"""

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import contextlib
import dataclasses

import keras

import checkpoints as checkpoints_lib
import distribute
import export
import training
import workdirs
from checkpoints import TrainingCheckpoints
from config import Config
from errors import UserError
from models.char_lstm import build_model
from models.sampling import generate_text
from pipeline.datasets import make_datasets
from pipeline.vocab import Vocabulary

cli.define_config_flags("run", "data", "model", "train")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --steps=100")
    cfg = with_default_paths(cli.config_from_flags("run", "data", "model", "train"))
    check_directories_apart(cfg)
    strategy = distribute.make_strategy(cfg.strategy)
    is_chief = distribute.is_chief(strategy)
    with contextlib.ExitStack() as held:
        if is_chief:  # the one writer of the export and the checkpoints; the other workers only read
            held.enter_context(workdirs.exclusive_use(cfg.export_dir, flag="--export_dir"))
            held.enter_context(workdirs.exclusive_use(cfg.checkpoint_dir, flag="--checkpoint_dir"))
        export.check_can_write(cfg.export_dir)
        checkpoints_lib.check_can_use(cfg.checkpoint_dir)
        train_and_export(cfg, strategy, is_chief=is_chief)


def train_and_export(cfg: Config, strategy, *, is_chief: bool) -> None:
    precision = distribute.set_precision(cfg.mixed_precision, strategy)
    keras.utils.set_random_seed(cfg.seed)
    data = make_datasets(cfg, num_workers=distribute.num_workers(strategy))
    print(
        f"corpus: {data.num_books} book(s), {data.train_chars:,} training and {data.validation_chars:,} validation "
        f"characters, {data.vocabulary.size} ids in the vocabulary; prepared data in {data.prepared_dir}"
    )
    total_steps = cfg.steps or cfg.epochs * data.steps_per_epoch
    print(
        f"training {total_steps:,} steps of {cfg.batch_size} x {cfg.seq_len} characters "
        f"({total_steps / data.steps_per_epoch:.2f} epochs of {data.steps_per_epoch:,} steps) "
        f"on {distribute.describe(strategy)}, {precision}"
    )
    with strategy.scope():
        model = build_model(cfg, data.vocabulary.size)
        optimizer = training.make_optimizer(cfg, model, total_steps=total_steps, num_replicas=strategy.num_replicas_in_sync)
        checkpoints = TrainingCheckpoints(
            cfg.checkpoint_dir, model=model, optimizer=optimizer, keep=cfg.keep_checkpoints, is_chief=is_chief
        )
    first_step = checkpoints.restore_or_start(cfg, data.vocabulary)
    if first_step > total_steps:
        raise UserError(
            f"the checkpoints in {cfg.checkpoint_dir} are at step {first_step:,}, past the {total_steps:,} steps asked for; "
            f"ask for more (--steps={first_step + 1000}), or pass --noresume to start over"
        )
    if first_step == total_steps:
        print(
            f"training is already complete: the checkpoints in {cfg.checkpoint_dir} are at step {first_step:,} of "
            f"{total_steps:,}; exporting them again (to train on, ask for more --steps)"
        )
    elif first_step:
        print(f"resuming from the checkpoint of step {first_step:,} in {cfg.checkpoint_dir}")
    result = training.train(
        cfg,
        model=model,
        optimizer=optimizer,
        data=data,
        strategy=strategy,
        checkpoints=checkpoints,
        total_steps=total_steps,
        write_logs=is_chief,
        sample_text=make_sampler(cfg, model, data.vocabulary) if cfg.sample_length else None,
    )
    if result.steps_completed == first_step and result.interrupted:
        raise KeyboardInterrupt
    summary = f"{result.steps_completed:,} steps"
    if result.steps_completed > first_step:  # no steps trained by this run: no training loss to speak of
        summary += f", train {result.train_bits_per_char:.3f} bits/char"
    if result.best_step is not None:
        summary += f", best validation {result.validation_bits_per_char:.3f} bits/char (step {result.best_step:,})"
    print(f"{'interrupted' if result.interrupted else 'done'}: {summary}")
    if is_chief:  # in multi-worker training every worker holds the same weights; one copy is enough
        directory = export.write_export(
            cfg.export_dir, model=model, config=cfg, vocabulary=data.vocabulary, steps_completed=result.steps_completed
        )
        print(f"exported to {directory}; generate with: python generate.py --export_dir={directory}")
    if result.interrupted:
        print(f"rerun the same command to continue from step {result.steps_completed:,}")
        raise KeyboardInterrupt


def check_directories_apart(cfg: Config) -> None:
    """Checkpoints or logs inside the export directory would be deleted with it when the export is swapped in."""
    for flag, path, default in [
        ("--checkpoint_dir", cfg.checkpoint_dir, f"{cfg.export_dir}.checkpoints"),
        ("--logdir", cfg.logdir, f"{cfg.export_dir}.logs"),
    ]:
        if workdirs.is_inside(path, cfg.export_dir):
            raise UserError(
                f"{flag}={path} is inside --export_dir={cfg.export_dir}, which each export replaces whole; "
                f"choose a {flag} outside it, or leave it out for the default beside it, {default}"
            )


def with_default_paths(cfg: Config) -> Config:
    """Logs and checkpoints live beside the export unless the flags say otherwise."""
    return dataclasses.replace(
        cfg,
        logdir=cfg.logdir or f"{cfg.export_dir}.logs",
        checkpoint_dir=cfg.checkpoint_dir or f"{cfg.export_dir}.checkpoints",
    )


def make_sampler(cfg: Config, model: keras.Model, vocabulary: Vocabulary):
    """A function that returns --sample_length characters written by the model's current weights."""
    # A new line is the most neutral prompt; any corpus without one starts from its first character.
    seed_text = "\n" if not vocabulary.unknown_chars("\n") else vocabulary.chars[0]

    def sample_text() -> str:
        texts = generate_text(model, vocabulary, seed_text=seed_text, length=cfg.sample_length, temperature=0.8, seed=cfg.seed)
        return "".join(texts)

    return sample_text


if __name__ == "__main__":
    cli.run(main)
