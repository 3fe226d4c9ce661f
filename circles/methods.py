"""The RPC methods of a circle endpoint, registered with their param schemas.

Result shapes and error codes follow the original server's OpenRPC document (design doc,
section 3); what we add comes as extra fields, never as a changed shape.
"""

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from auth_secp import InvalidAddress, InvalidCredentials, InvalidPublicKey
from circles import jsonrpc
from circles.jsonrpc import RpcError
from circles.lookups import role_in_circle, standing_in_circle
from circles.metrics import SIGN_IN_FAILED
from circles.nonce_store import NonceStoreUnavailable
from circles.registry import Handler, Method, MethodRegistry, Param
from circles.roles import may_play
from circles.session import CircleSession
from circles.ticket_sign_in import finish_sign_in, redeem_sent_nonce

PROTOCOL_VERSION = "0.2.0"

registry = MethodRegistry()

_PUBKEY = Param(
    "pubkey",
    "string",
    "secp256k1 public key in hex (compressed or uncompressed, 0x optional), or an Ethereum address",
    max_length=200,
)


H = TypeVar("H", bound=Handler)


def rpc_method(name: str, summary: str, **options: Any) -> Callable[[H], H]:
    """Register the decorated coroutine `handler(session, **params)` as RPC method `name`."""

    def register(handler: H) -> H:
        registry.add(Method(name=name, handler=handler, summary=summary, **options))
        return handler

    return register


@rpc_method(
    "fetch_nonce",
    "Issue a sign-in challenge for a key; returns the exact text to sign (EIP-191 personal_sign).",
    params=(_PUBKEY,),
    result={"type": "string"},
    errors=(jsonrpc.INVALID_PARAMS,),
    inline=True,
)
async def fetch_nonce(session: CircleSession, pubkey: str) -> str:
    try:
        challenge = session.challenges.issue(pubkey)
    except (InvalidPublicKey, InvalidAddress) as exc:
        raise RpcError(
            jsonrpc.INVALID_PARAMS,
            data={"field": "pubkey", "reason": str(exc)},
            detail="pubkey is not a secp256k1 public key or Ethereum address",
        ) from exc
    return challenge.text


@rpc_method(
    "authenticate",
    "Sign in with the signature of the text fetch_nonce returned.",
    params=(
        _PUBKEY,
        Param("signature", "string", "hex signature: 65 bytes r||s||v or 64 bytes r||s", max_length=200),
        Param(
            "nonce",
            "string",
            "a nonce from GET /auth/nonce (its text or its 32 hex digits); omitted: fetch_nonce's",
            required=False,
            max_length=2000,
        ),
    ),
    result={"type": "boolean"},
    errors=(jsonrpc.INVALID_PARAMS, jsonrpc.INVALID_CREDENTIALS, jsonrpc.RATE_LIMITED),
)
async def authenticate(session: CircleSession, pubkey: str, signature: str, nonce: str | None = None) -> bool:
    if not await session.may_attempt_sign_in():  # before the signature check: refusals cost nothing
        raise RpcError(jsonrpc.RATE_LIMITED, data={"reason": "too many sign-in attempts"})
    try:
        if nonce is None:
            key = session.challenges.redeem(pubkey, signature)
        else:
            key = await redeem_sent_nonce(session.circle.public_key, pubkey, signature, nonce)
    except NonceStoreUnavailable as exc:
        raise RpcError(jsonrpc.INTERNAL_ERROR, log_detail=f"nonce store: {exc}") from exc
    except InvalidCredentials as exc:
        session.failed_auth += 1
        SIGN_IN_FAILED.inc()
        raise RpcError(jsonrpc.INVALID_CREDENTIALS, log_detail=exc.reason) from exc
    await finish_sign_in(session, key)
    return True


@rpc_method(
    "whoami",
    "Who this connection is signed in as.",
    result={
        "type": "object",
        "properties": {
            "circle": {"type": "string"},
            "authenticated": {"type": "boolean"},
            "pubkey": {"type": ["string", "null"]},
            "role": {"type": ["string", "null"], "enum": ["owner", "admin", "member", "guest", None]},
        },
    },
    inline=True,
)
async def whoami(session: CircleSession) -> dict[str, Any]:
    if session.pubkey is not None and not session.role_is_current():  # the membership changed since
        version = session.version_before_read()
        session.note_role_at(await role_in_circle(session.circle, session.pubkey), version)
    return {
        "circle": session.circle.public_key,
        "authenticated": session.authenticated,
        "pubkey": session.pubkey,
        "role": session.role,
    }


@rpc_method("logout", "Sign out; the connection stays open.", result={"type": "boolean"}, inline=True)
async def logout(session: CircleSession) -> bool:
    session.sign_out()
    return True


@rpc_method(
    "play",
    "Run a Rhai script in the circle as the signed-in key.",
    params=(
        Param("script", "string", "Rhai source"),
        Param("timeout_ms", "integer", "wall-clock limit, capped by the server", required=False, minimum=1),
    ),
    result={
        "type": "object",
        "properties": {
            "output": {"type": "string"},
            "value": {},
            "logs": {"type": "array", "items": {"type": "string"}},
            "run_id": {"type": "string"},
            "elapsed_ms": {"type": "number"},
        },
    },
    errors=(
        jsonrpc.INVALID_PARAMS,
        jsonrpc.EXECUTION_ERROR,
        jsonrpc.AUTHENTICATION_REQUIRED,
        jsonrpc.FORBIDDEN,
        jsonrpc.EXECUTOR_UNAVAILABLE,
        jsonrpc.RATE_LIMITED,
    ),
    takes_request_id=True,
)
async def play(
    session: CircleSession, script: str, timeout_ms: int | None = None, *, request_id: str = ""
) -> dict[str, Any]:
    await check_player(session)
    limits = session.limits
    timeout = min(timeout_ms or limits.play_timeout_ms, limits.play_max_timeout_ms)
    return await session.play_runner.run(session, script, timeout, request_id)


async def check_player(session: CircleSession) -> None:
    """Raise unless the session may run scripts: signed in (-32001) with a role that may `play`
    (-32003). The role is re-read only when the session's trust in it has lapsed."""
    if session.pubkey is None:
        raise RpcError(jsonrpc.AUTHENTICATION_REQUIRED)
    if not session.may_play_without_lookup():
        version = session.version_before_read()
        role, guest_may_play = await standing_in_circle(session.circle.id, session.pubkey)
        session.note_role_at(role, version)
        if not may_play(role, allow_guests=guest_may_play):
            raise RpcError(jsonrpc.FORBIDDEN, data={"role": role, "needs": "member"})


@cache
def openrpc_document() -> dict[str, Any]:
    """The OpenRPC document of this endpoint, generated from the registry."""
    return registry.openrpc(title="Circles circle endpoint", version=PROTOCOL_VERSION)


@rpc_method("rpc.discover", "This endpoint's OpenRPC document.", result={"type": "object"}, inline=True)
async def discover(session: CircleSession) -> dict[str, Any]:
    return openrpc_document()
