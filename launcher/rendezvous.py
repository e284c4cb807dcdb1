"""The rendezvous address every host of a torchrun job connects to, and `check`'s probe of it.

The address is `network.master_addr` when set; else the address the controller itself reports on
`network.interface`; else the controller's HostName as OpenSSH resolves it (launcher/plan.py) — never
an ssh alias, a name only this machine's ~/.ssh/config knows. `probe` starts a short-lived listener
on the controller's rendezvous port and, from every host, checks that the address resolves there and
that the port answers; the listener exits by itself once every host has knocked (or after a few
seconds), so the port is free again for the job.
"""
from __future__ import annotations

from typing import Optional

from launcher import remote
from launcher.errors import UserError
from launcher.plan import host_address

LISTEN_S = 12      # the probe listener's longest life
KNOCK_S = 3        # each host's connect attempt


def address(inv, controller_target: Optional[remote.Target] = None) -> str:
    """The rendezvous address of `inv`'s jobs (asks the controller when `network.interface` is set)."""
    net = inv.network
    if net.master_addr:
        return net.master_addr
    if net.interface and not inv.controller.is_local:
        t = controller_target or remote.target(inv.controller)
        try:
            done = t.run_template("rendezvous_address.sh.j2", timeout=remote.connect_timeout(t.host) + 20,
                                  check=True, interface=net.interface)
        except remote.RemoteError as e:
            raise UserError(f"{inv.controller.name}: cannot read its address on network.interface "
                            f"{net.interface}: {e.message}") from None
        finally:
            if controller_target is None:
                t.close()
        addr = remote.parse_kv(done.stdout).get("addr", "")
        if not addr:
            raise UserError(f"{inv.source_path}: network.interface {net.interface} has no address on the controller "
                            f"{inv.controller.name}; name an interface it has, or set network.master_addr")
        return addr
    return host_address(inv.controller)


def probe(inv, ts: dict, addr: str, timeout: float = 60) -> dict:
    """host name -> (ok, text): the rendezvous address resolves on the host and its port answers there.
    `ts`: name -> Target of every host (the controller's port must be free: check says so first)."""
    port = inv.network.master_port
    controller = ts[inv.controller.name]
    # every host knocks once, and the listener's own readiness test once more
    started = controller.run_template("rendezvous_listen.sh.j2", timeout=timeout, check=False, port=port,
                                      expect=len(ts) + 1, seconds=LISTEN_S)
    listening = remote.parse_kv(started.stdout).get("listening") == "1"

    def one(t):
        return remote.parse_kv(t.run_template("rendezvous_probe.sh.j2", timeout=timeout, check=True,
                                              addr=addr, port=port, seconds=KNOCK_S).stdout)

    cells = {}
    where = f"{addr}:{port}" if ":" not in addr else f"[{addr}]:{port}"
    for r in remote.fan_out(list(ts.values()), one, timeout=timeout):
        if not r.ok:
            cells[r.host] = (False, f"not probed: {r.error}")
        elif r.value.get("resolves") != "1":
            cells[r.host] = (False, f"{addr} does not resolve on this host; set network.master_addr "
                                    "(or network.interface)")
        elif not listening:
            cells[r.host] = (None, f"{addr} resolves; no probe listener on the controller (python3?)")
        elif r.value.get("answers") != "1":
            cells[r.host] = (False, f"{where} does not answer from this host (firewall? another interface?)")
        else:
            cells[r.host] = (True, f"{where} answers")
    return cells
