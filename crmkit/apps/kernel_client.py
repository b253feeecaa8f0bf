"""A kernel client for Papermill runs that never waits on a socket wake-up that may not come.

Why: a notebook run through Papermill sometimes stalled for good with the kernel idle
(``benchmarks/results/marketing.md``, "Notebook 04 under Papermill: the stall"). The kernel had
answered; its reply sat unread in the client's socket because the client waited for the
socket's edge-triggered wake-up with no timeout (nbclient asks for the shell reply and the
iopub messages with ``get_msg(timeout=None)``), and that wake-up had been consumed by another
operation on the same socket. Pinning ipykernel < 7 did not cure it (10 stalls in 28 runs,
``benchmarks/RESULTS.md``).

pyzmq's asyncio poll with a finite timeout ends with a real, non-blocking ``zmq_poll``, which
sees a message whatever happened to the wake-up. So the channels here wait in slices of
:data:`POLL_SLICE_S` seconds up to the caller's timeout: a lost wake-up costs at most one
slice instead of the whole run. Pass ``**papermill_kwargs()`` to ``papermill.execute_notebook``.
"""

from __future__ import annotations

import logging
import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

#: Longest single wait on a socket, in seconds.
POLL_SLICE_S = 1.0

log = logging.getLogger(__name__)

#: Replies found by the non-blocking check at the end of a slice rather than by a wake-up:
#: each is a wake-up that was lost (or a message that arrived just at the slice's end).
RESCUED = {"count": 0}


class WakefulChannel(AsyncZMQSocketChannel):
    """An asyncio ZMQ channel whose ``get_msg`` waits in slices instead of indefinitely."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        """Return the next message, waiting at most ``timeout`` seconds (None: for ever).

        Parameters
        ----------
        timeout
            Seconds to wait in all; ``None`` waits until a message comes.

        Returns
        -------
        dict
            The message.

        Raises
        ------
        queue.Empty
            When no message came within ``timeout``.

        """
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = POLL_SLICE_S if left is None else min(POLL_SLICE_S, left)
            started = time.monotonic()
            ready = await self.socket.poll(int(step * 1000))
            if ready:
                if step > 0 and time.monotonic() - started >= step:
                    RESCUED["count"] += 1
                    log.debug("kernel message found after a %.1f s slice, not by a wake-up", step)
                return await self._recv()
            if left is not None and left <= step:
                raise Empty


class WakefulKernelClient(AsyncKernelClient):
    """An asynchronous kernel client whose channels are :class:`WakefulChannel`."""

    shell_channel_class = Type(WakefulChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(WakefulChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(WakefulChannel)  # type: ignore[assignment]
    control_channel_class = Type(WakefulChannel)  # type: ignore[assignment]


class WakefulKernelManager(AsyncKernelManager):
    """A kernel manager that hands out :class:`WakefulKernelClient` clients."""

    client_class = DottedObjectName("crmkit.apps.kernel_client.WakefulKernelClient")
    client_factory = Type(WakefulKernelClient, klass=AsyncKernelClient)  # type: ignore[assignment]


def papermill_kwargs() -> dict[str, Any]:
    """Return the keyword arguments that make ``papermill.execute_notebook`` use this client.

    Returns
    -------
    dict
        ``{"kernel_manager_class": WakefulKernelManager}`` (Papermill hands it to nbclient).

    """
    return {"kernel_manager_class": WakefulKernelManager}
