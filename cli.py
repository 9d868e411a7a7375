"""Command-line plumbing shared by the entry scripts: Config fields as absl flags, clean error exits."""

import contextlib
import dataclasses
import errno
import os
import pathlib
import select
import sys
import tempfile
import traceback

from absl import app, flags, logging

import config as config_lib
from errors import UserError, os_error_reason
from files import discard_stdout
from pipeline import book_ids, catalog, sources

FLAGS = flags.FLAGS
# Flags defined through this module belong to the entry script that asked for them, so its --help lists them.
flags.disclaim_key_flags()


def _debug_from_environment() -> bool:
    return os.environ.get("CHARBOOK_DEBUG", "") not in ("", "0")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up chatter ("Could not find cuda drivers...") kept off stderr.

    Entry scripts call it before importing anything that imports TensorFlow; importing this module does nothing of the kind.

    The chatter is shown after all if the import fails, and always with CHARBOOK_DEBUG=1.
    """
    if _debug_from_environment():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_set_aside():
        import tensorflow as tf

        tf.config.list_physical_devices()  # initializes CUDA, which has its own chatter


def _start_xla_quietly() -> None:
    """Before TensorFlow 2.21 (Colab's 2.19, tensorflow-tpu's 2.20) XLA announces its start on stderr through absl,
    whatever TF_CPP_MIN_LOG_LEVEL says ("XLA service ... initialized", "Compiled cluster using XLA!"), once per
    process: one tiny compiled function spends those lines unseen. It starts TensorFlow's runtime, so only the
    entry scripts (run) call it, and not on a TPU VM, whose TPU the strategy must be the first to take.
    """
    import tensorflow as tf

    from hardware import tpu_is_attached

    if _debug_from_environment() or tuple(int(part) for part in tf.__version__.split(".")[:2]) >= (2, 21) or tpu_is_attached():
        return
    with _stderr_set_aside():
        tf.function(lambda x: x + 1, jit_compile=True)(tf.constant(0))


@contextlib.contextmanager
def _stderr_set_aside():
    """What C++ code writes to stderr meanwhile goes to a temporary file, shown only if an exception ends the block."""
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile() as chatter:
        os.dup2(chatter.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved_stderr, 2)
            chatter.seek(0)
            sys.stderr.write(chatter.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)


# The system's message names the problem; this says what to do about the ones users meet.
_OS_ERROR_ADVICE = {
    errno.ENOSPC: "free some disk space, then rerun",
    errno.EDQUOT: "free some disk space, then rerun",
    errno.EROFS: "that disk is read-only; choose another directory",
    errno.EACCES: "choose a directory you may write to, or fix its permissions",
    errno.EPERM: "choose a directory you may write to, or fix its permissions",
    errno.ENOTDIR: "a file stands where a directory is needed; move it or choose another path",
    errno.EISDIR: "a directory stands where a file is needed; check the path",
    errno.ENOENT: "check the path",
    errno.EPIPE: "the program or connection reading it has stopped",
}

# Flag defaults that users may set from the environment, as the help texts say.
_ENVIRONMENT_DEFAULTS = {"gutenberg_mirror": "GUTENBERG_MIRROR", "cache_dir": "CHARBOOK_CACHE_DIR"}


def define_config_flags(*groups: str, skip: tuple[str, ...] = ()) -> None:
    """Defines one flag per Config field in `groups` (less `skip`), named like the field, with its default and help."""
    flags.DEFINE_bool("debug", False, "Show full tracebacks (also on with CHARBOOK_DEBUG=1); for bug reports.")
    for f in config_lib.fields_in_groups(*groups, skip=skip):
        environment_variable = _ENVIRONMENT_DEFAULTS.get(f.name)
        default = (os.environ.get(environment_variable) if environment_variable else None) or f.default
        help_text = f.metadata["help"]
        if f.type is bool:
            flags.DEFINE_bool(f.name, default, help_text)
        elif f.type is int:
            flags.DEFINE_integer(f.name, default, help_text)
        elif f.type is float:
            flags.DEFINE_float(f.name, default, help_text)
        elif f.type is str:
            flags.DEFINE_string(f.name, default, help_text)
        else:  # --books, a tuple of ids: kept as the text given (quotes, commas and all), resolved in config_from_flags
            flags.DEFINE_string(f.name, ",".join(map(str, default)) if isinstance(default, tuple) else default, help_text)


def config_from_flags(
    *groups: str, skip: tuple[str, ...] = (), base: config_lib.Config | None = None
) -> config_lib.Config:
    """The Config that the flags of `groups` (less `skip`) describe.

    On top of `base` (an export's config), only the settings the user gave, on the command line,
    in a --flagfile or through their environment variable, replace the saved ones.
    """
    values = config_lib.Config().to_json_dict() if base is None else base.to_json_dict()
    books = None
    for f in config_lib.fields_in_groups(*groups, skip=skip):
        if base is not None and not _was_given(f.name):
            continue
        if f.type in (bool, int, float, str):
            values[f.name] = FLAGS[f.name].value
        else:  # --books: read once the settings of the catalog its queries need are known
            books = FLAGS[f.name].value
    cfg = config_lib.Config.from_json_dict(values)
    return cfg if books is None else resolve_books(books, cfg)


def catalog_source(cfg: config_lib.Config) -> catalog.CatalogSource:
    """The Gutenberg catalog of cfg's mirror, cached in its cache directory for --catalog_max_age days."""
    return catalog.CatalogSource(
        mirror=cfg.gutenberg_mirror,
        cache_dir=pathlib.Path(cfg.cache_dir) if cfg.cache_dir else sources.default_cache_dir(),
        max_age_days=cfg.catalog_max_age,
        refresh=cfg.refresh_catalog,
        download_options={"timeout": cfg.download_timeout},
    )


def resolve_books(text: str, cfg: config_lib.Config) -> config_lib.Config:
    """`cfg` with the ebook ids that --books names; queries are looked up in the catalog of cfg's mirror (pipeline/catalog.py)."""
    if not book_ids.holds_query(text):
        return dataclasses.replace(cfg, books=book_ids.parse_book_ids(text), books_query="")
    source = catalog_source(cfg)

    def fetch_available(ids):
        return sources.fetch_available_books(
            ids, mirror=cfg.gutenberg_mirror, cache_dir=source.cache_dir, workers=cfg.download_workers, timeout=cfg.download_timeout
        )

    def select_books(query):
        return catalog.choose_books(query, source, fetch_available=fetch_available if cfg.skip_missing_books else None)

    return dataclasses.replace(cfg, books=book_ids.parse_book_ids(text, select_books=select_books), books_query=text)


def _was_given(name: str) -> bool:
    environment_variable = _ENVIRONMENT_DEFAULTS.get(name)
    return FLAGS[name].present or bool(environment_variable and os.environ.get(environment_variable))


def run(main, *, start_xla_quietly: bool = True) -> None:
    """absl's app.run(main), but a UserError, an OSError or running out of memory ends in one message on stderr and exit status 2.

    When the reader of stdout stops (generate.py | head), the tool ends quietly with exit status 0.
    start_xla_quietly=False leaves TensorFlow's runtime unstarted for `main` (see _start_xla_quietly).
    """

    import_tensorflow_quietly()  # a no-op if the entry script did it already, as it should
    if start_xla_quietly:
        _start_xla_quietly()
    import tensorflow as tf

    def main_with_clean_errors(argv):
        if not _debug():
            logging.set_verbosity(logging.WARNING)  # TensorFlow logs every checkpoint save at INFO level
        try:
            result = main(argv)
            sys.stdout.flush()  # a reader that has gone (generate.py | head) is found here, not in the exit's own flush
            return result
        except BrokenPipeError as error:
            if not _stdout_reader_gone():  # a pipe or socket the tool wrote to, not its output: a real failure
                _exit_with_message(_describe_os_error(error))
            _end_quietly()
        except UserError as error:
            _exit_with_message(str(error))
        except OSError as error:  # a full disk, a read-only or missing directory: the user can fix these too
            _exit_with_message(_describe_os_error(error))
        except (MemoryError, tf.errors.ResourceExhaustedError) as error:  # a model or batch too big for this machine
            detail = (str(error).strip().splitlines() or ["no detail"])[0]
            _exit_with_message(
                f"out of memory ({detail}); lower --batch_size, --seq_len, --rnn_units or --embedding_dim "
                "(for generate.py, --num_samples)"
            )
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    app.run(main_with_clean_errors, flags_parser=_parse_flags)


def _stdout_reader_gone() -> bool:
    """Whether nothing reads stdout any more: a pipe whose reader has exited, a closed socket.

    Asked of the file itself, since a BrokenPipeError does not say which file it came from. Where
    poll() is missing (Windows) stdout is taken to be the one, as it nearly always is.
    """
    if not hasattr(select, "poll"):
        return True
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)  # POLLERR and POLLHUP are reported whatever is asked
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):  # stdout closed or replaced by an object without a file
        return False


def _end_quietly() -> None:
    """Ends with exit status 0 and nothing on stderr, as Unix tools do when their reader stops (generate.py | head).

    stdout then points at /dev/null, so that the interpreter's last flush cannot fail again.
    """
    discard_stdout()
    sys.exit(0)


def _describe_os_error(error: OSError) -> str:
    message = os_error_reason(error) + (f": {error.filename}" if error.filename else "")
    advice = _OS_ERROR_ADVICE.get(error.errno)
    return f"{message}; {advice}" if advice else message


def _exit_with_message(message: str) -> None:
    """Called while handling an exception: its traceback only with --debug, then the message, exit status 2."""
    if _debug():
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}\nRun with --help to see every setting.", file=sys.stderr)
        sys.exit(2)


def _debug() -> bool:
    return FLAGS.debug or _debug_from_environment()

