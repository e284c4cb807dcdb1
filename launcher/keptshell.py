"""A kept shell on one SSH host: one long-lived `bash -s` over the host's open connection, fed one call
after another, for commands repeated every few hundred milliseconds (a followed job's polls).

Each SSH command starts the login user's shell, which reads ~/.bashrc: a `conda init` or `pyenv init`
there costs tenths of a second of CPU per command, so a poll every 0.5 s would keep a core of every host
busy. Through a kept shell, a call costs one `bash` of its own and nothing else (templates/kept_call.sh.j2).

A call that does not end within its timeout, or a broken channel, discards the shell (the next call
opens another): a late answer is never taken for the next call's, whose marks have another nonce. A
call's output is what comes between its start and end marks, so what a background process of an
earlier call wrote before the call started is not taken for it.
"""
from __future__ import annotations

import secrets
import time

from launcher.chanread import ChannelReader
from launcher.render import render_template


class ShellGone(Exception):
    """The kept shell ended or did not answer in time; it must not be used again."""


class KeptShell:
    def __init__(self, channel):
        self.chan = channel
        self.chan.settimeout(10.0)  # bounds a send; reads wait on ChannelReader, never on the socket
        self.chan.exec_command("bash -s")

    def call(self, script: str, timeout: float) -> tuple[int, str, str]:
        """Run `script` (a bash script) in the shell; (exit status, stdout, stderr). Raises ShellGone."""
        nonce = secrets.token_hex(8)
        self.chan.sendall(render_template("kept_call.sh.j2", script=script.rstrip("\n"), nonce=nonce).encode())
        start = f"\n__MAE_START_{nonce}\n".encode()
        out_mark, err_mark = f"\n__MAE_END_{nonce} ".encode(), f"\n__MAE_END_{nonce}\n".encode()
        reader = ChannelReader(self.chan)
        out, err = reader.out, reader.err
        deadline = time.monotonic() + timeout
        while not (_ended(out, out_mark) and err_mark in err):
            if time.monotonic() > deadline or self.chan.closed or self.chan.exit_status_ready():
                raise ShellGone("no answer within the timeout" if time.monotonic() > deadline else "the shell ended")
            reader.pump(0.2)
        body, _, rest = _after(out, start).partition(out_mark)
        rc = int(rest.split(b"\n", 1)[0])
        return rc, body.decode(errors="replace"), _after(err, start).partition(err_mark)[0].decode(errors="replace")

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:  # closing a broken channel: nothing more to do
            pass


def _after(stream: bytearray, start: bytes) -> bytes:
    """What follows the call's start mark (the mark is printed before the call's script runs)."""
    return bytes(stream).partition(start)[2]


def _ended(out: bytearray, mark: bytes) -> bool:
    """The stdout end mark and its exit status line are complete."""
    at = out.find(mark)
    return at >= 0 and out.find(b"\n", at + len(mark)) >= 0
