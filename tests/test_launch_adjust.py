"""Launch adjustments: --host/--exclude (a subset, ranks recomputed, impossible topologies refused before
anything starts), --env K=V (never a secret) and -- ARGS (appended program arguments), seen through
`render` and the job commands."""
from click.testing import CliRunner

from launcher.cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env={"MAE_LAUNCH_INVENTORY": None, **(env or {})})


def test_subset_recomputes_torchrun_nodes_and_ranks():
    res = invoke("render", "pretrain", "-i", "gpu-cluster", "--run-id", "r1", "--exclude", "gpu01", "--commands")
    assert res.exit_code == 0, res.output
    assert "gpu02 ranks 0-7" in res.output and "--nnodes=1" in res.output and "--node_rank=0" in res.output
    assert "==> gpu01" not in res.output and "--master_addr=gpu02" in res.output
    full = invoke("render", "pretrain", "-i", "gpu-cluster", "--run-id", "r1", "--commands")
    assert "--nnodes=2" in full.output and "gpu02 ranks 8-15" in full.output


def test_subset_recomputes_poprun_hosts_and_refuses_an_impossible_one():
    res = invoke("render", "pretrain", "-i", "pod64", "--run-id", "r1", "--host", "pod64-host[0-1]", "--commands")
    assert res.exit_code == 0, res.output
    assert "pod64-host0 ranks 0,1; pod64-host1 ranks 2,3" in res.output
    assert "--host pod64-host0,pod64-host1" in res.output or "pod64-host0,pod64-host1" in res.output
    bad = invoke("render", "pretrain", "-i", "pod64", "--exclude", "pod64-host3")
    assert bad.exit_code == 2
    assert "this launch on pod64-host0, pod64-host1, pod64-host2 is impossible" in bad.output
    assert "4 instances cannot spread evenly over 3 hosts" in bad.output and "Traceback" not in bad.output


def test_env_and_program_args_reach_the_script():
    res = invoke("render", "pretrain", "-i", "gpu-cluster", "--run-id", "r1", "--env", "FOO=a b", "--env",
                 "NCCL_DEBUG=INFO", "--", "--epochs", "1", "--blr", "1e-3")
    assert res.exit_code == 0, res.output
    assert "export FOO='a b'" in res.output and "export NCCL_DEBUG=INFO" in res.output
    assert "--output_dir /checkpoints/mae/r1/pretrain --epochs 1 --blr 1e-3" in res.output
    secret = invoke("render", "pretrain", "-i", "gpu-cluster", "--env", "WANDB_API_KEY=leaked")
    assert secret.exit_code == 2 and "secret values come only from the inventory" in secret.output
    assert "leaked" not in secret.output.split("--env")[0]
    assert invoke("render", "pretrain", "-i", "gpu-cluster", "--host", "nope").exit_code == 2


def test_impossible_launch_starts_nothing(tmp_path):
    res = invoke("pretrain", "-i", "pod64", "--exclude", "pod64-host3", "--run-id", "never",
                 env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert res.exit_code == 2 and "is impossible" in res.output
    assert list(tmp_path.iterdir()) == []  # no run record: nothing started
