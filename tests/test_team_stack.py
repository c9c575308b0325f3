"""A team's stack: state in an S3 bucket (a real versitygw server on loopback) through Pulumi's DIY backend, chosen
with PULUMI_BACKEND_URL and AWS-style credentials in the environment, with `make` in a fresh clone under the real
engine: the state lives in the bucket and nothing in the clone, Pulumi's lock stops a second `up` while one runs,
and a stack moved from a file backend into the bucket (README: A team's stack) previews with no changes.

One scenario (see tests/conftest.py): the steps share the server, the bucket and the clone.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from harness.processes import log_tail
from harness.project_clone import ProjectClone
from harness.s3_server import S3Server, s3_server

pytestmark = [pytest.mark.engine, pytest.mark.slow, pytest.mark.scenario]

BUCKET = "ephemeros-state"
STATE = ".pulumi/stacks/ephemeros"
LOCKS = ".pulumi/locks/"


@dataclass
class Team:
    s3: S3Server = field(repr=False)
    clone: ProjectClone
    backend_url: str
    env: dict[str, str] = field(repr=False)  # a teammate's shell: the bucket and its credentials, nothing else chosen

    def objects(self) -> dict[str, int]:
        return self.s3.list_objects(BUCKET)

    def locks(self) -> list[str]:
        return [key for key in self.objects() if key.startswith(LOCKS)]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with s3_server() as s3:
        s3.create_bucket(BUCKET)
        clone = ProjectClone(tmp_path_factory.mktemp("team") / "ephemeros")
        host = s3.endpoint.removeprefix("http://")
        url = f"s3://{BUCKET}?endpoint={host}&s3ForcePathStyle=true&region={s3.region}&disableSSL=true"
        env = clone.env | {
            "PULUMI_BACKEND_URL": url,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        }
        team = Team(s3, clone, url, env)
        yield team
        for stack in ("dev", "moved"):
            clone.pulumi("destroy", "--yes", "--stack", stack, env=env)


def test_make_up_keeps_the_state_in_the_bucket(team: Team) -> None:
    done = team.clone.make("up", env=team.env)
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)
    objects = team.objects()
    assert f"{STATE}/dev.json" in objects
    deployment = json.loads(team.s3.get_object(BUCKET, f"{STATE}/dev.json"))
    assert len(deployment["checkpoint"]["latest"]["resources"]) > 30  # the whole dev stack
    assert not (team.clone.dir / ".pulumi").exists()  # nothing in the project's default file backend
    assert team.locks() == []  # the run's lock is gone with it
    assert team.clone.exports(team.env)["PULUMI_BACKEND_URL"] == team.backend_url  # `make env` names the bucket
    assert team.clone.git_status() == ""
    for secret in (team.s3.secret_key, team.s3.access_key):
        assert secret not in done.stdout + done.stderr


def test_a_second_up_while_one_runs_stops_at_the_lock(team: Team) -> None:
    done = team.clone.pulumi(
        "config", "set", "--path", "rotate.nodePasswords.node2", "1", "--stack", "dev", env=team.env
    )
    assert done.returncode == 0, done.stderr
    shell = team.env | team.clone.exports(team.env)
    command = ["pulumi", "up", "--yes", "--stack", "dev", "--non-interactive"]
    first = subprocess.Popen(
        command, cwd=team.clone.dir, env=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not team.locks():
            assert first.poll() is None, f"the first up ended before its lock was seen:\n{first.communicate()[0]}"
            assert time.monotonic() < deadline, "the first up took no lock in the bucket"
            time.sleep(0.05)
        second = subprocess.run(command, cwd=team.clone.dir, env=shell, capture_output=True, text=True, timeout=300)
        first_output, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode != 0
    assert "the stack is currently locked by 1 lock(s)" in second.stdout + second.stderr
    assert first.returncode == 0, log_tail(first_output)
    assert team.locks() == []
    done = team.clone.pulumi("preview", "--expect-no-changes", "--stack", "dev", env=team.env)
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)


def test_a_stack_moved_from_a_file_backend_into_the_bucket_previews_no_changes(team: Team) -> None:
    clone = team.clone
    local = clone.env  # the project's default: the file backend in the clone
    done = clone.make("new-stack", "NEW=moved", "FROM=dev", env=local)
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)
    done = clone.make("up", env=local | {"STACK": "moved"})
    assert done.returncode == 0, log_tail(done.stdout + done.stderr)
    assert (clone.dir / ".pulumi/stacks/ephemeros/moved.json").is_file()

    # README, A team's stack: moving an existing stack into the bucket.
    exported = clone.dir / "moved.json"
    for args, env in (
        (("stack", "export", "--file", str(exported), "--stack", "moved"), local),
        (("stack", "init", "moved", "--no-select"), team.env),
        (("stack", "import", "--file", str(exported), "--stack", "moved"), team.env),
        (("preview", "--expect-no-changes", "--stack", "moved"), team.env),
    ):
        done = clone.pulumi(*args, env=env)
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{log_tail(done.stdout + done.stderr)}"
    assert f"{STATE}/moved.json" in team.objects()
    exported.unlink()
