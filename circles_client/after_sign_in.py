"""What a replacement connection must redo after it signed in again, before calls use it.

There is nothing here yet but the mechanism: a feature whose state lives on the server's side
of one connection (a subscription, later) registers a step under a name of its own, and
removes it when that state is given up. After a reconnect, `CircleClient` replays every step,
in the order they were added, on the new connection.
"""

import logging
from collections.abc import Awaitable, Callable, Hashable

from circles_client.connection import Connection
from circles_client.errors import ConnectionLost, RpcError

logger = logging.getLogger("circles_client")

Step = Callable[[Connection], Awaitable[object]]


class AfterSignIn:
    """Named steps to redo on each new connection, in the order they were first added."""

    def __init__(self) -> None:
        self._steps: dict[Hashable, Step] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, name: Hashable) -> bool:
        return name in self._steps

    def add(self, name: Hashable, step: Step) -> None:
        """Redo `step` after every reconnect; a step already under `name` is replaced in place."""
        self._steps[name] = step

    def discard(self, name: Hashable) -> None:
        """Stop redoing the step under `name` (nothing happens if there is none)."""
        self._steps.pop(name, None)

    async def replay(self, connection: Connection) -> None:
        """Run every step on `connection`.

        A lost connection stops the replay (`ConnectionLost` is raised: the attempt failed and
        the next one replays everything again). A step the server refuses (`RpcError`) is logged
        and the others still run: the connection itself is good.
        """
        for name, step in list(self._steps.items()):
            try:
                await step(connection)
            except ConnectionLost:
                raise
            except RpcError as exc:
                logger.warning("after reconnecting to %s, %r was refused: %s", connection.url, name, exc)
