"""A real DNS server for the tests: dnsmasq on a free loopback port, serving only the records given."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from smtp_fault_server import free_port


class Dnsmasq:
    """dnsmasq answering from its command line only (no upstream, no /etc/hosts); a context manager."""

    def __init__(self, tmp: Path, *, txt: dict[str, str] | None = None, records: list[str] | None = None) -> None:
        """``txt``: name → TXT value; ``records``: further options such as '--mx-host=a,b,10'."""
        if shutil.which("dnsmasq") is None:
            pytest.fail("dnsmasq is not installed; run scripts/test, which installs it")
        self.port = free_dns_port()
        self.tmp = tmp
        args = [
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--log-facility=-",
            f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces",
            f"--pid-file={tmp / 'dnsmasq.pid'}", "--conf-file=/dev/null",
        ]
        # answered from these options only, as an authoritative server would: NXDOMAIN or an empty answer
        # for a missing record, not REFUSED (dnsmasq's reply when it would have to ask an upstream)
        args.append("--local=/example.org/example.net/example.com/in-addr.arpa/ip6.arpa/")
        args += [f"--txt-record={name},{value}" for name, value in (txt or {}).items()]
        args += records or []
        self.args = [a for a in args if a]

    def __enter__(self) -> "Dnsmasq":
        self.log = open(self.tmp / f"dnsmasq-{self.port}.log", "wb")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"dnsmasq did not start: {(self.tmp / f'dnsmasq-{self.port}.log').read_text()}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    @property
    def address(self) -> str:
        """'127.0.0.1:PORT', the form NEWSLETTER_DNS_SERVER takes."""
        return f"127.0.0.1:{self.port}"


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP a moment ago (DNS uses both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    return free_port()


def _answers(port: int) -> bool:
    """True once something answers a DNS query on the port (any reply, even REFUSED)."""
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            return sock.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False
