"""Admin sign-in throttling (django-axes) on the real production entry point, per address and per username.

The server trusts 127.0.0.1 as its proxy, so each test client is told apart by its
X-Forwarded-For, as nginx would pass it on. The CIRCLES_ADMIN_LOGIN_FAILURE_LIMIT-th failed
password from one address, or for one username, is answered 429, and so is every attempt after it,
even with the right password; a sign-in that is neither is unaffected.
"""

import http.client
import re
import urllib.parse
import uuid

import pytest

from tests.e2e.conftest import World
from tests.helpers.processes import manage, server_env

pytestmark = pytest.mark.e2e

PASSWORD = "throttle-test-password"
LIMIT = 3


@pytest.fixture(scope="module")
def port(start_server) -> int:
    url = start_server(
        "serve", CIRCLES_TRUSTED_PROXIES="127.0.0.1", CIRCLES_ADMIN_LOGIN_FAILURE_LIMIT=str(LIMIT)
    )
    return int(url.rsplit(":", 1)[1])


def operator(world: World) -> str:
    """A new superuser in the end-to-end database (createsuperuser, as an operator would)."""
    name = f"op{uuid.uuid4().hex[:8]}"
    env = server_env(world.database_url, DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    manage(env, "createsuperuser", "--noinput", "--username", name, "--email", f"{name}@example.org")
    return name


def sign_in(port: int, client: str, username: str, password: str) -> int:
    """GET the login form, POST the credentials from `client` (X-Forwarded-For); the POST's status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        forwarded = {"X-Forwarded-For": client}
        connection.request("GET", "/admin/login/", headers=forwarded)
        form = connection.getresponse()
        page = form.read().decode()
        cookie = form.getheader("Set-Cookie").split(";", 1)[0]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
        )
        headers = {**forwarded, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        connection.request("POST", "/admin/login/", body=body, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_one_address_is_locked_out_after_the_failure_limit(port: int, world: World) -> None:
    name = operator(world)
    attacker, other = "203.0.113.10", "203.0.113.11"
    # Wrong passwords for names that do not even exist: the address alone counts.
    assert [sign_in(port, attacker, f"nobody{n}", "wrong") for n in range(LIMIT)] == [200] * (LIMIT - 1) + [
        429
    ]
    assert sign_in(port, attacker, name, PASSWORD) == 429  # locked out, the right password or not
    assert sign_in(port, other, name, PASSWORD) == 302  # another address signs in as usual


def test_one_username_is_locked_out_whatever_the_address(port: int, world: World) -> None:
    name, bystander = operator(world), operator(world)
    guesses = [sign_in(port, f"198.51.100.{n}", name, f"guess{n}") for n in range(LIMIT)]
    assert guesses == [200] * (LIMIT - 1) + [429]  # each from its own address: the username counts
    assert sign_in(port, "198.51.100.200", name, PASSWORD) == 429
    assert sign_in(port, "198.51.100.200", bystander, PASSWORD) == 302  # that address is not locked
