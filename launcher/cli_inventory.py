"""`mae-launch inventory new NAME` (write an inventory from an ssh config, a hostfile or Slurm) and
`mae-launch inventory schema` (the inventory's JSON Schema, for editors)."""
from pathlib import Path

import click

from launcher.completion import complete_inventory


@click.group("inventory")
def inventory():
    """Write a new inventory, or print the inventory's JSON Schema."""


@inventory.command("new")
@click.argument("name")
@click.option("--from-ssh-config", "pattern", metavar="PATTERN",
              help="The hosts of your OpenSSH config whose Host names match PATTERN ('gpu*', 'a,b', '!x').")
@click.option("--hostfile", type=click.Path(dir_okay=False),
              help="A DeepSpeed/MPI hostfile: `hostname slots=N` lines (slots become nproc_per_node).")
@click.option("--slurm", is_flag=True, help="A Slurm inventory: the partition from this host's scontrol/sinfo.")
@click.option("--partition", help="With --slurm: this partition instead of the default one.")
@click.option("--launcher", type=click.Choice(["torchrun", "poprun"]), default="torchrun", show_default=True,
              help="torchrun (GPU/CPU hosts); poprun inventories start from inventories/pod16.yml or pod64.yml.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), default="~/.ssh/config", show_default=True,
              help="The OpenSSH config whose Host entries are read; any file but your own is named in the "
                   "inventory as ssh.ssh_config, so each host's settings are OpenSSH's view from it.")
@click.option("--user", help="ssh.user for every host.")
@click.option("--identity-file", help="ssh.identity_file for every host (a private key on this machine).")
@click.option("--known-hosts", help="ssh.known_hosts for every host.")
@click.option("--workdir", default="~/mae-launch", show_default=True, help="paths.workdir on every host.")
@click.option("--venv", default=".venv", show_default=True, help="paths.venv (relative: inside the workdir).")
@click.option("--data", help="paths.data: the dataset on every host.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=29500, show_default=True,
              help="network.master_port: the rendezvous port on the first host.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Where to write it [default: inventories/NAME.yml if ./inventories exists, else NAME.yml].")
def new(name, pattern, hostfile, slurm, partition, launcher, ssh_config, user, identity_file, known_hosts,
        workdir, venv, data, master_port, output):
    """Write a commented inventory NAME from hosts already written down elsewhere, then check it.

    One source: --from-ssh-config PATTERN, --hostfile FILE or --slurm. The file is validated before
    it is written and never overwrites an existing one.
    """
    from launcher import newinventory
    from launcher.errors import UserError

    if launcher == "poprun":
        raise UserError("inventory new writes torchrun inventories only: a poprun inventory needs the V-IPU server, "
                        "partitions and replica counts, which none of these sources know; copy inventories/pod16.yml or pod64.yml")
    ssh = {k: v for k, v in (("user", user), ("identity_file", identity_file), ("known_hosts", known_hosts)) if v}
    path = Path(output) if output else newinventory.default_path(name, Path.cwd())
    req = newinventory.Request(
        name=name, path=path, ssh_config=Path(ssh_config).expanduser(), from_ssh_config=pattern,
        hostfile=Path(hostfile) if hostfile else None, slurm=slurm, partition=partition, ssh=ssh,
        workdir=workdir, venv=venv, data=data, master_port=master_port)
    written = newinventory.write(req)
    click.echo(f"wrote {written}")
    click.echo(f"next: mae-launch check -i {written}")


@inventory.command("schema")
def schema():
    """Print the inventory's JSON Schema (inventories/inventory.schema.json is this output)."""
    from launcher.inventoryschema import schema_text

    click.echo(schema_text(), nl=False)
