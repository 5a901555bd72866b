"""How a CSV is read: the reference tool's ``CSVOptions``, with the same fields and defaults.

``is_labeled`` decides what the two columns are: ``text,label`` (True) or a query and a
matching document (False, the reference tool's default: pairs). The fields for image and
mesh URIs (``convert_to_blob``, ``create_point_clouds``, ``point_cloud_size``) are accepted
at their defaults only: tunerflow trains text models, so other values are refused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Union

from tunerflow.errors import ConfigError

_MEDIA_DEFAULTS = {"convert_to_blob": True, "create_point_clouds": True, "point_cloud_size": 2048}


@dataclass
class CSVOptions:
    """Options for reading training and evaluation CSV files.

    Args:
        size: read at most this many rows (after sampling); None: all.
        sampling_rate: keep each row with this probability (a fixed seed, so the same rows every time); None: all.
        dialect: ``auto`` (sniffed from the file's start), a name of :func:`csv.list_dialects`, or a
            :class:`csv.Dialect`.
        encoding: the file's text encoding.
        is_labeled: True: ``text,label`` rows; False: ``query,document`` pairs, each pair its own label
            (a text seen before joins the label it has).
        convert_to_blob, create_point_clouds, point_cloud_size: image and mesh options of the reference
            tool; only their defaults are accepted.
    """

    size: int | None = None
    sampling_rate: float | None = None
    dialect: Union[str, type[csv.Dialect], csv.Dialect] = "auto"
    encoding: str = "utf-8"
    is_labeled: bool = False
    convert_to_blob: bool = True
    create_point_clouds: bool = True
    point_cloud_size: int = 2048

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ConfigError naming a field whose value cannot be used."""
        for name, default in _MEDIA_DEFAULTS.items():
            if getattr(self, name) != default:
                raise ConfigError(
                    f"CSVOptions.{name} concerns image and mesh URIs; tunerflow trains text models: "
                    f"leave it at {default!r}"
                )
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ConfigError(f"CSVOptions.size must be a whole number of rows >= 1 or None, got {self.size!r}")
        rate = self.sampling_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1):
            raise ConfigError(f"CSVOptions.sampling_rate must be between 0 and 1 or None, got {rate!r}")
        if not isinstance(self.is_labeled, bool):
            raise ConfigError(f"CSVOptions.is_labeled must be true or false, got {self.is_labeled!r}")
        if isinstance(self.dialect, str) and self.dialect != "auto" and self.dialect not in csv.list_dialects():
            raise ConfigError(
                f"unknown CSV dialect {self.dialect!r}; choose auto or one of: {', '.join(csv.list_dialects())}"
            )
        try:
            "".encode(self.encoding)
        except (LookupError, TypeError):
            raise ConfigError(f"unknown CSVOptions.encoding {self.encoding!r}") from None
