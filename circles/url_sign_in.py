"""Sign-in in the WebSocket URL: `/{circle_pk}?pubkey=<key>&sig=<signature>&nonce=<nonce>`.

The original server's clients open a connection already signed in this way, with a nonce from
`GET /auth/nonce`. A connection whose URL carries any of the three parameters is signed in before
its first frame is read, or closed at once: 4401 for bad, reused, expired or another circle's
credentials (a failed sign-in, counted like a failed `authenticate`), 4429 over the per-address
sign-in attempts, 1013 when the nonce store cannot be reached. The query string is never logged.
"""

from urllib.parse import parse_qs

from auth_secp import InvalidCredentials
from circles.metrics import SIGN_IN_FAILED
from circles.nonce_store import NonceStoreUnavailable
from circles.session import CircleSession
from circles.ticket_sign_in import finish_sign_in, redeem_sent_nonce

CLOSE_INVALID_CREDENTIALS = 4401
CLOSE_TOO_MANY = 4429
CLOSE_TRY_AGAIN_LATER = 1013
PARAMS = ("pubkey", "sig", "nonce")
MAX_QUERY_BYTES = 4096


def credentials_in_query(query_string: bytes) -> dict[str, str] | None:
    """The sign-in parameters of a connection's query string; None when it names none of them.

    A parameter given twice, or a query over MAX_QUERY_BYTES, keeps only what cannot sign in:
    the result then lacks that parameter (an incomplete set, refused by the caller).
    """
    if not query_string:
        return None
    if len(query_string) > MAX_QUERY_BYTES:
        return {"oversized": ""}
    values = parse_qs(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
    if not any(name in values for name in PARAMS):
        return None
    return {name: values[name][0] for name in PARAMS if len(values.get(name, ())) == 1}


async def sign_in_at_connect(session: CircleSession, query_string: bytes) -> tuple[int, str, str] | None:
    """Sign `session` in from the URL; None when signed in (or nothing asked), else the close to send.

    The result is (close code, reason for the client, detail for the server log).
    """
    credentials = credentials_in_query(query_string)
    if credentials is None:
        return None
    if not await session.may_attempt_sign_in():
        return CLOSE_TOO_MANY, "too many sign-in attempts", "sign-in attempts over the limit"
    try:
        if len(credentials) != len(PARAMS):
            raise InvalidCredentials("no challenge")
        key = await redeem_sent_nonce(
            session.circle.public_key, credentials["pubkey"], credentials["sig"], credentials["nonce"]
        )
    except NonceStoreUnavailable as exc:
        return CLOSE_TRY_AGAIN_LATER, "try again later", f"nonce store: {exc}"
    except InvalidCredentials as exc:
        session.failed_auth += 1
        SIGN_IN_FAILED.inc()
        return CLOSE_INVALID_CREDENTIALS, "invalid credentials", exc.reason
    await finish_sign_in(session, key)
    return None
