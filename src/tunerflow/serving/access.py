"""Who may call what: API keys with roles, and the role each endpoint needs.

Keys come from a file (``TUNERFLOW_API_KEYS_FILE``) and/or the environment
(``TUNERFLOW_API_KEYS``); they are kept as SHA-256 digests and compared in
constant time. ``TUNERFLOW_AUTH=off`` turns checking off for local
development only (with a loud warning). No jina here: the gateway and the
executors both use it.

Key file formats (one of):

- lines ``<key> <role>`` (``#`` starts a comment); a key may be given as
  ``sha256:<hex digest>`` so that the file holds no secret;
- YAML or JSON: a mapping ``{key: role}`` or a list of ``{key: ..., role: ...}``
  (or ``{sha256: ..., role: ...}``).

``TUNERFLOW_API_KEYS`` holds ``key:role`` pairs separated by commas or spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import yaml

from tunerflow.errors import ConfigError, TunerflowError

log = logging.getLogger(__name__)

AUTH_ENV = "TUNERFLOW_AUTH"
KEYS_ENV = "TUNERFLOW_API_KEYS"
KEYS_FILE_ENV = "TUNERFLOW_API_KEYS_FILE"
MIN_KEY_LENGTH = 16


class Role(str, Enum):
    """What a key may do; ``write`` includes ``read``."""

    READ = "read"
    WRITE = "write"

    def allows(self, needed: Role) -> bool:
        return self is Role.WRITE or needed is Role.READ


class AuthError(TunerflowError, PermissionError):
    """No valid API key came with the request (HTTP 401, gRPC UNAUTHENTICATED)."""


class ForbiddenError(TunerflowError, PermissionError):
    """The key is valid but its role does not allow this endpoint (HTTP 403, gRPC PERMISSION_DENIED)."""


# The role each endpoint needs. Endpoints not listed need ``write`` (a new endpoint is closed until
# it is named here). Health and readiness (gRPC health, GET /, GET /dry_run) need no key at all.
ENDPOINT_ROLES: dict[str, Role] = {
    # encoder
    "/encode": Role.READ,
    "/info": Role.READ,
    "/reload": Role.WRITE,
    "/v1/embeddings": Role.READ,
    # tuner
    "/datasets/list": Role.READ,
    "/datasets/append": Role.WRITE,
    "/runs/status": Role.READ,
    "/runs/logs": Role.READ,
    "/runs/metrics": Role.READ,
    "/runs/list": Role.READ,
    "/runs/artifact": Role.READ,
    "/runs/history": Role.READ,
    "/runs/start": Role.WRITE,
    "/runs/cancel": Role.WRITE,
    "/runs/promote": Role.WRITE,
    "/runs/rollback": Role.WRITE,
    "/runs/served": Role.READ,
    "/runs/delete": Role.WRITE,
    "/runs/delete_all": Role.WRITE,
    "/experiments/list": Role.READ,
    "/experiments/get": Role.READ,
    "/experiments/create": Role.WRITE,
    "/experiments/delete": Role.WRITE,
    "/experiments/delete_all": Role.WRITE,
    "/models/list": Role.READ,
    "/models/resolve": Role.READ,
    # indexer
    "/search": Role.READ,
    "/index/list": Role.READ,
    "/index/status": Role.READ,
    "/index": Role.WRITE,
    "/update": Role.WRITE,
    "/delete": Role.WRITE,
    "/clear": Role.WRITE,
}


def required_role(endpoint: str) -> Role:
    """The role ``endpoint`` needs (``write`` for any endpoint not in :data:`ENDPOINT_ROLES`)."""
    return ENDPOINT_ROLES.get("/" + endpoint.strip("/"), Role.WRITE)


def auth_enabled() -> bool:
    """False only when ``TUNERFLOW_AUTH=off`` (local development)."""
    value = os.environ.get(AUTH_ENV, "on").strip().lower()
    if value in ("on", "", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ConfigError(f"{AUTH_ENV}={value!r}: use 'on' (the default) or 'off' (local development only)")


def warn_if_off(where: str) -> None:
    """Log a loud warning when authentication is off."""
    if not auth_enabled():
        log.warning(
            "!!! %s: AUTHENTICATION IS OFF (%s=off): anyone who reaches this port can read, write and "
            "replace the served model. Use this only for local development. !!!",
            where,
            AUTH_ENV,
        )


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRing:
    """API keys as ``(sha256 digest, role)`` pairs."""

    entries: tuple[tuple[str, Role], ...]

    @classmethod
    def from_env(cls) -> KeyRing:
        """Keys from ``TUNERFLOW_API_KEYS_FILE`` and ``TUNERFLOW_API_KEYS``."""
        entries: list[tuple[str, Role]] = []
        path = os.environ.get(KEYS_FILE_ENV)
        if path:
            entries += _parse_file(Path(path))
        for item in os.environ.get(KEYS_ENV, "").replace(",", " ").split():
            key, sep, role = item.rpartition(":")
            if not sep:
                raise ConfigError(f"{KEYS_ENV}: give each key as key:role (role read or write)")
            entries.append(_entry(key, role, KEYS_ENV))
        return cls(tuple(entries))

    def role_of(self, key: str | None) -> Role | None:
        """The role of ``key``, or None; every stored digest is compared, in constant time each."""
        if not key:
            return None
        given = digest(key)
        found = None
        for stored, role in self.entries:
            if hmac.compare_digest(given, stored) and (found is None or role is Role.WRITE):
                found = role
        return found


def _entry(key: str, role: str, where: str) -> tuple[str, Role]:
    try:
        parsed = Role(str(role).strip().lower())
    except ValueError:
        raise ConfigError(f"{where}: unknown role {role!r}; choose one of: read, write") from None
    key = str(key).strip()
    if key.startswith("sha256:"):
        hexdigest = key.removeprefix("sha256:").lower()
        if len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
            raise ConfigError(f"{where}: a sha256: key needs 64 hex digits")
        return hexdigest, parsed
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"{where}: API keys need at least {MIN_KEY_LENGTH} characters (make one: {_HOW_TO})")
    return digest(key), parsed


def _parse_file(path: Path) -> list[tuple[str, Role]]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{KEYS_FILE_ENV}: cannot read {path}: {error.strerror}") from None
    where = f"{KEYS_FILE_ENV} ({path.name})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return [_entry(key, role, where) for key, role in data.items()]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return [_entry(item.get("key") or f"sha256:{item.get('sha256', '')}", item.get("role"), where) for item in data]
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{where} line {number}: write '<key> <role>'")
        entries.append(_entry(parts[0], parts[1], f"{where} line {number}"))
    return entries


_HOW_TO = "python -m tunerflow.serving.access write"


def main(argv: list[str]) -> int:
    """``python -m tunerflow.serving.access [read|write]``: print a new key line and its hashed form."""
    role = Role(argv[0] if argv else "read")
    key = new_key()
    print(f"{key} {role.value}")
    print(f"# hashed, for the keys file: sha256:{digest(key)} {role.value}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
