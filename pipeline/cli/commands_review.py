"""`review RUN`: write the review page of a sample of a run's candidates and serve it on 127.0.0.1,
each verdict appended to RUN/review/verdicts.jsonl; `review import RUN FILE`: merge a verdicts
file (the page's download, another reviewer's) after checking every line of it. RUN is local or
on a store by URI: there the page is drawn and served from a local temporary folder, put on the
store, and each verdict puts the whole verdicts file on the store (a store cannot append)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from pipeline.cli.common import RUN_FAILED, USAGE_ERROR
from pipeline.cli.run_io import add_io_set
from pipeline.core.run_dir import RunDir
from pipeline.core.task_names import UnknownTaskError, parse_tasks


class _Paths(argparse.Action):
    """`RUN` or `import RUN FILE`: argparse cannot give one command both shapes, so this splits them."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] == "import":
            if len(values) != 3:
                parser.error("review import takes RUN FILE")
            namespace.run_dir, namespace.import_file = values[1], values[2]
        elif len(values) != 1:
            parser.error("review takes one RUN (or: review import RUN FILE)")
        else:
            namespace.run_dir, namespace.import_file = values[0], None


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535")
    return value


def add_parser(sub) -> None:
    rv = sub.add_parser(
        "review", help="people review a sample of a run's candidates in a browser (keep/reject, score, note)",
        usage="python -m pipeline review RUN [--sample N] [--task T] [--seed S] [--port P] [--no-serve] [--set io.KEY=VALUE]\n"
              "       python -m pipeline review import RUN FILE [--set io.KEY=VALUE]",
        description="Write RUN/review/index.html for a sample of candidates and serve it on 127.0.0.1; each verdict is "
                    "appended to RUN/review/verdicts.jsonl (RUN local or on a store by URI). `review import RUN FILE` merges a downloaded verdicts file.",
    )
    rv.add_argument("paths", nargs="+", action=_Paths, metavar="RUN", help="the run folder (or: import RUN FILE)")
    rv.add_argument("--sample", type=_count, default=60, help="rows to review, spread over tasks and ok/rejected (default 60)")
    rv.add_argument("--task", help="only these tasks (a task, alias or comma list)")
    rv.add_argument("--seed", type=int, default=0, help="which rows the sample draws (default 0)")
    rv.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: a free one)")
    rv.add_argument("--no-serve", action="store_true", help="only write the page; opened as a file it keeps verdicts for download")
    add_io_set(rv)


def cmd_review(args) -> int:
    from pipeline.postrun.verdicts import VerdictError

    run = RunDir(args.run_dir)  # main gives a RunDir that carries the --set io.* settings
    try:
        if args.import_file is not None:
            return _import(run, Path(args.import_file))
        return _review(run, args)
    except VerdictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return RUN_FAILED if args.import_file is not None else USAGE_ERROR


def _import(run: RunDir, source: Path) -> int:
    from pipeline.postrun.verdicts import import_verdicts, verdicts_file

    if not source.is_file():
        print(f"error: {source}: no such verdicts file", file=sys.stderr)
        return RUN_FAILED
    result = import_verdicts(run, source)
    print(f"{source}: {result.new} new, {result.changed} changed, {result.unchanged} unchanged verdicts -> {verdicts_file(run)}")
    return 0


def _review(run: RunDir, args) -> int:
    # a run on a store: page and working verdicts file in a local folder, gone at exit (the store keeps both)
    with (tempfile.TemporaryDirectory(prefix="review-") if run.store.remote else contextlib.nullcontext()) as folder:
        return _write_and_serve(run, args, Path(folder) if folder else None)


def _write_and_serve(run: RunDir, args, folder: Path | None) -> int:
    from pipeline.postrun.review_page import ReviewError, write_review_page
    from pipeline.postrun.review_server import ReviewServer
    from pipeline.postrun.verdicts import verdicts_file

    try:
        tasks = parse_tasks(args.task) if args.task else None
        index, cards = write_review_page(run, args.sample, args.seed, tasks, folder)
    except (UnknownTaskError, ReviewError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(f"{index}: {cards} cards")
    if args.no_serve:
        return 0
    try:
        server = ReviewServer(run, args.port, folder)
    except OSError as exc:
        print(f"error: cannot serve on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR
    print(f"review at {server.url} (verdicts go to {verdicts_file(run)}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
