"""Train the character model on Gutenberg books or your own text files, then export it.

    python train.py --corpus=gutenberg --books=1342,84,2701 --export_dir=exports/austen
    python train.py --corpus=files --files='my/texts/*.txt' --steps=2000

Rerunning the same command after a crash, a kill or Ctrl-C resumes from the latest checkpoint.
"""

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import training
from errors import UserError

cli.define_config_flags("run", "data", "model", "train")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --steps=100")
    training.run(cli.config_from_flags("run", "data", "model", "train"))  # all the work; notebooks and tests call it too


if __name__ == "__main__":
    # The strategy must be what starts TensorFlow's runtime: MultiWorkerMirroredStrategy refuses a started one.
    cli.run(main, start_xla_quietly=False)
