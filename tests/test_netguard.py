import socket
import subprocess
import sys

import pytest
from genai_netguard import NonLoopbackConnection


def test_guard_blocks_non_loopback_in_process():
    s = socket.socket()
    try:
        with pytest.raises(NonLoopbackConnection):
            s.connect(("10.255.255.1", 9))
    finally:
        s.close()


def test_guard_blocks_non_loopback_in_subprocesses():
    code = "import socket; s = socket.socket(); s.connect(('192.0.2.1', 9))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "NonLoopbackConnection" in proc.stderr


def test_guard_allows_loopback():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket()
    try:
        c.connect(srv.getsockname())
    finally:
        c.close()
        srv.close()
