"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries (installed by `make test`),
a throw-away cluster on a free loopback port, trust authentication, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so under root the cluster belongs to the
`postgres` user the Debian package creates and its commands run through runuser.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from typing import Iterator, Optional

import sqlalchemy as sa

from serving.service.database import engine_url
from tests.helpers import free_port


def server_binaries() -> Optional[str]:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(versions[-1]) if versions else None


def _run_as_server_user(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True)


@contextlib.contextmanager
def postgres_server(binaries: str) -> Iterator[str]:
    """Starts a cluster and yields the URL of its `postgres` database (user `tests`)."""
    root = tempfile.mkdtemp(prefix="deepfake-pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = os.path.join(root, "data"), free_port()
    try:
        _run_as_server_user(os.path.join(binaries, "initdb"), "-D", data, "-U", "tests", "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = os.path.join(binaries, "pg_ctl")
        _run_as_server_user(pg_ctl, "-D", data, "-o", options, "-l", os.path.join(root, "server.log"), "-w", "start")
        try:
            yield f"postgresql://tests@127.0.0.1:{port}/postgres"
        finally:
            _run_as_server_user(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server; its URL."""
    engine = sa.create_engine(engine_url(server_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name
