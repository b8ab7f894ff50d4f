"""The zero-setup stack: one at a time per run dir, and embedded data survives a restart."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from config import stack

BASE_DIR = Path(__file__).resolve().parent.parent


def test_stack_second_instance_on_same_dir_refuses_clearly(tmp_path):
    env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"],
           "REDIS_URL": os.environ["REDIS_URL"]}  # fmt: skip
    cmd = [sys.executable, "-m", "config.stack", "exec", "--run-dir", str(tmp_path), "--"]
    first = subprocess.Popen([*cmd, sys.executable, "-c", "import time; time.sleep(20)"],
                             cwd=BASE_DIR, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "env").exists():
            assert time.monotonic() < deadline, "first stack did not start"
            time.sleep(0.1)
        second = subprocess.run([*cmd, "true"], cwd=BASE_DIR, env=env, capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert second.returncode == 2
        assert "already running" in second.stderr
        assert str(first.pid) in second.stderr
    finally:
        first.terminate()
        first.wait(10)
    assert not (tmp_path / "env").exists()  # a stopped stack leaves no stale URLs behind


def test_stack_embedded_postgres_keeps_data_across_restart(tmp_path):
    data = tmp_path / "pg"
    url, server = stack.start_postgres(data)
    try:
        with psycopg.connect(server.get_uri(stack.DB_NAME), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        server.cleanup()
    url2, server2 = stack.start_postgres(data)
    try:
        assert url2 == url
        with psycopg.connect(server2.get_uri(stack.DB_NAME)) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
    finally:
        server2.cleanup()
