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
    # a field's docstring is its description (the JSON Schema of `inventory schema`, the docs' key list)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True)


class SshSettings(Spec):
    """SSH settings: inventory-wide under `ssh:`, overridable per host. Unset = ~/.ssh/config."""

    user: Optional[UserName] = None
    """login user (default: OpenSSH's view of the host, then the local user)"""
    port: Optional[Port] = None
    """SSH port (default: OpenSSH's view of the host, then 22)"""
    identity_file: Optional[PathStr] = None
    """private key file on this machine (default: the config's IdentityFile, the agent)"""
    proxy_jump: Optional[ProxyJump] = None
    """jump hosts, as ssh -J: `[user@]host[:port]`, several separated by commas"""
    known_hosts: Optional[PathStr] = None
    """known_hosts file the host key is checked against (default: the config's UserKnownHostsFile, then ~/.ssh/known_hosts)"""
    host_key_policy: Optional[Policy] = None  # inventory default: strict
    """unknown host keys: `strict` refuses them, `accept-new` records them (default: the config's StrictHostKeyChecking accept-new, else strict); a changed key is always refused"""
    connect_timeout: Optional[float] = Field(None, gt=0, le=3600)
    """seconds: bounds connecting and every silence of a connected host (default 10)"""
    host_timeout: Optional[float] = Field(None, gt=0, le=7 * 86400)  # default 60: see inventory.DEFAULT_HOST_TIMEOUT
    """seconds a host of a running job may stay unreachable before the run is stopped (default 60; shorter outages only warn)"""
    control_persist: Optional[float] = Field(None, ge=0, le=86400)  # default 60: see launcher/openssh.py; 0 = off
    """seconds deploy's OpenSSH connection to the host stays open, idle, for the next command (default 60; 0 = off)"""
    ssh_config: Optional[PathStr] = None  # the OpenSSH client config file read for these hosts (ssh -F); default ~/.ssh/config
    """the OpenSSH client config read for these hosts (ssh -F; default ~/.ssh/config)"""

    @field_validator("proxy_jump")
    @classmethod
    def _jumps(cls, value):
        if value is not None:
            addresses.parse_jumps(value)  # ValueError -> `file:line: ssh.proxy_jump: <why>`
        return value


class HostSpec(SshSettings):
    name: HostPattern
    """the host's name, or a range (`node[01-04]`, `h[1,3,5-7]`); also what OpenSSH looks up when `address` is unset"""
    address: Optional[Address] = None
    """the address to connect to (default: OpenSSH's HostName for the name)"""
    workdir: Optional[PathStr] = None
    """this host's workdir (default: paths.workdir)"""
    slots: Optional[int] = Field(None, ge=1, le=65536)
    """processes the host can run (as an MPI hostfile's slots): a job placing more there is refused"""
    connection: Literal["ssh", "local"] = "ssh"
    """`local`: this machine, no SSH"""


class ClusterSpec(Spec):
    """The V-IPU server that hands out partitions, and the allocation (cluster) they come from."""

    vipu_server_host: Address
    """the V-IPU server that hands out partitions (poprun --vipu-server-host)"""
    vipu_server_port: Optional[Port] = None  # poprun's default: 8090
    """its port (poprun's default: 8090)"""
    allocation: Optional[Name] = None
    """the V-IPU allocation (cluster) the partitions come from"""
    timeout: int = Field(3600, ge=1, le=86400)
    """seconds of poprun's --vipu-server-timeout (and IPUOF_VIPU_API_TIMEOUT)"""


class PartitionSpec(Spec):
    ipus: int = Field(ge=1, le=65536)
    """IPUs in the partition"""
    update: bool = True
    """--update-partition: create or resize it to what the job needs"""
    reset: Optional[bool] = None
    """--reset-partition before the job (unset: poprun's default)"""
    remove: bool = False
    """--remove-partition after the job"""


class PathsSpec(Spec):
    workdir: PathStr = "~/mae-launch"
    """where deploy puts the code on every host; relative paths below are inside it"""
    venv: Optional[PathStr] = ".venv"
    """the virtualenv on every host (setup creates it); activated for every job"""
    sdk_enable: list[PathStr] = []
    """the Poplar SDK's enable scripts, sourced before an IPU job"""
    data: Optional[PathStr] = None
    """the dataset folder on every host (train/ and validation/ class folders)"""
    output: PathStr = "output"
    """where jobs write `<run id>/<job>/` (checkpoints, metrics, logs)"""
    executable_cache: Optional[PathStr] = None
    """PopTorch's compiled-executable cache (IPU)"""
    requirements: Optional[PathStr] = None   # requirements file here for `setup` (default: the project's pins)
    """a requirements file on this machine for `setup` (default: the project's pinned dependencies)"""


class NetworkSpec(Spec):
    interface: Optional[Interface] = None
    """the network interface of the rendezvous and the collectives (GLOO/NCCL_SOCKET_IFNAME)"""
    master_port: Port = 29500
    """the rendezvous port on the controller"""
    rendezvous: Literal["static", "c10d"] = "static"
    """torchrun's rendezvous: `static` (--master_addr/--master_port) or `c10d`"""
    master_addr: Optional[Address] = None
    """the rendezvous address every host connects to (default: the controller's address on `interface`,
    else its HostName as OpenSSH resolves it; never an ssh alias)"""
    rendezvous_timeout: float = Field(120.0, gt=0, le=86400)
    """seconds for the ranks to start (the rendezvous to form) before the run is stopped on every host"""


class PoprunSpec(Spec):
    verbosity: int = Field(2, ge=0, le=3)
    """poprun's verbosity (2 → -vv)"""
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERR", "OFF"] = "WARN"
    """POPLAR_LOG_LEVEL of the job's processes"""


class SlurmSpec(Spec):
    """`scheduler: slurm`: what sbatch asks for. Unset keys are left to the cluster's defaults."""

    partition: Optional[Name] = None
    """sbatch --partition (default: the cluster's default partition)"""
    account: Optional[Name] = None
    """sbatch --account"""
    qos: Optional[Name] = None
    """sbatch --qos"""
    time: Optional[SlurmTime] = None
    """sbatch --time: minutes, or [days-]hours:minutes:seconds"""
    nodes: int = Field(1, ge=1, le=65536)
    """sbatch --nodes"""
    gpus_per_node: Optional[int] = Field(None, ge=1, le=4096)
    """sbatch --gpus-per-node"""
    cpus_per_task: Optional[int] = Field(None, ge=1, le=65536)
    """--cpus-per-task for sbatch and srun (srun does not inherit it since Slurm 22.05)"""
    constraint: Optional[Constraint] = None
    """sbatch --constraint (node features)"""
    gres: bool = False
    """`gpus_per_node` also as --gres=gpu:N (clusters whose Slurm predates --gpus-per-node, or whose
    GPUs are configured as generic resources only)"""
    exclusive: bool = False
    """--exclusive: the nodes are not shared with other jobs"""
    mem: Optional[SlurmMem] = None
    """--mem: memory per node (e.g. 64G; 0 = all of it)"""
    extra_sbatch_args: list[SbatchArg] = []
    """further sbatch options, one `--option=value` word each"""
    build_on: Optional[Literal["submit", "compute"]] = None
    """where `deploy` builds remap: on the submit host, or on a compute node through srun (when the
    nodes' architecture or toolchain differs from the login node's). Default: `compute` when
    gpus_per_node is set (a login node without a GPU would build remap without its CUDA kernels),
    else `submit`"""

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
    """the variable's value"""
    secret: bool = False
    """never written to a log, a record or a synced file (only to the job's own 0600 secrets file)"""

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
    """the named config of mae/configs.yml the job runs"""
    partition: Optional[Name] = None
    """the V-IPU partition (poprun)"""
    replicas: Optional[int] = Field(None, ge=1, le=65536)
    """model replicas (poprun --num-replicas)"""
    ipus_per_replica: Optional[int] = Field(None, ge=1, le=65536)
    """IPUs per replica (poprun --ipus-per-replica)"""
    instances: Optional[int] = Field(None, ge=1, le=65536)
    """poprun instances (host processes; default 1)"""
    nproc_per_node: Optional[int] = Field(None, ge=1, le=4096)
    """torchrun processes per host (default 1)"""
    args: list[str] = []
    """extra program arguments (python -m mae.<job> ...; any config key is a flag)"""
    launcher_args: list[str] = []
    """extra arguments of poprun or torchrun"""
    consumes: Optional[str] = None
    """the job whose checkpoint this one starts from (finetune: pretrain, validate: finetune)"""
    data: Optional[PathStr] = None
    """this job's dataset folder (default: paths.data)"""
    env: dict[EnvName, EnvValue] = {}
    """environment variables of this job (over the inventory's): name → value or {value, secret: true}"""

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
    **{f"{name}_": (Optional[JobSpec], Field(None, alias=name, description=f"the {name} job (python -m mae.{name})"))
       for name in JOB_NAMES})


SetupLine = Annotated[str, StringConstraints(pattern=PATH_PATTERN, max_length=8192)]


class SetupSpec(Spec):
    """`setup:` as a mapping; a plain list is its `commands`. `extras`: optional parts of the project
    installed into the venv too (`wandb`: also installed when a job passes `--wandb`)."""

    commands: list[SetupLine] = []
    """shell lines run in the workdir of every host first (templates: host, workdir, venv, python, the q filter)"""
    extras: list[Literal["wandb"]] = []
    """optional parts of the project installed into the venv too"""


class InventorySpec(Spec):
    name: Name
    """the inventory's name (in run records and messages)"""
    launcher: Literal["poprun", "torchrun"]
    """`poprun` (IPU-PODs) or `torchrun` (GPUs and CPUs)"""
    scheduler: Literal["ssh", "slurm"] = "ssh"
    """`ssh`: mae-launch starts the job on the hosts; `slurm`: sbatch on the submit host"""
    slurm: Optional[SlurmSpec] = None
    ssh: SshSettings = SshSettings()
    hosts: Optional[list[HostSpec]] = Field(None, min_length=1)
    """the hosts: names, ranges or mappings"""
    controller: Optional[Name] = None
    """the host where poprun runs and torchrun's rendezvous and rank 0 live (default: the first host)"""
    cluster: Optional[ClusterSpec] = None
    partitions: dict[Name, PartitionSpec] = {}
    """V-IPU partitions: name → {ipus, update, reset, remove} or the number of IPUs"""
    paths: PathsSpec = PathsSpec()
    """paths on the hosts (workdir, venv, data, output, ...)"""
    network: NetworkSpec = NetworkSpec()
    """the rendezvous and the network the collectives use"""
    poprun: PoprunSpec = PoprunSpec()
    """poprun's own settings"""
    env: dict[EnvName, EnvValue] = {}
    """environment variables of every job: name → value or {value, secret: true}"""
    setup: SetupSpec = SetupSpec()
    jobs: JobsSpec
    """the jobs: pretrain, finetune, validate"""

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
