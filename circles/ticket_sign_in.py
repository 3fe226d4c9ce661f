"""Redeeming an HTTP-issued nonce (`GET /auth/nonce`) on a connection: `authenticate`'s third
param and the sign-in in the WebSocket URL (`/{circle_pk}?pubkey=&sig=&nonce=`) share this."""

import time

from auth_secp import InvalidCredentials, nonce_id, redeem_ticket
from circles.metrics import SIGN_IN_OK
from circles.nonce_store import nonce_store
from circles.role_cache import role_at_sign_in
from circles.session import CircleSession
from executor import membership_notices


async def redeem_sent_nonce(circle: str, pubkey: object, signature: object, sent: object) -> str:
    """The canonical key that signed the ticket `sent` names, for a sign-in at `circle`.

    The ticket is taken from the store before anything is checked, so it is spent by the first
    attempt that names it, good or bad. Raises InvalidCredentials ("no challenge": unknown, spent
    or expired; or a reason of `redeem_ticket`) and NonceStoreUnavailable.
    """
    nonce = nonce_id(sent)
    if (
        nonce is None
        or not isinstance(sent, str)
        or not isinstance(pubkey, str)
        or not isinstance(signature, str)
    ):
        raise InvalidCredentials("no challenge")
    ticket = await nonce_store().take(nonce)
    if ticket is None:
        raise InvalidCredentials("no challenge")
    return redeem_ticket(ticket, sent, pubkey, signature, circle, time.time())


async def finish_sign_in(session: CircleSession, key: str) -> None:
    """Sign `session` in as `key` (a verified signer): read its role, count the sign-in."""
    membership_notices.start_listening()  # with Redis: hear other processes' membership changes
    role, version = await role_at_sign_in(session.circle, key)
    session.sign_in(key, role, version)
    SIGN_IN_OK.inc()
