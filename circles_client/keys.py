"""The signing key of a client: generate, load from a file or the environment, never show it.

`SigningKey` keeps the private key inside a coincurve object; its `repr` and `str` show the
public key only, so a key that ends up in a log line or a traceback does not leak.
"""

import os
import stat
from pathlib import Path

import coincurve

from circles_client.signing import ethereum_address, personal_sign

KEY_ENV = "CIRCLES_KEY"
KEY_FILE_ENV = "CIRCLES_KEY_FILE"


class InvalidKey(ValueError):
    """A private key that cannot be read (the message never contains the key itself)."""


class SigningKey:
    """A secp256k1 private key that signs sign-in texts; masked in `repr`."""

    __slots__ = ("_private",)

    def __init__(self, private: coincurve.PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> "SigningKey":
        """A new random key (from the OS's CSPRNG, through libsecp256k1)."""
        return cls(coincurve.PrivateKey())

    @classmethod
    def from_hex(cls, text: str) -> "SigningKey":
        """A key from 64 hex digits (`0x` and surrounding whitespace allowed)."""
        digits = text.strip().removeprefix("0x").removeprefix("0X")
        if len(digits) != 64:
            raise InvalidKey(f"a private key is 64 hex digits, got {len(digits)} characters")
        try:
            return cls(coincurve.PrivateKey(bytes.fromhex(digits)))
        except ValueError as exc:
            raise InvalidKey("the private key is not hex, or not a valid secp256k1 key") from exc

    @property
    def pubkey(self) -> str:
        """The compressed public key in lowercase hex: the server's canonical form."""
        return self._private.public_key.format(compressed=True).hex()

    @property
    def address(self) -> str:
        """The EIP-55 checksummed Ethereum address of the key."""
        return ethereum_address(self._private.public_key)

    def sign(self, text: str) -> str:
        """EIP-191 `personal_sign` of `text`: r‖s‖v hex, as the server's `authenticate` takes it."""
        return personal_sign(self._private, text)

    def private_hex(self) -> str:
        """The private key as 64 hex digits: only for writing it to a key file."""
        return self._private.to_hex()

    def __repr__(self) -> str:
        return f"SigningKey(pubkey={self.pubkey}, private=***)"

    __str__ = __repr__

    def __reduce__(self):  # no pickling a secret into caches or queues by accident
        raise TypeError("a SigningKey cannot be pickled")


def read_key_file(path: str | os.PathLike[str]) -> SigningKey:
    """A key from a file holding its hex (as `circles keygen -o` writes it)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidKey(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        return SigningKey.from_hex(text)
    except InvalidKey as exc:
        raise InvalidKey(f"key file {path}: {exc}") from exc


def load_key(
    value: str | None = None, *, file: str | os.PathLike[str] | None = None, environ: dict | None = None
) -> SigningKey | None:
    """The key to sign in with: `value` (hex), else `file`, else $CIRCLES_KEY, else $CIRCLES_KEY_FILE.

    Returns None when none of them is given (the client then stays signed out).
    """
    environ = os.environ if environ is None else environ
    if value:
        return SigningKey.from_hex(value)
    if file:
        return read_key_file(file)
    if environ.get(KEY_ENV):
        try:
            return SigningKey.from_hex(environ[KEY_ENV])
        except InvalidKey as exc:
            raise InvalidKey(f"${KEY_ENV}: {exc}") from exc
    if environ.get(KEY_FILE_ENV):
        return read_key_file(environ[KEY_FILE_ENV])
    return None


def write_key_file(key: SigningKey, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the key's hex to `path`, readable by the owner only (mode 0600)."""
    path = Path(path).expanduser()
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.private_hex() + "\n")
    return path
