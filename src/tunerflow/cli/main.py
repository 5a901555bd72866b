"""Argument parsing and the small commands; the demo lives in :mod:`tunerflow.cli.demo`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from tunerflow.cli.search_commands import COMMANDS as SEARCH_COMMANDS
from tunerflow.cli.search_commands import add_parsers as add_search_parsers
from tunerflow.errors import TunerflowError
from tunerflow.options import Backend, Precision


def _host(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", help="the Flow, e.g. grpc://127.0.0.1:54321 (default: $TUNERFLOW_HOST, else config.yml client.host)"
    )


def _run_option_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--option-name`` flag per declared run option (the data options are the arguments above)."""
    from tunerflow.training.recipe import Recipe

    group = parser.add_argument_group("run options", "each defaults to config.yml's recipe section")
    for option in Recipe.options():
        if option.dataset:
            continue
        flag = {"dest": option.name, "default": None, "help": option.describe().replace("%", "%%")}
        if option.kind is bool:
            flag["action"] = argparse.BooleanOptionalAction
        elif option.choices:
            flag["choices"] = option.choices
        else:
            flag["type"] = _FLAG_TYPES.get(option.kind, str)
            flag["metavar"] = option.kind.__name__.upper()
        group.add_argument("--" + option.name.replace("_", "-"), **flag)


def _mapping(text: str) -> dict:
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"want a YAML mapping such as '{{margin: 0.1}}', got {text!r}")
    return value


_FLAG_TYPES = {int: int, float: float, dict: _mapping}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunerflow", description="Fine-tune and serve text embedding models with Jina, on your own hardware."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="train-then-serve on bundled Quora data, before/after side by side")
    demo.add_argument(
        "--data",
        choices=["banking77", "quora"],
        default=None,
        help="bundled data set (default banking77: room to learn)",
    )
    demo.add_argument("--full", action="store_true", help="all training texts (Quora: 117,001, for a GPU)")
    demo.add_argument("--model", default=None, help="model to fine-tune (default: config.yml's, the bundled one)")
    demo.add_argument(
        "--train-docs",
        type=int,
        default=None,
        help="training texts, whole clusters (default: banking77 all 8,005, quora 6400)",
    )
    demo.add_argument("--eval-queries", type=int, default=None, help="dev queries evaluated (default: all 5,000)")
    demo.add_argument(
        "--epochs", type=int, default=None, help="default: 1, with --full the run's own (config.yml's, or data-aware)"
    )
    demo.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: config.yml's)")
    demo.add_argument("--precision", default=None, choices=[p.value for p in Precision], help="default: config.yml's")
    demo.add_argument("--home", type=Path, default=Path("workspace/demo"), help="where the demo keeps its state")
    demo.add_argument("--grpc-port", type=int, default=0, help="default: a free port")
    demo.add_argument("--http-port", type=int, default=0, help="default: a free port")
    demo.add_argument("--keep-serving", action="store_true", help="leave the Flow running at the end")

    fit = commands.add_parser("fit", help="stream data files to a running Flow and start a run")
    fit.add_argument("train", help="training data: CSV (text,label) or JSONL (text, label), or a stored dataset")
    fit.add_argument("--query", help="evaluation queries (same formats)")
    fit.add_argument("--index", help="evaluation index (default: the queries are their own index)")
    fit.add_argument(
        "--pairs", action="store_true", help="the CSV files hold query,document pairs (default: text,label rows)"
    )
    _run_option_flags(fit)
    fit.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other run option (YAML value)"
    )
    fit.add_argument("--follow", action="store_true", help="print the run's log until it ends")
    _host(fit)

    for name, text in (("status", "a run's status"), ("metrics", "a run's metrics"), ("cancel", "cancel a run")):
        command = commands.add_parser(name, help=text)
        command.add_argument("run")
        _host(command)
    logs = commands.add_parser("logs", help="a run's log")
    logs.add_argument("run")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    _host(logs)
    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--experiment", help="only this experiment's runs")
    runs.add_argument("--page", type=int, default=1, help="page of --size runs (default 1)")
    runs.add_argument("--size", type=int, default=50, help="runs per page, at most 100 (default 50)")
    _host(runs)
    delete = commands.add_parser("delete", help="delete an ended run with its log, checkpoints and artifact")
    delete.add_argument("run")
    _host(delete)
    models = commands.add_parser("models", help="the models that can be fine-tuned: name, architecture, dim, size")
    models.add_argument("--host", help="ask this Flow's tuner (default: the catalogue of this machine)")
    promote = commands.add_parser("promote", help="serve a finished run's artifact now")
    promote.add_argument("run")
    _host(promote)
    for name, text in (
        ("rollback", "serve the artifact served before the current one again"),
        ("served", "the served artifact and the history of served artifacts"),
    ):
        _host(commands.add_parser(name, help=text))
    download = commands.add_parser("download", help="save a finished run's artifact as <dir>/<run>.zip")
    download.add_argument("run")
    download.add_argument("directory", nargs="?", default=".")
    _host(download)

    encode = commands.add_parser("encode", help="embed texts locally, or with a served encoder (--host)")
    encode.add_argument("texts", nargs="*", help="texts (or --file)")
    encode.add_argument("--file", type=Path, help="one text per line")
    encode.add_argument("--model", default="all-MiniLM-L6-v2", help="name, directory, artifact or .zip")
    encode.add_argument("--backend", default="torch", help=", ".join(backend.value for backend in Backend))
    encode.add_argument("--output", type=Path, help="write the embeddings to a .npy file")
    _host(encode)
    add_search_parsers(commands, _host)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return COMMANDS[args.command](args)
    except TunerflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_demo(args) -> int:
    from tunerflow.cli.demo import run_demo

    return run_demo(args)


def cmd_fit(args) -> int:
    from tunerflow.client import EvaluationCallback, fit
    from tunerflow.data import CSVOptions
    from tunerflow.training.recipe import Recipe

    options: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    options.update(
        {
            option.name: getattr(args, option.name)
            for option in Recipe.options()
            if getattr(args, option.name, None) is not None
        }
    )
    evaluation = {key: options.pop(f"eval_{key}", None) for key in ("limit", "batch_size", "exclude_self", "distance")}
    callbacks = [EvaluationCallback(args.query, args.index, **evaluation)] if args.query else []
    run = fit(
        options.pop("model", None),
        args.train,
        callbacks=callbacks,
        csv_options=CSVOptions(is_labeled=not args.pairs),
        host=args.host,
        **options,
    )
    print(f"started run {run.name} ({run.status()['status']})")
    if args.follow:
        for line in run.stream_logs():
            print(line, flush=True)
        print(f"run {run.name}: {run.status()['status']}")
    return 0


def cmd_status(args) -> int:
    from tunerflow.client import get_run

    _print(get_run(args.run, host=args.host).record())
    return 0


def cmd_metrics(args) -> int:
    from tunerflow.cli.tables import metrics_table
    from tunerflow.client import get_run

    metrics = get_run(args.run, host=args.host).metrics()
    print(metrics_table(metrics) if metrics.get("before") and metrics.get("after") else json.dumps(metrics, indent=2))
    return 0


def cmd_cancel(args) -> int:
    from tunerflow.client import get_run

    _print(get_run(args.run, host=args.host).cancel())
    return 0


def cmd_logs(args) -> int:
    from tunerflow.client import get_run

    run = get_run(args.run, host=args.host)
    if args.follow:
        for line in run.stream_logs():
            print(line, flush=True)
    else:
        print(run.logs(), end="")
    return 0


def cmd_runs(args) -> int:
    from tunerflow.client import list_runs

    for run in list_runs(args.experiment, args.page, args.size, host=args.host):
        summary = run.summary
        print(
            f"{run.name:40} {summary['experiment_name']:20} {summary['status']:10} {summary['created_at']}  "
            f"{summary['details']}"
        )
    return 0


def cmd_delete(args) -> int:
    from tunerflow.client import delete_run

    delete_run(args.run, host=args.host)
    print(f"deleted run {args.run}")
    return 0


def cmd_models(args) -> int:
    from tunerflow.client import describe_models

    describe_models(host=args.host)
    return 0


def cmd_promote(args) -> int:
    from tunerflow.client import promote

    _print(promote(args.run, args.host))
    return 0


def cmd_rollback(args) -> int:
    from tunerflow.client import rollback

    _print(rollback(args.host))
    return 0


def cmd_served(args) -> int:
    from tunerflow.client import served

    _print(served(args.host))
    return 0


def cmd_download(args) -> int:
    from tunerflow.client import get_run

    print(get_run(args.run, host=args.host).save_artifact(args.directory))
    return 0


def cmd_encode(args) -> int:
    import numpy as np

    texts = list(args.texts)
    if args.file:
        texts += [line for line in args.file.read_text().splitlines() if line.strip()]
    if not texts:
        raise SystemExit("give texts or --file")
    if args.host:
        from tunerflow.client.remote_encode import remote_encode

        embeddings = remote_encode(texts, args.host)
    else:
        from tunerflow.api import encode, get_model

        embeddings = encode(get_model(args.model, backend=args.backend), texts)
    if args.output:
        np.save(args.output, embeddings)
        print(f"wrote {embeddings.shape} to {args.output}")
    else:
        for text, row in zip(texts, embeddings, strict=True):
            print(f"{text[:40]!r:44} [{', '.join(f'{v:.4f}' for v in row[:4])}, ...] dim {len(row)}")
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "fit": cmd_fit,
    "status": cmd_status,
    "metrics": cmd_metrics,
    "cancel": cmd_cancel,
    "logs": cmd_logs,
    "runs": cmd_runs,
    "delete": cmd_delete,
    "models": cmd_models,
    "download": cmd_download,
    "promote": cmd_promote,
    "rollback": cmd_rollback,
    "served": cmd_served,
    "encode": cmd_encode,
    **SEARCH_COMMANDS,
}
