"""Fixtures shared by every test layer."""

import os
import time
from collections.abc import Iterator

import environ
import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers.postgres_server import PostgresServer
from tests.helpers.redis_server import RedisServer

# CI replays the same examples every run (a landing must not hinge on a new random draw);
# locally hypothesis explores fresh ones. A failure found locally becomes a named test.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the whole session (flushed by tests that need it empty)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL (the production database) for the whole session; databases are made per use."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server: PostgresServer) -> None:
    """In-process tests (pytest-django's `db`) run on the private PostgreSQL, not the SQLite default.

    pytest-django asks for this before it creates its test database (`test_circles`, made and
    dropped by Django through the server's `postgres` database).
    """
    from django.conf import settings
    from django.db import connections

    default = settings.DATABASES["default"]
    config = environ.Env.db_url_config(postgres_server.url("circles"))
    config.update(CONN_MAX_AGE=default.get("CONN_MAX_AGE", 0), CONN_HEALTH_CHECKS=True)
    default.clear()  # drops the SQLite-only OPTIONS (transaction_mode, init_command) too
    default.update(config)
    connections.configure_settings(settings.DATABASES)
    if any(connection.alias == "default" for connection in connections.all(initialized_only=True)):
        del connections["default"]  # made before the switch (none usually): the next use reconnects


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, postgres_server: PostgresServer) -> Iterator[None]:
    """pytest-django's test database, and at its end no connection left open by a worker thread.

    Threads of the code under test keep their connections (CONN_MAX_AGE); PostgreSQL refuses to
    drop a database that still has sessions, so they are ended before Django drops it.
    """
    yield
    from django.db import connections

    name = connections["default"].settings_dict["NAME"]  # the test database by now
    with psycopg.connect(postgres_server.url(), autocommit=True) as connection:
        others = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        connection.execute(f"SELECT pg_terminate_backend(pid) {others}", (name,))
        deadline = time.monotonic() + 10
        while connection.execute(f"SELECT count(*) {others}", (name,)).fetchone()[0]:
            if time.monotonic() > deadline:
                break  # Django's drop then says which sessions are left
            time.sleep(0.05)
