"""`WARDEN_TOKENS` (issue 28's named roles): `name:role:token` entries, separated by commas or lines, read
in order with `WARDEN_ADMIN_TOKEN` as the operator named admin; a bad entry stops start-up naming the
variable and the entry's position, and never shows what was written (a token may be anywhere in it)."""

from __future__ import annotations

import pytest

from tests.support.settings import make_settings
from workers.core.errors import SettingsError
from workers.settings_tokens import digest, parse_tokens

SECRET = "Zq8-secret-R2"


def test_entries_by_comma_or_line_each_a_name_a_role_and_a_token() -> None:
    tokens = parse_tokens(f"alice:operator:{SECRET},grafana:viewer:g-1\n\n  bob : Viewer : b:with:colons ,")
    assert [(t.name, t.role) for t in tokens] == [
        ("alice", "operator"),
        ("grafana", "viewer"),
        ("bob", "viewer"),
    ]
    assert [t.digest for t in tokens] == [digest(SECRET), digest("g-1"), digest("b:with:colons")]
    assert SECRET not in repr(tokens)


def test_the_admin_token_is_the_operator_named_admin_first() -> None:
    settings = make_settings(warden_admin_token="Adm-8yT", warden_tokens=f"v:viewer:{SECRET}")
    assert [(t.name, t.role) for t in settings.access_tokens] == [("admin", "operator"), ("v", "viewer")]
    assert make_settings().access_tokens == ()
    shown = repr(settings) + str(settings) + repr(settings.access_tokens)
    assert SECRET not in shown and "Adm-8yT" not in shown


@pytest.mark.parametrize(
    ("tokens", "admin", "message"),
    [
        (f"alice:{SECRET}", "", "entry 1 is not name:role:token"),
        (SECRET, "", "entry 1 is not name:role:token"),
        (f"a:viewer:x, :operator:{SECRET}", "", "entry 2 has no name"),
        (f"a:viewer:x\nb:admin:{SECRET}", "", "entry 2: the role must be viewer or operator"),
        (f"{SECRET}:operator:", "", "entry 1 has no token"),
        (f"al ice:viewer:{SECRET}", "", "entry 1: a name is up to 64 letters"),
        (f"<b>:viewer:{SECRET}", "", "entry 1: a name is up to 64 letters"),
        (f"a:viewer:x,b:viewer:y,a:operator:{SECRET}", "", "entry 3 has entry 1's name"),
        (f"a:viewer:{SECRET},b:operator:{SECRET}", "", "entry 2 has entry 1's token"),
        (
            f"b:viewer:x,admin:viewer:{SECRET}",
            "adm",
            "entry 2 is named admin, the name of WARDEN_ADMIN_TOKEN's",
        ),
        (f"b:viewer:x,c:operator:{SECRET}", SECRET, "entry 2 has WARDEN_ADMIN_TOKEN's token"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_the_variable_and_the_position_only(
    tokens: str, admin: str, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        make_settings(warden_tokens=tokens, warden_admin_token=admin)
    assert str(refused.value).startswith(f"WARDEN_TOKENS: {message}")
    assert SECRET not in str(refused.value) and "alice" not in str(refused.value)


def test_a_name_admin_is_anyones_without_the_admin_token() -> None:
    settings = make_settings(warden_tokens="admin:viewer:x")
    assert [(t.name, t.role) for t in settings.access_tokens] == [("admin", "viewer")]
