"""Lua scripts run in Redis by their SHA1: the one way the executor calls Lua.

A script is sent as EVALSHA; a server that does not know it (new, restarted, failed over)
answers NOSCRIPT, and the script is loaded and sent again. `LuaScript.run` does that for one
call on anything that executes a command (a held connection's `call`, a client's
`execute_command`); a caller that sends many commands in one write (`executor.producer`)
builds them with `command` and loads with `load_command` itself.
"""

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import redis


class LuaScript:
    """A Lua script and its SHA1."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        """The EVALSHA command that runs the script on `keys` with `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def load_command(self) -> tuple[Any, ...]:
        """The SCRIPT LOAD command that teaches a server the script."""
        return ("SCRIPT", "LOAD", self.source)

    def run(self, execute: Callable[..., Any], keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script through `execute` (one command in, its reply out), loading it if unknown."""
        try:
            return execute(*self.command(keys, args))
        except redis.exceptions.NoScriptError:
            execute(*self.load_command())
            return execute(*self.command(keys, args))
