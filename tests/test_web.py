"""The web process's settings (config/web.py): WEB_* variables to granian's own options."""

from pathlib import Path

import pytest

from config.web import granian_args, metrics_dir


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_granian_args_defaults_serve_django_on_every_core():
    args = granian_args({})
    assert option(args, "--interface") == "wsgi"
    assert (option(args, "--host"), option(args, "--port")) == ("0.0.0.0", "8000")
    assert option(args, "--http1-header-read-timeout") == "10000"
    assert args[-2:] == ["--factory", "config.web:application"]


def test_granian_args_take_the_web_variables_and_treat_empty_as_default():
    args = granian_args({"WEB_BIND": "127.0.0.1:8101", "WEB_CONCURRENCY": "3",
                         "WEB_THREADS": "6", "WEB_HEADER_TIMEOUT": "2.5",
                         "WEB_ACCESS_LOG": "1"})  # fmt: skip
    assert (option(args, "--host"), option(args, "--port")) == ("127.0.0.1", "8101")
    assert option(args, "--workers") == "3"
    assert option(args, "--blocking-threads") == "6"
    assert option(args, "--http1-header-read-timeout") == "2500"
    assert "--access-log" in args
    assert option(granian_args({"WEB_THREADS": ""}), "--blocking-threads") == "2"


def test_granian_args_bind_a_unix_socket_or_refuse_a_bad_bind():
    args = granian_args({"WEB_BIND": "unix:/run/chargebook/web.sock"})
    assert option(args, "--uds") == "/run/chargebook/web.sock"
    assert "--host" not in args
    with pytest.raises(SystemExit, match="WEB_BIND"):
        granian_args({"WEB_BIND": "localhost"})


def test_metrics_dir_is_emptied_of_earlier_counts_and_defaults_under_the_run_dir(tmp_path):
    own = tmp_path / "metrics"
    own.mkdir()
    (own / "counter_123.db").write_bytes(b"old counts")
    (own / "keep.txt").write_text("not a metrics file")
    assert metrics_dir({"PROMETHEUS_MULTIPROC_DIR": str(own)}) == own
    assert sorted(p.name for p in own.iterdir()) == ["keep.txt"]
    assert metrics_dir({"RUN_DIR": str(tmp_path)}) == tmp_path / "web-metrics"
    assert (tmp_path / "web-metrics").is_dir()


def test_template_comments_close_on_their_line():
    """Django's {# #} comment is one line only: one spread over lines is shown on the page."""
    root = Path(__file__).resolve().parent.parent / "templates"
    open_comments = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.html")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.count("{#") > line.count("#}")
    ]
    assert open_comments == []
