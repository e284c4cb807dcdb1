"""single: a poprun inventory with one instance on one host (as on an IPU-POD16) runs the program
directly; it finds its partition through the IPUOF_VIPU_API_* variables."""
from __future__ import annotations

from launcher.backends.base import HostLaunch, JobContext, Launch
from launcher.render import render_template


class SingleBackend:
    name = "single"

    def launch(self, ctx: JobContext) -> Launch:
        inv, host = ctx.inventory, ctx.controller
        cluster = inv.cluster
        env = dict(ctx.env)
        env["IPUOF_VIPU_API_HOST"] = cluster.vipu_server_host
        if cluster.vipu_server_port is not None:
            env["IPUOF_VIPU_API_PORT"] = str(cluster.vipu_server_port)
        env["IPUOF_VIPU_API_PARTITION_ID"] = ctx.job.partition
        env["IPUOF_VIPU_API_TIMEOUT"] = str(cluster.timeout)
        extra = []
        if inv.paths.executable_cache is not None:
            extra = ["--executable_cache_path", inv.host_path(host, inv.paths.executable_cache)]
        command = render_template("program.j2", program=ctx.program(host, extra=extra))
        log = ctx.file(host, f"{ctx.job_name}.rank0.log")
        launched = HostLaunch(host, 0, [0], command, env, {0: log}, command_log=log)
        return Launch(self.name, 1, {h.name: [0] for h in ctx.hosts[:1]}, [launched])
