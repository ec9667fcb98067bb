"""The serial transport's failure paths with real pyserial ports (no board, no model)."""

import pytest

from hefl.accel.base import get_accelerator
from hefl.errors import BackendUnavailable, LinkError
from hefl.transport.serial import SerialTransport


def test_no_port_or_missing_device_is_backend_unavailable(tmp_path):
    with pytest.raises(BackendUnavailable, match="needs a port"):
        SerialTransport()
    with pytest.raises(BackendUnavailable, match="cannot open serial port"):
        SerialTransport(url=str(tmp_path / "ttyNOPE"))
    with pytest.raises(BackendUnavailable, match="cannot open serial port"):
        get_accelerator("serial", url=str(tmp_path / "ttyNOPE"))


def test_a_port_that_echoes_is_not_a_board():
    # pyserial's loop:// sends our request straight back: the reply parser
    # must reject it (a request's header is not a valid reply header).
    with pytest.raises(LinkError, match="INFO"):
        SerialTransport(url="loop://", timeout=0.2, retries=1)


def test_a_silent_port_times_out():
    # A port that swallows every request and never answers.
    class Silent:
        def write(self, data):
            return len(data)

        def read(self, n):
            return b""

        def reset_input_buffer(self):
            pass

    with pytest.raises(LinkError, match="no reply"):
        SerialTransport(Silent(), timeout=0.05, retries=2)
