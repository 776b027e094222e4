"""Who may use the operator API and the dashboard (README: "Roles"): `WARDEN_TOKENS`, named tokens each
with a role, and `WARDEN_ADMIN_TOKEN`, the operator named `admin`. A part of `workers.settings.Settings`.

`WARDEN_TOKENS` holds `name:role:token` entries, separated by commas or one a line (as `LIVEKIT_KEYS`):
`alice:operator:<token>, grafana:viewer:<token>`. A role is `viewer` (reads the API and the dashboard)
or `operator` (also every POST and DELETE). A bad entry stops start-up naming `WARDEN_TOKENS` and the
entry's position, and never its text: a slip of the separators would put a token where a name or a role
goes. Only a digest of each token is kept past start-up; `service.api.auth` compares against it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
ADMIN = "admin"  # WARDEN_ADMIN_TOKEN's name
# A name is what an operator action records as `by` and the dashboard shows: short, and plain.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def digest(token: str | bytes) -> bytes:
    """What a token is compared as: its SHA-256 (every comparison then takes the same time, whatever
    the lengths of the token supplied and the tokens configured)."""
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


@dataclass(frozen=True)
class AccessToken:
    """A configured token: whose it is, its role and its digest (never the token itself)."""

    name: str
    role: Role
    digest: bytes = field(repr=False)


def parse_tokens(text: str) -> tuple[AccessToken, ...]:
    """`name:role:token` entries, separated by commas or newlines (empty entries skipped), in order; a
    `ValueError` naming the entry's position (1 for the first) for a bad one, quoting nothing of it."""
    entries = [chunk.strip() for chunk in re.split(r"[\n,]", text) if chunk.strip()]
    tokens: list[AccessToken] = []
    for n, entry in enumerate(entries, 1):
        name, colon, rest = entry.partition(":")
        role, colon_too, secret = rest.partition(":")
        name, role, secret = name.strip(), role.strip().lower(), secret.strip()
        where = f"entry {n}"
        if not colon or not colon_too:
            raise ValueError(f"{where} is not name:role:token (entries are separated by commas or lines)")
        if not name:
            raise ValueError(f"{where} has no name")
        if not NAME.fullmatch(name):
            raise ValueError(
                f"{where}: a name is up to 64 letters, digits, '.', '_', '-' or '@', starting with a "
                "letter or digit"
            )
        if role not in ROLES:
            raise ValueError(f"{where}: the role must be viewer or operator")
        if not secret:
            raise ValueError(f"{where} has no token")
        token = AccessToken(name, "operator" if role == "operator" else "viewer", digest(secret))
        for m, earlier in enumerate(tokens, 1):
            if earlier.name == token.name:
                raise ValueError(f"{where} has entry {m}'s name: each name must be different")
            if earlier.digest == token.digest:
                raise ValueError(f"{where} has entry {m}'s token: each token must be different")
        tokens.append(token)
    return tuple(tokens)


class TokenSettings(BaseSettings):
    warden_admin_token: SecretStr = SecretStr("")
    warden_tokens: SecretStr = SecretStr("")

    @field_validator("warden_tokens")
    @classmethod
    def _check_tokens(cls, value: SecretStr) -> SecretStr:
        parse_tokens(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _check_admin_is_apart(self) -> TokenSettings:
        admin = self.warden_admin_token.get_secret_value()
        if not admin:
            return self
        for n, token in enumerate(parse_tokens(self.warden_tokens.get_secret_value()), 1):
            if token.name == ADMIN:
                raise ValueError(
                    f"WARDEN_TOKENS: entry {n} is named {ADMIN}, the name of WARDEN_ADMIN_TOKEN's operator: "
                    "choose another name"
                )
            if token.digest == digest(admin):
                raise ValueError(
                    f"WARDEN_TOKENS: entry {n} has WARDEN_ADMIN_TOKEN's token: each token must be different"
                )
        return self

    @property
    def admin_token(self) -> str:
        return self.warden_admin_token.get_secret_value()

    @cached_property
    def access_tokens(self) -> tuple[AccessToken, ...]:
        """Every token that opens the API and the dashboard: `WARDEN_ADMIN_TOKEN` (the operator named
        admin) first, then `WARDEN_TOKENS`'; none when neither is set (then loopback only)."""
        admin = self.admin_token
        named = parse_tokens(self.warden_tokens.get_secret_value())
        return ((AccessToken(ADMIN, "operator", digest(admin)),) if admin else ()) + named
