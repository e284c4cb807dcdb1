"""The inventory schema (pydantic v2): what a YAML inventory may contain, key by key.

Unknown keys are errors (a typo never goes unnoticed). SSH values left unset fall back to
`~/.ssh/config` and then to ssh's own defaults when the connection is made, so a host alias
configured there needs nothing here. Cross-field rules (topology, references) live in
launcher/inventory.py.
"""
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, field_validator, model_validator

from launcher import addresses
from launcher.jobs import JOB_NAMES

# Names that end up in file names, command options and ssh arguments: no spaces, no leading '-'.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"
HOST_PATTERN = r"^[A-Za-z0-9_\[][A-Za-z0-9._,\[\]-]*$"
ADDRESS_PATTERN = r"^[A-Za-z0-9_:\[][A-Za-z0-9._:%\[\]-]*$"
USER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]*\$?$"
PROXY_PATTERN = r"^[A-Za-z0-9_\[][A-Za-z0-9._@:%,\[\]-]*$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
IFACE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._:-]*$"
# Paths may hold any character but NUL (they are always shell-quoted); `~/` means the host's home.
PATH_PATTERN = r"^[^\x00]+$"
# Values written into `#SBATCH` lines (not a shell: one word, no quotes, spaces or backslashes).
SLURM_TIME_PATTERN = r"^([0-9]+-)?[0-9]+(:[0-9]+){0,2}$|^(UNLIMITED|INFINITE|unlimited|infinite)$"
CONSTRAINT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:*&|\[\]()-]*$"
SBATCH_ARG_PATTERN = r"^--?[A-Za-z][A-Za-z0-9-]*(=[^\s'\"\\#]+)?$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
HostPattern = Annotated[str, StringConstraints(pattern=HOST_PATTERN, max_length=256)]
Address = Annotated[str, StringConstraints(pattern=ADDRESS_PATTERN, max_length=256)]
UserName = Annotated[str, StringConstraints(pattern=USER_PATTERN, max_length=64)]
ProxyJump = Annotated[str, StringConstraints(pattern=PROXY_PATTERN, max_length=512)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_PATTERN, max_length=128)]
Interface = Annotated[str, StringConstraints(pattern=IFACE_PATTERN, max_length=64)]
PathStr = Annotated[str, StringConstraints(pattern=PATH_PATTERN, max_length=4096)]
SlurmTime = Annotated[str, StringConstraints(pattern=SLURM_TIME_PATTERN, max_length=32)]
Constraint = Annotated[str, StringConstraints(pattern=CONSTRAINT_PATTERN, max_length=512)]
SbatchArg = Annotated[str, StringConstraints(pattern=SBATCH_ARG_PATTERN, max_length=512)]
SlurmMem = Annotated[str, StringConstraints(pattern=r"^[0-9]+[KMGTkmgt]?$", max_length=32)]
Port = Annotated[int, Field(ge=1, le=65535)]
Policy = Literal["strict", "accept-new"]


def _scalar_to_str(value):
    """YAML gives numbers and booleans for `2`, `1.5`, `true`: accept them where text is meant."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SshSettings(Spec):
    """SSH settings: inventory-wide under `ssh:`, overridable per host. Unset = ~/.ssh/config."""

    user: Optional[UserName] = None
    port: Optional[Port] = None
    identity_file: Optional[PathStr] = None
    proxy_jump: Optional[ProxyJump] = None
    known_hosts: Optional[PathStr] = None
    host_key_policy: Optional[Policy] = None  # inventory default: strict
    connect_timeout: Optional[float] = Field(None, gt=0, le=3600)
    host_timeout: Optional[float] = Field(None, gt=0, le=7 * 86400)  # default 60: see inventory.DEFAULT_HOST_TIMEOUT
    control_persist: Optional[float] = Field(None, ge=0, le=86400)  # default 60: see launcher/openssh.py; 0 = off
    ssh_config: Optional[PathStr] = None  # the OpenSSH client config file read for these hosts (ssh -F); default ~/.ssh/config

    @field_validator("proxy_jump")
    @classmethod
    def _jumps(cls, value):
        if value is not None:
            addresses.parse_jumps(value)  # ValueError -> `file:line: ssh.proxy_jump: <why>`
        return value


class HostSpec(SshSettings):
    name: HostPattern
    address: Optional[Address] = None
    workdir: Optional[PathStr] = None
    slots: Optional[int] = Field(None, ge=1, le=65536)
    connection: Literal["ssh", "local"] = "ssh"


class ClusterSpec(Spec):
    """The V-IPU server that hands out partitions, and the allocation (cluster) they come from."""

    vipu_server_host: Address
    vipu_server_port: Optional[Port] = None  # poprun's default: 8090
    allocation: Optional[Name] = None
    timeout: int = Field(3600, ge=1, le=86400)


class PartitionSpec(Spec):
    ipus: int = Field(ge=1, le=65536)
    update: bool = True
    reset: Optional[bool] = None
    remove: bool = False


class PathsSpec(Spec):
    workdir: PathStr = "~/mae-launch"
    venv: Optional[PathStr] = ".venv"
    sdk_enable: list[PathStr] = []
    data: Optional[PathStr] = None
    output: PathStr = "output"
    executable_cache: Optional[PathStr] = None
    requirements: Optional[PathStr] = None   # requirements file here for `setup` (default: the project's pins)


class NetworkSpec(Spec):
    interface: Optional[Interface] = None
    master_port: Port = 29500
    rendezvous: Literal["static", "c10d"] = "static"
    # the rendezvous address every host connects to (default: the controller's address on `interface`,
    # else its HostName as OpenSSH resolves it)
    master_addr: Optional[Address] = None
    # seconds for the ranks to start (the rendezvous to form) before the run is stopped on every host
    rendezvous_timeout: float = Field(120.0, gt=0, le=86400)


class PoprunSpec(Spec):
    verbosity: int = Field(2, ge=0, le=3)
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERR", "OFF"] = "WARN"


class SlurmSpec(Spec):
    """`scheduler: slurm`: what sbatch asks for. Unset keys are left to the cluster's defaults."""

    partition: Optional[Name] = None
    account: Optional[Name] = None
    qos: Optional[Name] = None
    time: Optional[SlurmTime] = None
    nodes: int = Field(1, ge=1, le=65536)
    gpus_per_node: Optional[int] = Field(None, ge=1, le=4096)
    cpus_per_task: Optional[int] = Field(None, ge=1, le=65536)
    constraint: Optional[Constraint] = None
    # `gpus_per_node` also as --gres=gpu:N (clusters whose Slurm predates --gpus-per-node, or whose
    # GPUs are configured as generic resources only)
    gres: bool = False
    exclusive: bool = False              # --exclusive: the nodes are not shared with other jobs
    mem: Optional[SlurmMem] = None       # --mem: memory per node (e.g. 64G; 0 = all of it)
    extra_sbatch_args: list[SbatchArg] = []
    # where `deploy` builds remap: on the submit host, or on a compute node through srun (when the
    # nodes' architecture or toolchain differs from the login node's). Default: `compute` when
    # gpus_per_node is set (a login node without a GPU would build remap without its CUDA kernels),
    # else `submit`.
    build_on: Optional[Literal["submit", "compute"]] = None

    @model_validator(mode="after")
    def _build_on_default(self):
        if self.build_on is None:
            object.__setattr__(self, "build_on", "compute" if self.gpus_per_node else "submit")
        return self

    @field_validator("time", "mem", mode="before")
    @classmethod
    def _time_text(cls, value):  # `time: 60` (minutes), `mem: 0` are ints in YAML
        return _scalar_to_str(value) if not isinstance(value, bool) else value


class EnvValue(Spec):
    value: str
    secret: bool = False

    def __repr__(self) -> str:  # never show a secret by accident
        return f"EnvValue(value={'***' if self.secret else repr(self.value)}, secret={self.secret})"

    __str__ = __repr__

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value):
        return _scalar_to_str(value)


def _env_before(value):
    if isinstance(value, dict):
        return {k: (v if isinstance(v, dict) else {"value": v}) for k, v in value.items()}
    return value


class JobSpec(Spec):
    config: Name
    partition: Optional[Name] = None
    replicas: Optional[int] = Field(None, ge=1, le=65536)
    ipus_per_replica: Optional[int] = Field(None, ge=1, le=65536)
    instances: Optional[int] = Field(None, ge=1, le=65536)
    nproc_per_node: Optional[int] = Field(None, ge=1, le=4096)
    args: list[str] = []
    launcher_args: list[str] = []
    consumes: Optional[str] = None
    data: Optional[PathStr] = None
    env: dict[EnvName, EnvValue] = {}

    @field_validator("args", "launcher_args", mode="before")
    @classmethod
    def _words(cls, value):
        return [_scalar_to_str(v) for v in value] if isinstance(value, list) else value

    @field_validator("args", "launcher_args")
    @classmethod
    def _no_nul(cls, value):
        if any("\x00" in v for v in value):
            raise ValueError("arguments cannot contain NUL characters")
        return value

    _env = field_validator("env", mode="before")(classmethod(lambda cls, v: _env_before(v)))


# One optional JobSpec per job kind of launcher/jobs.py (field `<name>_`, written `<name>:` in YAML).
JobsSpec = create_model(
    "JobsSpec", __config__=ConfigDict(extra="forbid", frozen=True, populate_by_name=True),
    **{f"{name}_": (Optional[JobSpec], Field(None, alias=name)) for name in JOB_NAMES})


SetupLine = Annotated[str, StringConstraints(pattern=PATH_PATTERN, max_length=8192)]


class SetupSpec(Spec):
    """`setup:` as a mapping; a plain list is its `commands`. `extras`: optional parts of the project
    installed into the venv too (`wandb`: also installed when a job passes `--wandb`)."""

    commands: list[SetupLine] = []
    extras: list[Literal["wandb"]] = []


class InventorySpec(Spec):
    name: Name
    launcher: Literal["poprun", "torchrun"]
    scheduler: Literal["ssh", "slurm"] = "ssh"
    slurm: Optional[SlurmSpec] = None
    ssh: SshSettings = SshSettings()
    hosts: Optional[list[HostSpec]] = Field(None, min_length=1)
    controller: Optional[Name] = None
    cluster: Optional[ClusterSpec] = None
    partitions: dict[Name, PartitionSpec] = {}
    paths: PathsSpec = PathsSpec()
    network: NetworkSpec = NetworkSpec()
    poprun: PoprunSpec = PoprunSpec()
    env: dict[EnvName, EnvValue] = {}
    setup: SetupSpec = SetupSpec()
    jobs: JobsSpec

    @field_validator("setup", mode="before")
    @classmethod
    def _setup_commands(cls, value):
        return {"commands": value} if isinstance(value, list) else value

    @field_validator("hosts", mode="before")
    @classmethod
    def _host_names(cls, value):
        return [{"name": h} if isinstance(h, str) else h for h in value] if isinstance(value, list) else value

    @field_validator("partitions", mode="before")
    @classmethod
    def _partition_sizes(cls, value):
        if isinstance(value, dict):
            return {k: ({"ipus": v} if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in value.items()}
        return value

    _env = field_validator("env", mode="before")(classmethod(lambda cls, v: _env_before(v)))
