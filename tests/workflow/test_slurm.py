"""The workflow on a real SLURM cluster through `--profile profiles/slurm`.

The test starts a one-node cluster on this machine itself: Debian's slurm-wlm and munge
(installed here when missing, as root), two fake GPUs (character devices named in
gres.conf), no accounting database. It runs the tiny study, then one with a training job
that fails, and stops every daemon it started, by PID. It needs root (daemons, mknod,
/etc/slurm/slurm.conf, which the jobs' nested srun reads); elsewhere it is skipped with
the reason.
"""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import REPO, ensure_debian_packages

pytestmark = pytest.mark.workflow

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
TINY = {
    "synthetic": {"enabled": True, "train_per_class": 10, "test_per_class": 4, "seed": 0},
    "snn": {"T": [4], "main_T": 4, "epochs": 2, "batch_size": 20, "lr": 0.01,
            "channels": [4, 8, 8], "hidden": 16},
    "cnn": {"epochs": 2, "batch_size": 20, "lr": 0.01, "channels": [4, 8, 8], "hidden": 16},
}
# small jobs on a 4-CPU, 8 GB node; the first status check after 1 s instead of 40
TEST_OVERRIDES = [
    "--slurm-init-seconds-before-status-checks", "1", "--slurm-no-account",
    "--default-resources", "mem_mb=500", "cpus_per_task=1", "runtime=10",
    "--set-resources", "train_snn:cpus_per_task=1", "train_snn:mem_mb=1000",
    "train_cnn:cpus_per_task=1", "train_cnn:mem_mb=1000",
    "--set-threads", "train_snn=1", "train_cnn=1", "nmnist_events=1", "frames=1",
]
WORKFLOW_TIMEOUT = 600  # the plugin's sacct status check would hang forever: never wait on it


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _daemon(command, pid_file, started, **kwargs):
    """Start a daemon that forks itself away; record its PID from its pid file."""
    subprocess.run(command, check=True, capture_output=True, timeout=60, **kwargs)
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{command[0]} wrote no pid file {pid_file}")
        time.sleep(0.1)
    started.append(int(pid_file.read_text()))


def _stop(pids):
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break  # exited; its parent (init) reaps it
            time.sleep(0.1)
        else:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld, slurmd and munged needs root")
    reason = ensure_debian_packages(["slurmctld", "slurmd", "munged", "sbatch", "squeue"],
                                    ["slurm-wlm", "munge"])
    if reason:
        pytest.skip(reason)
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        pytest.skip(f"{SYSTEM_CONF} exists: a SLURM installation is configured here, and the "
                    "test does not touch it")
    root = Path(tempfile.mkdtemp(prefix="snnflow-slurm-"))
    root.chmod(0o755)
    host = socket.gethostname().split(".")[0]
    started = []
    try:
        munge_dir = root / "munge"
        munge_dir.mkdir()
        shutil.chown(munge_dir, "munge", "munge")
        _daemon(["runuser", "-u", "munge", "--", "munged", f"--socket={munge_dir}/socket",
                 f"--pid-file={munge_dir}/munged.pid", f"--log-file={munge_dir}/munged.log",
                 f"--seed-file={munge_dir}/seed"], munge_dir / "munged.pid", started)
        for i in range(2):  # two fake GPUs: character devices for gres.conf
            os.mknod(root / f"gpu{i}", 0o600 | 0o020000, os.makedev(195, i))
        ctld_port, slurmd_port = _free_ports(2)
        for sub in ("state", "spool", "log"):
            (root / sub).mkdir()
        (root / "slurm.conf").write_text(f"""
ClusterName=snnflowtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_dir}/socket
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
DefMemPerCPU=500
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs=4 RealMemory=8000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
        (root / "gres.conf").write_text(f"NodeName={host} Name=gpu File={root}/gpu[0-1]\n")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):  # the jobs' nested srun reads the default path
            (SYSTEM_CONF.parent / name).symlink_to(root / name)
        env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
        _daemon(["slurmctld", "-i"], root / "slurmctld.pid", started, env=env)
        _daemon(["slurmd"], root / "slurmd.pid", started, env=env)
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                           text=True, env=env).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("the SLURM node did not become idle: "
                                   + (root / "log" / "slurmd.log").read_text()[-2000:])
            time.sleep(0.2)
        yield env
    finally:
        _stop(started)
        for name in ("slurm.conf", "gres.conf"):
            link = SYSTEM_CONF.parent / name
            if link.is_symlink() and str(root) in os.readlink(link):
                link.unlink()
        shutil.rmtree(root, ignore_errors=True)


def run_snakemake(workdir, env, config):
    (workdir / "case.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile",
         str(REPO / "profiles" / "slurm"), "--configfile", "case.yaml", *TEST_OVERRIDES],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        output, _ = process.communicate(timeout=WORKFLOW_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"snakemake on SLURM ran past {WORKFLOW_TIMEOUT} s:\n{output}")
    return process.returncode, output


def slurm_jobs(env):
    """{job id: fields} of every job slurmctld still knows (MinJobAge keeps finished ones)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True,
                         env=env, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[fields["JobId"]] = fields
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm-study")
    shutil.copy(REPO / "config.yaml", folder / "config.yaml")
    return folder


def test_the_study_runs_as_slurm_jobs_one_gpu_each(slurm_cluster, workdir):
    rc, output = run_snakemake(workdir, slurm_cluster, TINY)
    assert rc == 0, output
    assert (workdir / "results" / "report.html").exists()
    submitted = {jobid: rule for jobid, rule in re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S+/rule_(\w+)/\S*?\d+\.log\)", output)}
    assert sorted(submitted.values()) == sorted(
        ["synthetic_dataset", "nmnist_events", "frames", "mnist_cache", "data_summary",
         "train_snn", "train_cnn", "export_nir", "verify_nir", "neurobench", "neurobench",
         "report"]), output
    jobs = slurm_jobs(slurm_cluster)
    training = {jobid: jobs[jobid] for jobid, rule in submitted.items()
                if rule.startswith("train")}
    for fields in training.values():  # --gpus=1 for each training job, none for the rest
        assert "gpu:1" in fields.get("TresPerJob", "") and fields["JobState"] == "COMPLETED"
    for jobid, rule in submitted.items():
        if not rule.startswith("train"):
            assert "gpu" not in jobs[jobid].get("TresPerJob", "")

    def interval(fields):
        return tuple(datetime.fromisoformat(fields[k]).timestamp()
                     for k in ("StartTime", "EndTime"))
    for moment in {interval(f)[0] for f in training.values()}:
        running = [f for f in training.values()
                   if interval(f)[0] <= moment < interval(f)[1]]
        assert len(running) <= 2, "more GPU jobs ran at once than the node has GPUs"
    runs = [json.loads(path.read_text()) for path in
            (workdir / "results" / "runs").glob("*/seed0/run.json")]
    assert len(runs) == 2
    for info in runs:  # SLURM chose the GPU; the job claimed no slot of its own
        assert info["cuda_visible_devices"] in ("0", "1") and info["gpu_slot"] is None
        assert "set by the scheduler" in info["placement"]
    for a, b in itertools.combinations(runs, 2):
        if a["started"] < b["finished"] and b["started"] < a["finished"]:
            assert a["cuda_visible_devices"] != b["cuda_visible_devices"]


def test_a_failing_job_fails_the_workflow_naming_its_slurm_log(slurm_cluster, workdir):
    failing = {**TINY, "snn": {**TINY["snn"], "T": [4], "batch_size": 1000}}
    rc, output = run_snakemake(workdir, slurm_cluster, failing)
    assert rc != 0
    logs = re.findall(r"(/\S+/slurm_logs/rule_train_snn/\S*?\d+\.log)", output)
    assert logs, output
    slurm_log = Path(logs[0])
    assert slurm_log.exists()
    assert "error: config key snn.batch_size: 1000 is larger than the 100 training samples" \
        in slurm_log.read_text()
