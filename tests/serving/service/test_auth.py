"""API keys on real SQLite and PostgreSQL: only salted digests are stored, every kind of wrong key costs the same
work and is refused, revocation reaches every store on the database at once; the history and jobs of one
principal stay theirs; the service's default authentication follows where it listens."""

import hmac
import statistics
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from serving.service import auth, database, history
from serving.service.flags import parse_args
from serving.service.settings import auth_mode


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.sqlite"
    return request.getfixturevalue("postgres")(f"auth_{tmp_path.name.lower()}")


def who(principal):
    """(name, admin) of a verified key's principal."""
    return principal.name, principal.admin


def test_keys_are_stored_only_as_salted_digests_and_verify_to_their_principal(database_url):
    store = auth.KeyStore.open(database_url)
    alice, admin = store.create("alice"), store.create("root", admin=True)
    again = store.create("alice")
    assert alice != again and alice.startswith("dfk_")
    assert who(store.verify(alice)) == ("alice", False) == who(store.verify(again))
    assert store.verify(alice).principal_id == store.verify(again).principal_id, "rotation keeps the principal"
    assert who(store.verify(admin)) == ("root", True)
    with store._engine.connect() as connection:
        rows = list(connection.execute(sa.select(history.API_KEYS)))
    stored = repr([tuple(row) for row in rows])
    for key in (alice, admin, again):
        _, secret = auth.split_key(key)
        assert secret not in stored and key not in stored
    assert len({row.salt for row in rows}) == 3, "each key has its own salt"
    assert [(k.name, k.admin) for k in store.list()] == [("alice", False), ("root", True), ("alice", False)]
    assert who(store.verify(store.create("ops_team.1@example.com"))) == ("ops_team.1@example.com", False)
    for bad in ("alice smith", "", "-alice", "a" * 65):
        with pytest.raises(ValueError):
            store.create(bad)
    store.close()


def test_a_revoked_key_stops_working_at_once_for_every_store_on_the_database(database_url):
    """Two stores on one database stand for two replicas: neither caches a key."""
    first, second = auth.KeyStore.open(database_url), auth.KeyStore.open(database_url)
    alice, bob = first.create("alice"), first.create("bob")
    assert second.verify(alice) and second.verify(bob)
    rotated = first.create("alice")
    assert second.revoke("alice", key_id=auth.split_key(rotated)[0]) == 1
    assert first.verify(rotated) is None and who(first.verify(alice)) == ("alice", False)
    assert second.revoke("alice") == 1
    assert first.verify(alice) is None and second.verify(alice) is None
    assert who(first.verify(bob)) == ("bob", False)
    assert second.revoke("alice") == 0
    assert [k.revoked_at is not None for k in first.list()] == [True, False, True]
    first.close()
    second.close()


def test_a_name_reused_after_revocation_is_a_new_principal_with_an_empty_history(database_url):
    store = auth.KeyStore.open(database_url)
    first = store.verify(store.create("alice"))
    rotated = store.verify(store.create("alice"))
    assert rotated.principal_id == first.principal_id and rotated.key_id != first.key_id
    store.revoke("alice")
    reused = store.verify(store.create("alice"))
    assert reused.principal_id != first.principal_id and reused.principal_id != "alice"
    checks = history.History(database_url)
    checks.record(history.Check("secret.jpg", "image/jpeg", 1, "0" * 64, principal=first.principal_id))
    assert checks.page(10, 0, first.principal_id)[1] == 1
    assert checks.page(10, 0, reused.principal_id) == ([], 0)
    checks.close()
    store.close()


def test_keys_made_before_principal_ids_keep_their_history(tmp_path):
    """A database at revision 0003 recorded checks under names: after the migration its keys still own them."""
    url = f"sqlite:///{tmp_path}/history.sqlite"
    engine = database.create_engine(url)
    database.migrate(engine, "0003")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, name, salt, digest, admin, created_at) "
                "VALUES ('0123456789abcdef', 'carol', :salt, :digest, 0, '2026-01-01 00:00:00')"
            ),
            {"salt": bytes(32), "digest": bytes(32)},
        )
    database.migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.select(history.API_KEYS.c.principal_id)).scalar_one() == "carol"
    engine.dispose()


def wrong_keys(good: str, revoked: str) -> dict:
    key_id, secret = auth.split_key(good)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    return {
        "missing": "",
        "malformed": "not-a-key",
        "unknown id": f"dfk_{'0' * 16}_{secret}",
        "wrong secret": f"dfk_{key_id}_{flipped}",
        "revoked": revoked,
    }


def test_every_wrong_key_does_one_lookup_and_one_constant_time_comparison(database_url, monkeypatch):
    store = auth.KeyStore.open(database_url)
    good, revoked = store.create("alice"), store.create("mallory")
    store.revoke("mallory")
    comparisons, lookups = [], []
    real_compare = hmac.compare_digest

    def compare(a, b):
        comparisons.append((len(a), len(b)))
        return real_compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    sa.event.listen(store._engine, "before_cursor_execute", lambda *args: lookups.append(args[2]))
    for kind, key in wrong_keys(good, revoked).items():
        comparisons.clear()
        lookups.clear()
        assert store.verify(key) is None, kind
        assert comparisons == [(32, 32)], kind
        assert len(lookups) == 1 and "api_keys" in lookups[0], kind
    store.close()


def test_unknown_ids_and_wrong_secrets_take_the_same_time_and_verification_is_fast(tmp_path):
    store = auth.KeyStore.open(f"sqlite:///{tmp_path}/history.sqlite")
    good = store.create("alice")
    for name in range(50):
        store.create(f"user{name}")
    keys = wrong_keys(good, store.create("other"))
    timings = {"unknown id": [], "wrong secret": [], "good": []}
    for _ in range(300):
        for kind in timings:
            started = time.perf_counter()
            store.verify(good if kind == "good" else keys[kind])
            timings[kind].append(time.perf_counter() - started)
    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    assert medians["good"] < 0.005, medians
    assert 0.5 < medians["unknown id"] / medians["wrong secret"] < 2.0, medians
    store.close()


def test_bearer_keys_are_read_from_the_authorization_header_only():
    assert auth.bearer_key("Bearer dfk_x") == "dfk_x"
    assert auth.bearer_key("bearer  dfk_x ") == "dfk_x"
    assert auth.bearer_key("Basic dfk_x") == ""
    assert auth.bearer_key(None) == ""


def test_each_principal_reads_only_its_own_checks_and_jobs(database_url):
    store = history.History(database_url)
    for owner in ("alice", "bob", "alice"):
        store.record(history.Check(f"{owner}.mp4", "video/mp4", 1, "0" * 64, "real", 0.1, principal=owner))
    items, total = store.page(10, 0, "alice")
    assert total == 2 and {item["principal"] for item in items} == {"alice"}
    assert store.page(10, 0, "carol") == ([], 0)
    assert store.page(10, 0)[1] == 3, "no owner: everyone's (an admin, or a service without keys)"
    store.save_job({"job_id": "j1", "state": "queued"}, principal="alice")
    store.save_job({"job_id": "j1", "state": "done"})
    assert store.job("j1", "alice") == {"job_id": "j1", "state": "done"}, "an update keeps the owner"
    assert store.job("j1", "bob") is None and store.job("j1")["state"] == "done"
    store.close()


@pytest.mark.parametrize(
    "host, requested, allowed, expected",
    [
        ("127.0.0.1", None, False, "none"),
        ("localhost", None, False, "none"),
        ("::1", None, False, "none"),
        ("0.0.0.0", None, False, "keys"),
        ("10.1.2.3", "keys", False, "keys"),
        ("127.0.0.1", "keys", False, "keys"),
        ("0.0.0.0", "none", True, "none"),
    ],
)
def test_authentication_defaults_to_keys_beyond_loopback(host, requested, allowed, expected):
    assert auth_mode(host, requested, allowed) == expected


def test_the_service_refuses_to_serve_everyone_without_keys_unless_told_twice(capsys):
    with pytest.raises(SystemExit) as refused:
        parse_args(["--host", "0.0.0.0", "--auth", "none"])
    assert refused.value.code == 2 and "--allow-unauthenticated-remote" in capsys.readouterr().err
    assert parse_args(["--host", "0.0.0.0"]).auth == "keys"
    assert parse_args([]).auth == "none"


def test_keys_command_prints_the_key_once_on_its_last_line_and_lists_no_secret(tmp_path):
    url = f"sqlite:///{tmp_path}/not/yet/history.sqlite"

    def keys(*arguments):
        return subprocess.run(
            [sys.executable, "-m", "pipeline_runner", "keys", *arguments, "--history-url", url],
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = keys("create", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    store = auth.KeyStore.open(url)
    assert who(store.verify(key)) == ("alice", False)
    listed = keys("list")
    assert "alice" in listed.stdout and auth.split_key(key)[1] not in listed.stdout
    assert keys("revoke", "alice").returncode == 0
    assert store.verify(key) is None
    assert keys("revoke", "alice").returncode == 1
    store.close()
