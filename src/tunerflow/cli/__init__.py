"""The ``tunerflow`` command line: demo, fit, status, logs, metrics, runs, cancel, download, encode."""

from tunerflow.cli.main import main

__all__ = ["main"]
