"""``tunerflow index``, ``tunerflow search`` and ``tunerflow index-status``: the served indexer from a terminal."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

TEXT_WIDTH = 70


def add_parsers(commands, host: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the search subcommands to ``commands`` (``host`` adds the shared ``--host`` flag)."""
    index = commands.add_parser("index", help="store texts of a CSV (text,label) or JSONL file in the served index")
    index.add_argument("file", type=Path, help="CSV (text,label, no header) or JSONL (text, label)")
    index.add_argument("--update", action="store_true", help="replace documents whose id is stored already")
    host(index)
    search = commands.add_parser("search", help="the best matches of texts in the served index")
    search.add_argument("texts", nargs="+", help="query texts")
    search.add_argument("--limit", type=int, default=None, help="matches per query (default 10)")
    search.add_argument(
        "--filter", action="append", default=[], metavar="FIELD=VALUE", help="label=X or tags.KEY=X (repeatable)"
    )
    host(search)
    status = commands.add_parser("index-status", help="the served index: count, model, rebuild progress")
    host(status)


def parse_filter(items: Sequence[str]) -> dict | None:
    """``["label=3", "tags.lang=en"]`` as ``{"label": "3", "tags": {"lang": "en"}}``; None when empty."""
    where: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--filter wants FIELD=VALUE (label=X or tags.KEY=X), got {item!r}")
        key = key.strip()
        if key.startswith("tags."):  # tag values as YAML: tags.year=2020 matches the number 2020
            where.setdefault("tags", {})[key[len("tags.") :]] = yaml.safe_load(value)
        else:
            where[key] = value
    return where or None


def matches_table(query: str, matches) -> str:
    """One query's matches as rank, score, text and label (text ``-`` when the protocol gave ids only)."""
    lines = [f'Q: "{query}"', f"{'rank':>4}  {'score':>7}  {'text':<{TEXT_WIDTH}}  label", "-" * (TEXT_WIDTH + 24)]
    for rank, match in enumerate(matches, start=1):
        text = match.text if match.text is not None else f"- (id {match.id})"
        if len(text) > TEXT_WIDTH:
            text = text[: TEXT_WIDTH - 3] + "..."
        lines.append(f"{rank:>4}  {match.score:>7.4f}  {text:<{TEXT_WIDTH}}  {match.label or ''}")
    return "\n".join(lines)


def cmd_index(args) -> int:
    from tunerflow.client.search import index

    answer = index(args.file, host=args.host, update=args.update)
    done = answer.get("updated", answer.get("indexed"))
    what = "updated" if args.update else "indexed"
    print(f"{what} {done} documents; the index holds {answer['count']} ({answer['model']})")
    return 0


def cmd_search(args) -> int:
    from tunerflow.client.search import search

    answers = search(args.texts, limit=args.limit, filter=parse_filter(args.filter), host=args.host)
    print("\n\n".join(matches_table(text, matches) for text, matches in zip(args.texts, answers, strict=True)))
    return 0


def cmd_index_status(args) -> int:
    from tunerflow.client.search import search_status

    print(json.dumps(search_status(args.host), indent=2, default=str))
    return 0


COMMANDS = {"index": cmd_index, "search": cmd_search, "index-status": cmd_index_status}
