"""torchrun: a job script on every host; the controller is node 0 and the rendezvous.

With the default `network.rendezvous: static`, node ranks are fixed (controller = node 0, then the
other hosts in inventory order), so the placement is exact. With `c10d`, torchrun assigns node ranks
in the order hosts join: the placement is then the expected one only (each rank still writes
`<job>.rank<RANK>.log` under its own real RANK).
"""
from __future__ import annotations

from launcher.backends.base import HostLaunch, JobContext, Launch
from launcher.render import render_template


class TorchrunBackend:
    name = "torchrun"

    def launch(self, ctx: JobContext) -> Launch:
        per_host = ctx.job.nproc_per_node
        placement = ctx.placement(per_host)
        net = ctx.inventory.network
        env = dict(ctx.env)
        if net.interface:
            env.setdefault("GLOO_SOCKET_IFNAME", net.interface)
            env.setdefault("NCCL_SOCKET_IFNAME", net.interface)
        addr = ctx.master_addr or ctx.address(ctx.controller)   # never an ssh alias (launcher/plan.py)
        endpoint = f"[{addr}]:{net.master_port}" if ":" in addr else f"{addr}:{net.master_port}"
        hosts = []
        for node_rank, host in enumerate(ctx.hosts):
            command = render_template(
                "torchrun.j2", nnodes=len(ctx.hosts), nproc_per_node=per_host, node_rank=node_rank,
                rendezvous=net.rendezvous, master_addr=addr, master_port=net.master_port,
                endpoint=endpoint, run_id=ctx.run_id, launcher_args=list(ctx.job.launcher_args),
                rank_log_prefix=ctx.file(host, ctx.job_name), program=ctx.program(host))
            rank_logs = {r: ctx.file(host, f"{ctx.job_name}.rank{r}.log") for r in placement[host.name]}
            hosts.append(HostLaunch(host, node_rank, placement[host.name], command, env, rank_logs))
        return Launch(self.name, per_host * len(ctx.hosts), placement, hosts)
