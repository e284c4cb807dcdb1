"""poprun: one job script on the controller; poprun claims the V-IPU partition and starts the
instances on every host through MPI. All output goes to the controller's host log."""
from __future__ import annotations

from launcher.backends.base import HostLaunch, JobContext, Launch
from launcher.render import render_template


class PoprunBackend:
    name = "poprun"

    def launch(self, ctx: JobContext) -> Launch:
        inv, job, controller = ctx.inventory, ctx.job, ctx.controller
        per_host = job.instances // len(ctx.hosts)
        placement = ctx.placement(per_host)
        world_size = per_host * len(ctx.hosts)
        env = dict(ctx.env)
        if inv.network.interface:
            env.setdefault("TCP_IF_INCLUDE", inv.network.interface)
        cluster, part = inv.cluster, inv.partitions[job.partition]
        command = render_template(
            "poprun.j2", verbosity=inv.poprun.verbosity, log_level=inv.poprun.log_level,
            hosts=[ctx.address(h) for h in ctx.hosts], instances=job.instances, replicas=job.replicas,
            ipus_per_replica=job.ipus_per_replica, update=part.update, reset=part.reset, remove=part.remove,
            vipu_server_host=cluster.vipu_server_host, vipu_server_port=cluster.vipu_server_port,
            partition=job.partition, allocation=cluster.allocation, timeout=cluster.timeout,
            executable_cache=inv.host_path(controller, inv.paths.executable_cache),
            interface=inv.network.interface, forward_env=ctx.env_names,
            launcher_args=list(job.launcher_args), program=ctx.program(controller))
        launched = HostLaunch(controller, 0, list(range(world_size)), command, env, {})
        return Launch(self.name, world_size, placement, [launched])
