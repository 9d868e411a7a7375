"""Write an exported model as a static web page that generates text in the browser, off the page's thread.

    python export_web.py --export_dir=exports/demo --out=site
    python -m http.server -d site        # then open http://localhost:8000; or copy site/ to any static host
    python export_web.py --export_dir=exports/demo --out=site --web_weights=int8 --temperature=0.6

The page's default settings are the export's, or the generate flags given here.
"""

import cli

cli.import_tensorflow_quietly()  # before the imports below start TensorFlow, with its C++ chatter

import export
import web_export
from errors import UserError

SKIPPED = ("num_samples", "stop_at", "allow_unknown")  # settings the page has no box for
cli.define_config_flags("run", "generate", "web", skip=SKIPPED)


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])!r}; settings are flags such as --out=site")
    exported = export.load_export(cli.FLAGS.export_dir)
    cfg = cli.config_from_flags("run", "generate", "web", skip=SKIPPED, base=exported.config)
    out = web_export.write_site(exported, cfg.out, config=cfg, weights_dtype=cfg.web_weights)
    print(f"wrote the web page to {out}; try it with: python -m http.server -d {out} (then open http://localhost:8000)")


if __name__ == "__main__":
    cli.run(main)
