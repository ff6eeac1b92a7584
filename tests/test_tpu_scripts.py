"""tpu_scripts/*.sh: syntax, --help, and the commands their --dry-run prints (no gcloud is run).

A fake gcloud/gsutil that fails loudly is first on PATH, so any real call shows up.
"""
import os
import pathlib
import shlex
import stat
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "tpu_scripts"
SCRIPTS = ["create_tpu.sh", "install.sh", "train.sh", "fetch_results.sh", "delete_tpu.sh"]
FAKE = """#!/bin/sh
echo "FAKE $(basename "$0") CALLED: $*" >&2
echo "$(basename "$0") $*" >> "{marker}"
exit 99
"""


@pytest.fixture
def env(tmp_path):
  """Environment with the settings set and a failing fake gcloud/gsutil first on PATH."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  marker = tmp_path / "called.txt"
  for tool in ("gcloud", "gsutil"):
    fake = bin_dir / tool
    fake.write_text(FAKE.format(marker=marker))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  result = {k: v for k, v in os.environ.items()
            if k not in ("ACCELERATOR_TYPE", "RUNTIME_VERSION")}
  result.update({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PROJECT": "my-proj",
                 "BUCKET": "my-bucket", "ZONE": "us-central2-b", "TPU_NAME": "my-tpu",
                 "TMPDIR": str(tmp_path), "FAKE_MARKER": str(marker)})
  return result


def run_script(env, script, *args, input=""):
  return subprocess.run([str(SCRIPTS_DIR / script), *args], env=env, capture_output=True,
                        text=True, timeout=60, input=input, cwd=ROOT)


def gcloud_called(env) -> bool:
  return pathlib.Path(env["FAKE_MARKER"]).exists()


def dry_run(env, script, *args):
  """Runs a --dry-run; returns the printed commands as argv lists."""
  result = run_script(env, script, "--dry-run", *args)
  assert result.returncode == 0, result.stderr
  assert not gcloud_called(env), result.stderr
  lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
  assert lines and all(line.startswith("+ ") for line in lines), result.stdout
  return [shlex.split(line[2:]) for line in lines]


def gcloud_commands(commands, *prefix):
  return [c for c in commands if c[:len(prefix) + 1] == ["gcloud", *prefix]]


def flag(command, name):
  values = [a.split("=", 1)[1] for a in command if a.startswith(f"--{name}=")]
  assert len(values) == 1, (name, command)
  return values[0]


def remote_command(commands):
  (ssh,) = gcloud_commands(commands, "compute", "tpus", "tpu-vm", "ssh")
  return flag(ssh, "command")


@pytest.mark.parametrize("script", SCRIPTS + ["common.sh"])
def test_bash_syntax(script):
  path = SCRIPTS_DIR / script
  result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  if script != "common.sh":
    assert os.access(path, os.X_OK)
    assert "set -euo pipefail" in path.read_text()


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(env, script):
  for flag_ in ("--help", "-h"):
    result = run_script(env, script, flag_)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {script}")
    assert "--dry-run" in result.stdout
  assert not gcloud_called(env)


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_project(env, script):
  del env["PROJECT"]
  args = {"train.sh": ["--config", "model_f", "--model_dir", "x"],
          "fetch_results.sh": ["--model_dir", "x"]}.get(script, [])
  result = run_script(env, script, "--dry-run", *args)
  assert result.returncode != 0
  assert "missing --project" in result.stderr
  assert not gcloud_called(env)


@pytest.mark.parametrize("script", SCRIPTS)
def test_unknown_argument(env, script):
  result = run_script(env, script, "--dry-run", "--bogus")
  assert result.returncode != 0
  assert "unknown argument: --bogus" in result.stderr


def test_create_defaults(env):
  (command,) = dry_run(env, "create_tpu.sh")
  assert command == ["gcloud", "compute", "tpus", "tpu-vm", "create", "my-tpu",
                     "--zone=us-central2-b", "--accelerator-type=v3-8",
                     "--version=tpu-vm-tf-2.20.0-pjrt", "--project=my-proj"]


def test_create_flags_override_env(env):
  env["ACCELERATOR_TYPE"] = "v2-8"
  (command,) = dry_run(env, "create_tpu.sh", "--zone=europe-west4-a", "--tpu-name", "other",
                       "--version", "tpu-vm-tf-2.19.0-pjrt", "--spot")
  assert command[5] == "other"
  assert flag(command, "zone") == "europe-west4-a"
  assert flag(command, "accelerator-type") == "v2-8"
  assert flag(command, "version") == "tpu-vm-tf-2.19.0-pjrt"
  assert command[-1] == "--spot"
  (command,) = dry_run(env, "create_tpu.sh", "--preemptible", "--accelerator_type", "v4-8")
  assert "--preemptible" in command and "--spot" not in command
  assert flag(command, "accelerator-type") == "v4-8"


def test_create_rejects_spot_and_preemptible(env):
  result = run_script(env, "create_tpu.sh", "--dry-run", "--spot", "--preemptible")
  assert result.returncode != 0
  assert "exclude each other" in result.stderr


def test_flag_needs_a_value(env):
  result = run_script(env, "create_tpu.sh", "--dry-run", "--zone")
  assert result.returncode != 0
  assert "--zone needs a value" in result.stderr


def test_install(env):
  commands = dry_run(env, "install.sh")
  archive_cmd, scp, ssh = commands
  assert archive_cmd[:3] == ["git", "-C", str(ROOT)] and "archive" in archive_cmd
  archive = archive_cmd[archive_cmd.index("-o") + 1]
  head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                        text=True, check=True).stdout.strip()
  assert archive_cmd[-1] == head
  assert scp[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", archive]
  assert scp[6] == "my-tpu:mel-src.tar.gz"
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
  for command in (scp, ssh):
    assert flag(command, "zone") == "us-central2-b"
    assert flag(command, "project") == "my-proj"
    assert flag(command, "worker") == "all"
  remote = remote_command(commands)
  assert "tar -xzf mel-src.tar.gz" in remote
  assert "python3.11 -m venv mel-venv" in remote
  assert "tensorflow-tpu==2.20.0 -f https://storage.googleapis.com/libtpu-releases/index.html" \
      in remote
  assert "constraints.txt" in remote and "-e ./mel" in remote
  syntax = subprocess.run(["bash", "-n", "-c", remote], capture_output=True, text=True)
  assert syntax.returncode == 0, syntax.stderr
  assert not pathlib.Path(archive).exists()


def test_install_flags(env):
  commands = dry_run(env, "install.sh", "--tf_tpu_version=2.19.0", "--python", "python3.12",
                     "--worker", "0")
  remote = remote_command(commands)
  assert "tensorflow-tpu==2.19.0" in remote and "python3.12 -m venv" in remote
  assert flag(commands[1], "worker") == "0"
  result = run_script(env, "install.sh", "--dry-run", "--ref", "no-such-ref")
  assert result.returncode != 0 and "not a commit" in result.stderr


def trainer_argv(tmp_path, remote):
  """Runs train.sh's remote command in a fake home; returns the argv the trainer got."""
  home = tmp_path / "home"
  (home / "mel").mkdir(parents=True)
  python = home / "mel-venv" / "bin" / "python"
  python.parent.mkdir(parents=True)
  python.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > ../argv.tmp && mv ../argv.tmp ../argv\n')
  python.chmod(0o755)
  result = subprocess.run(["bash", "-c", remote], cwd=home, capture_output=True, text=True,
                          timeout=30)
  assert result.returncode == 0, result.stderr
  assert "started mel.train" in result.stdout
  argv_file = home / "argv"
  # The trainer starts in the background; on a loaded machine that can take seconds, and
  # the wait ends as soon as it has written its argv.
  deadline = time.time() + 120
  while not argv_file.exists() and time.time() < deadline:
    time.sleep(0.05)
  assert argv_file.exists(), "the background trainer did not start within 120 s"
  assert (home / "mel-logs" / "train.pid").exists()
  return argv_file.read_text().splitlines(), home


def test_train(env, tmp_path):
  commands = dry_run(env, "train.sh", "--config", "model_f_plus", "--model_dir", "fplus/round1",
                     "--params_override",
                     "train.steps=250000,data.hard_negatives=gs://my-bucket/neg/*.tfrecord.gz")
  (ssh,) = commands
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
  assert flag(ssh, "zone") == "us-central2-b"
  assert flag(ssh, "project") == "my-proj"
  assert flag(ssh, "worker") == "0"
  remote = remote_command(commands)
  assert "--tpu local" in remote
  assert "gs://my-bucket/mel/models/fplus/round1" in remote
  assert "nohup" in remote and "mel-logs/fplus-round1.log" in remote
  argv, home = trainer_argv(tmp_path, remote)
  assert argv == [
      "-u", "-m", "mel.train", "--tpu", "local", "--config", "configs/model_f_plus.yaml",
      "--model_dir", "gs://my-bucket/mel/models/fplus/round1", "--params_override",
      "data.mining_dir=gs://my-bucket/mel/mining,"
      "train.init_checkpoint=gs://my-bucket/mbert/multi_cased_L-12_H-768_A-12/bert_model.ckpt,"
      "train.steps=250000,data.hard_negatives=gs://my-bucket/neg/*.tfrecord.gz"]
  assert "mel.train" in (home / "mel-logs" / "fplus-round1.log").read_text()


def test_train_explicit_paths(env, tmp_path):
  commands = dry_run(env, "train.sh", "--config=configs/demo_cpu.yaml",
                     "--model-dir=gs://other/models/demo/", "--mining_dir", "gs://other/mining",
                     "--tpu_name", "tpu2", "--zone", "europe-west4-a")
  (ssh,) = commands
  assert ssh[5] == "tpu2" and flag(ssh, "zone") == "europe-west4-a"
  argv, _ = trainer_argv(tmp_path, remote_command(commands))
  assert argv[argv.index("--config") + 1] == "configs/demo_cpu.yaml"
  assert argv[argv.index("--model_dir") + 1] == "gs://other/models/demo"
  # demo_cpu.yaml has no init_checkpoint placeholder to fill in.
  assert argv[argv.index("--params_override") + 1] == "data.mining_dir=gs://other/mining"


def test_train_init_checkpoint(env, tmp_path):
  commands = dry_run(env, "train.sh", "--config", "model_e", "--model_dir", "e",
                     "--init_checkpoint", "gs://x/bert_model.ckpt")
  argv, _ = trainer_argv(tmp_path, remote_command(commands))
  assert argv[argv.index("--params_override") + 1] == (
      "data.mining_dir=gs://my-bucket/mel/mining,train.init_checkpoint=gs://x/bert_model.ckpt")


def test_train_refuses_a_second_trainer(env, tmp_path):
  commands = dry_run(env, "train.sh", "--config", "model_f", "--model_dir", "f")
  remote = remote_command(commands)
  _, home = trainer_argv(tmp_path, remote)
  sleeper = subprocess.Popen(["bash", "-c", "exec -a mel.train sleep 30"])
  try:
    (home / "mel-logs" / "train.pid").write_text(f"{sleeper.pid}\n")
    result = subprocess.run(["bash", "-c", remote], cwd=home, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "already running" in result.stderr
  finally:
    sleeper.kill()
    sleeper.wait()


def test_train_usage_says_it_resumes(env):
  result = run_script(env, "train.sh", "--help")
  assert "resumes automatically from the latest checkpoint" in result.stdout
  assert "re-running the very same command" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--model_dir", "x"], "missing --config"),
    (["--config", "model_f"], "missing --model_dir"),
    (["--config", "model_g", "--model_dir", "x"], "no configs/model_g.yaml"),
    (["--config", "model_f", "--model_dir", "/local/dir"], "--model_dir must be gs://"),
    (["--config", "model_f", "--model_dir", "x", "--params_override"], "needs a value"),
])
def test_train_bad_arguments(env, args, message):
  result = run_script(env, "train.sh", "--dry-run", *args)
  assert result.returncode != 0
  assert message in result.stderr
  assert not result.stdout.strip()
  assert not gcloud_called(env)


def test_train_needs_bucket_or_paths(env):
  del env["BUCKET"]
  result = run_script(env, "train.sh", "--dry-run", "--config", "model_f",
                      "--model_dir", "gs://b/m")
  assert result.returncode != 0 and "missing --mining_dir" in result.stderr
  result = run_script(env, "train.sh", "--dry-run", "--config", "model_f",
                      "--model_dir", "gs://b/m", "--mining_dir", "gs://b/mining")
  assert result.returncode != 0 and "placeholder" in result.stderr
  dry_run(env, "train.sh", "--config", "model_f", "--model_dir", "gs://b/m",
          "--mining_dir", "gs://b/mining", "--init_checkpoint", "gs://b/ck")


def test_fetch_results(env, tmp_path):
  out = tmp_path / "results"
  commands = dry_run(env, "fetch_results.sh", "--model_dir", "fplus/round0", "--out", str(out))
  model_dir = "gs://my-bucket/mel/models/fplus/round0"
  assert commands[0] == ["mkdir", "-p", str(out)]
  rsync = gcloud_commands(commands, "storage", "rsync")
  assert [c[3:5] for c in rsync] == [[f"{model_dir}/export", f"{out}/export"],
                                     [f"{model_dir}/train", f"{out}/train"]]
  assert all("--recursive" in c for c in rsync)
  copies = gcloud_commands(commands, "storage", "cp")
  assert [c[3] for c in copies] == [f"{model_dir}/config.yaml", f"{model_dir}/train_summary.json"]
  (scp,) = gcloud_commands(commands, "compute", "tpus", "tpu-vm", "scp")
  assert scp[5:7] == ["my-tpu:mel-logs/fplus-round0.log", f"{out}/fplus-round0.log"]
  assert flag(scp, "zone") == "us-central2-b"
  assert not out.exists()
  commands = dry_run(env, "fetch_results.sh", "--model_dir", "fplus/round0", "--no-log")
  assert commands[0] == ["mkdir", "-p", str(ROOT / "out" / "tpu" / "fplus-round0")]
  assert not gcloud_commands(commands, "compute", "tpus", "tpu-vm", "scp")


def test_fetch_results_needs_model_dir(env):
  result = run_script(env, "fetch_results.sh", "--dry-run")
  assert result.returncode != 0 and "missing --model_dir" in result.stderr


def test_delete(env):
  commands = dry_run(env, "delete_tpu.sh", "--tpu_name", "old-tpu")
  assert commands == [["gcloud", "compute", "tpus", "tpu-vm", "delete", "old-tpu",
                       "--zone=us-central2-b", "--project=my-proj", "--quiet"]]


def test_delete_asks_first(env):
  for answer in ("", "n\n", "yes please\n"):
    result = run_script(env, "delete_tpu.sh", input=answer)
    assert result.returncode == 1 and "not deleted" in result.stderr
  assert not gcloud_called(env)


def test_fake_gcloud_catches_real_calls(env):
  """Without --dry-run the fake gcloud is what runs: proof the dry-run checks above would see it."""
  result = run_script(env, "delete_tpu.sh", input="y\n")
  assert result.returncode == 99
  assert "FAKE gcloud CALLED: compute tpus tpu-vm delete my-tpu" in result.stderr
  assert gcloud_called(env)
