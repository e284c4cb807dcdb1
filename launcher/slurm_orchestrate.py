"""Jobs of a `scheduler: slurm` inventory: submit (a pipeline's stages chained by Slurm with
--dependency=afterok), follow from the submit host unless detached; and the Slurm side of
status / logs / stop for recorded runs.

Order as in launcher/orchestrate.py: everything is planned first; each job is recorded before it is
submitted; the record's state follows what Slurm says.
"""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from launcher import remote, report, slurm_supervise, slurmops


def _record(store, run, plan):
    job = run.add_job(plan)
    secrets = plan.inventory.secret_values()
    text = plan.controller.script
    for s in secrets:
        text = text.replace(s, "***")
    store.save_script(run.id, f"{plan.job}.sbatch", text)
    store.save(run)
    return job


def _submit_all(con: Console, store, run, plans: list, t) -> list | None:
    """Record and submit each plan, each after the one before; the JobRecords, or None on a refusal."""
    jobs = []
    for plan in plans:
        job = _record(store, run, plan)
        dependency = jobs[-1].slurm_job_id if jobs else None
        try:
            job.submitted(slurmops.submit(plan, t, dependency), dependency)
        except remote.RemoteError as exc:
            job.failed_to_submit(exc.message)
            store.save(run)
            con.print(f"[red]{escape(str(exc))}[/]")
            if jobs:
                slurmops.cancel(t, [j.slurm_job_id for j in jobs])
                for j in jobs:
                    j.cancelled()
                store.save(run)
            return None
        store.save(run)
        jobs.append(job)
        after = f", after job {dependency} succeeds" if dependency else ""
        con.print(f"[bold]run {run.id}[/]: {plan.job} submitted as Slurm job {job.slurm_job_id} "
                  f"({len(plan.placement)} node(s), {plan.world_size} process(es){after}), "
                  f"output {escape(str(plan.output_dir))}")
    return jobs


def submit_and_follow(con: Console, store, run, plans: list, detach: bool = False, poll: float = 1.0) -> int:
    """Submit `plans` in order (each after the one before succeeds); follow them unless `detach`."""
    t = remote.target(plans[0].controller.host)
    try:
        jobs = _submit_all(con, store, run, plans, t)
        if jobs is None:
            return 1
        if detach:
            con.print(f"submitted; Slurm runs the rest. Follow with: mae-launch logs {run.id} --follow "
                      f"(status: mae-launch status {run.id}; cancel: mae-launch stop {run.id})")
            return 0
        for job in jobs:
            outcome = slurm_supervise.follow(run, job, t, con, store, poll=poll)
            if outcome.rc != 0:
                report.print_failure(con, outcome, run.id)
                left = slurmops.cancel(t, [j.slurm_job_id for j in jobs])  # later stages would never start
                for j in jobs:
                    j.cancelled()
                store.save(run)
                if left:
                    con.print(f"[red]still queued: {' '.join(left)}[/]")
                return outcome.rc
            con.print(f"[green]{job.job} finished[/] (Slurm job {job.slurm_job_id}, run {run.id})")
        return 0
    finally:
        t.close()


def _submit_target(run):
    return remote.target(run.host(run.host_names()[0]))


def status(con: Console, store, run, job_name: str | None) -> list:
    """[(JobRecord, SlurmState or None, last log line)] for the run's Slurm jobs (or one of them);
    what Slurm says is recorded (a detached run's record catches up)."""
    jobs = [run.job(job_name)] if job_name else run.slurm_jobs()
    t = _submit_target(run)
    try:
        states = slurmops.query(t, [j.slurm_job_id for j in jobs if j.slurm_job_id])
        rows = []
        for j in jobs:
            w = slurm_supervise.Watch(con, j, False)
            st = states.get(j.slurm_job_id)
            w.read(t, st, tail_bytes=4096)
            if st is not None and st.settle(w.exit_status).state != "unknown":
                j.slurm_seen(st.state, st.slurm_state, st.reason)
            rows.append((j, st, w.last_line()))
        store.save(run)
        return rows
    finally:
        t.close()


def logs(con: Console, run, job_name: str | None, follow: bool, lines: int) -> int:
    """Print the last `lines` of every log of the job; with `follow`, new lines until it ends."""
    job = run.job(job_name)
    t = _submit_target(run)
    try:
        state = slurmops.query(t, [job.slurm_job_id])[job.slurm_job_id]
        w = slurm_supervise.Watch(con, job, False)
        w.read(t, state, tail_bytes=max(4096, lines * 400))
        w.printer.flush()
        for key, host, label, _ in slurmops.log_files(job, w.nodes):
            for line in w.printer.last_lines(host, key, lines):
                con.print(w.printer.prefix(host, label) + line, soft_wrap=True)
        if not follow:
            return 0
        outcome = slurm_supervise.follow(run, job, t, con, None, fail_fast=False, offsets=w.offsets)
        return 0 if outcome.rc in (0, 1) else outcome.rc
    finally:
        t.close()


def stop(store, run) -> tuple[list, list]:
    """scancel every Slurm job of the run; (ids, ids still queued). States saved."""
    ids = [j.slurm_job_id for j in run.slurm_jobs()]
    t = _submit_target(run)
    try:
        left = slurmops.cancel(t, ids)
    finally:
        t.close()
    for j in run.jobs:
        j.cancelled()
    store.save(run)
    return ids, left
