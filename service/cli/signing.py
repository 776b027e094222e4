"""Webhook signatures exactly as livekit-server makes them (`warden replay`, the simulator, tests)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

from livekit.api import AccessToken


def sign(body: bytes, key: str, secret: str, *, ttl: timedelta = timedelta(minutes=5)) -> str:
    """The bare JWT livekit-server puts in Authorization: HS256, iss = key, sha256 of the body bytes."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return AccessToken(key, secret).with_ttl(ttl).with_sha256(digest).to_jwt()
