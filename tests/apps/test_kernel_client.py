"""The Papermill kernel client never waits on a socket wake-up without a timeout."""

from __future__ import annotations

import asyncio
from queue import Empty

import nbformat
import papermill as pm
import pytest
import zmq

from crmkit.apps import kernel_client
from crmkit.apps.kernel_client import (
    WakefulChannel,
    WakefulKernelClient,
    WakefulKernelManager,
    papermill_kwargs,
)


class _LostWakeUpSocket:
    """A socket whose message is only seen by a poll that ends (a lost wake-up)."""

    def __init__(self, ready_after: int) -> None:
        self.timeouts: list[int | None] = []
        self.ready_after = ready_after

    async def poll(self, timeout: int | None = None) -> int:
        self.timeouts.append(timeout)
        if timeout is None:
            raise AssertionError("waited on the socket's wake-up without a timeout")
        await asyncio.sleep(timeout / 1000)
        return zmq.POLLIN if len(self.timeouts) > self.ready_after else 0


class _Channel(WakefulChannel):
    """The channel with its message decoding replaced by a fixed message."""

    async def _recv(self, **kwargs: object) -> dict:
        return {"msg_type": "execute_reply"}


def _channel(socket: _LostWakeUpSocket) -> _Channel:
    ch = _Channel.__new__(_Channel)
    ch.socket = socket  # type: ignore[assignment]
    return ch


def test_a_reply_whose_wake_up_was_lost_is_found_at_the_end_of_a_slice(monkeypatch) -> None:
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.01)
    monkeypatch.setitem(kernel_client.RESCUED, "count", 0)
    sock = _LostWakeUpSocket(ready_after=2)
    msg = asyncio.run(_channel(sock).get_msg(timeout=None))
    assert msg == {"msg_type": "execute_reply"}
    assert sock.timeouts == [10, 10, 10]  # every wait bounded by the slice
    assert kernel_client.RESCUED["count"] == 1


def test_a_finite_timeout_still_ends_in_empty(monkeypatch) -> None:
    monkeypatch.setattr(kernel_client, "POLL_SLICE_S", 0.01)
    sock = _LostWakeUpSocket(ready_after=10**6)
    with pytest.raises(Empty):
        asyncio.run(_channel(sock).get_msg(timeout=0.035))
    assert all(t is not None and t <= 10 for t in sock.timeouts)
    assert len(sock.timeouts) >= 2  # waited again after a slice without a message


def test_the_manager_hands_out_the_wakeful_client_on_every_channel() -> None:
    km = WakefulKernelManager(kernel_name="python3")
    kc = km.client()
    assert isinstance(kc, WakefulKernelClient)
    for name in ("shell", "iopub", "stdin", "control"):
        assert getattr(kc, f"{name}_channel_class") is WakefulChannel


def test_papermill_runs_a_notebook_through_the_wakeful_client(tmp_path, monkeypatch) -> None:
    calls = {"n": 0}
    plain = WakefulChannel.get_msg

    async def counting(self, timeout=None):
        calls["n"] += 1
        return await plain(self, timeout)

    monkeypatch.setattr(WakefulChannel, "get_msg", counting)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 20"), nbformat.v4.new_code_cell("x + 22")]
    )
    nbformat.write(nb, tmp_path / "in.ipynb")
    out = pm.execute_notebook(
        str(tmp_path / "in.ipynb"),
        str(tmp_path / "out.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        **papermill_kwargs(),
    )
    assert out.cells[1].outputs[0]["data"]["text/plain"] == "42"
    assert calls["n"] > 0
