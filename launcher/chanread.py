"""Reading one paramiko channel's stdout and stderr as they arrive, from several threads' channels at once.

The wait is on a threading.Event of the reader's own, which paramiko's buffers set when data, EOF or
close arrives (`BufferedPipe.set_event`). It is never `select` on the channel: `Channel.fileno()`
makes an OS pipe that paramiko's transport thread may still write after `Channel.close()` has closed
it (paramiko issues 1700, 2271). With hosts served by parallel threads, that write hit another
host's descriptor: `[Errno 9] Bad file descriptor`, or a byte in the middle of another connection.
"""
from __future__ import annotations

import threading

CHUNK = 65536


class ChannelReader:
    def __init__(self, chan):
        self.chan = chan
        self.out, self.err = bytearray(), bytearray()
        self._arrived = threading.Event()
        chan.in_buffer.set_event(self._arrived)
        chan.in_stderr_buffer.set_event(self._arrived)

    def drain(self) -> None:
        """Take everything that has arrived on stdout and stderr, without waiting."""
        while True:
            got = False
            if self.chan.recv_ready():
                self.out += self.chan.recv(CHUNK)
                got = True
            if self.chan.recv_stderr_ready():
                self.err += self.chan.recv_stderr(CHUNK)
                got = True
            if not got:
                return

    def pump(self, wait: float) -> None:
        """Take what has arrived; if nothing had, wait up to `wait` s for more (or EOF) and take it."""
        self._arrived.clear()  # anything fed after this sets it again; anything before is drained now
        before = len(self.out) + len(self.err)
        self.drain()
        if len(self.out) + len(self.err) == before:
            self._arrived.wait(wait)
            self.drain()
