"""The Procfile under supervisord (config/runner.py): the config it gets, and the log listener
that prefixes each process's output with its name."""

import configparser
import io

import pytest

from config.runner import Server, log_listener, read_procfile, supervisord_conf


def event(process: str, data: bytes) -> bytes:
    payload = f"processname:{process} groupname:{process} pid:7 channel:stdout\n".encode() + data
    header = (f"ver:3.0 server:supervisor serial:1 pool:log poolserial:1 "
              f"eventname:PROCESS_LOG_STDOUT len:{len(payload)}\n")  # fmt: skip
    return header.encode() + payload


def test_read_procfile_keeps_the_order_and_refuses_a_bad_line(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\nweb: python -m config.web\n\nworker: celery worker\n")
    assert read_procfile(procfile) == {"web": "python -m config.web", "worker": "celery worker"}
    procfile.write_text("web python -m config.web\n")
    with pytest.raises(ValueError, match="name: command"):
        read_procfile(procfile)


def test_supervisord_conf_starts_in_procfile_order_and_restarts_every_process(tmp_path):
    conf = configparser.RawConfigParser()
    conf.read_string(supervisord_conf({"web": "python -m config.web", "csms": "echo 100%"},
                                      tmp_path, "/venv/bin/python"))  # fmt: skip
    web, csms = conf["program:web"], conf["program:csms"]
    assert int(web["priority"]) < int(csms["priority"])
    assert web["autorestart"] == csms["autorestart"] == "true"
    assert web["command"] == "/bin/sh -c 'exec python -m config.web'"
    assert csms["command"] == "/bin/sh -c 'exec echo 100%%'"  # supervisord expands %(...)s
    assert conf["supervisord"]["nodaemon"] == "true"


def test_log_listener_prefixes_whole_lines_with_the_process_name():
    events = io.BytesIO(event("web", b"one\ntw") + event("csms", b"up\n") + event("web", b"o\n"))
    replies, out = io.BytesIO(), io.BytesIO()
    log_listener(events, replies, out)
    assert out.getvalue() == b"     web | one\n    csms | up\n     web | two\n"
    assert replies.getvalue().count(b"RESULT 2\nOK") == 3


def test_supervisord_conf_starts_servers_first_and_can_hold_the_processes(tmp_path):
    # make run: the embedded servers start before (and stop after) every process, PostgreSQL
    # with a fast shutdown; the processes wait for `supervisorctl start` while it migrates.
    servers = [Server("postgres", ["/pg/bin/postgres", "-h", ""], stop_signal="INT"),
               Server("redis", ["/bin/redis-server", "--port", "0"])]  # fmt: skip
    conf = configparser.RawConfigParser()
    conf.read_string(supervisord_conf({"web": "python -m config.web"}, tmp_path, "/venv/bin/python",
                                      servers=servers, autostart=False))  # fmt: skip
    postgres, redis, web = conf["program:postgres"], conf["program:redis"], conf["program:web"]
    assert int(postgres["priority"]) < int(redis["priority"]) < int(web["priority"])
    assert postgres["command"] == "/pg/bin/postgres -h ''"
    assert postgres["stopsignal"] == "INT" and redis["stopsignal"] == "TERM"
    assert postgres["autorestart"] == redis["autorestart"] == "true"
    assert postgres["stdout_logfile"] == str(tmp_path / "postgres.log")
    assert web["autostart"] == "false"
