"""The ``archmon`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from archmon import __version__
from archmon.config import Config, load_config
from archmon.errors import ConfigError
from archmon.logsetup import setup_logging

__all__ = ["main"]

log = logging.getLogger("archmon")

CONFIG_ENV = "ARCHMON_CONFIG"


def config_path(args: argparse.Namespace) -> Path:
    """The config file to use: ``--config``, else ``$ARCHMON_CONFIG``, else ``./archmon.toml``."""
    return Path(args.config or os.environ.get(CONFIG_ENV) or "archmon.toml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def _cmd_check_config(args: argparse.Namespace) -> int:
    from archmon.app import check_references, storage_problems
    from collector.sources import check_sources

    path = config_path(args)
    warnings: list[str] = []
    try:
        config = load_config(path, references=False)  # every problem in one run, references included
        checked = check_sources(config)
        warnings = checked.warnings
        problems = check_references(config, checked=checked) + storage_problems(config)
    except ConfigError as exc:
        problems = exc.problems
    for line in warnings:
        print(line, file=sys.stderr)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return 2
    from archmon.summary import config_summary

    print(config_summary(config))
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from archmon.errors import DecodeError
    from devices.formats import decode_to_json

    payload = args.payload.encode("utf-8") if args.payload is not None else sys.stdin.buffer.read()
    try:
        options = json.loads(args.options) if args.options else {}
        if not isinstance(options, dict):
            raise ValueError("--options must be a JSON object")
        options.setdefault("device_tz", args.tz)
        rows = decode_to_json(args.format, args.topic, payload, options)
    except (DecodeError, KeyError, ValueError, TypeError) as exc:
        print(f"archmon decode: {args.format} {args.topic}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    errors = [row["error"] for row in rows if "error" in row]
    if errors:
        print(f"archmon decode: {args.format} {args.topic}: {errors[0]}", file=sys.stderr)
        return 1
    try:
        lines = [json.dumps(row, ensure_ascii=False, allow_nan=False) for row in rows]
    except ValueError:
        print(f"archmon decode: {args.format} {args.topic}: a value is not a finite number (NaN or infinity)",
              file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from archmon.app import Service, check_references, storage_problems
    from archmon.app.control import RunControl
    from archmon.logsetup import use_zone
    from archmon.systemd import notify_ready

    config = _load(args)
    _check_http(args.http)
    problems = check_references(config, secrets=False) + storage_problems(config)
    if problems:  # before the first log line: a broken file prints its problems and nothing else
        raise ConfigError(problems)
    use_zone(config.site.tz)
    service = Service(config)
    control = RunControl(service)
    control.install()  # before the start: a SIGTERM during it stops what started
    service.start()
    service.serve_dashboard(args.http)
    notify_ready(f"collecting: {len(config.sensors)} sensors; data in {service.db_path}")
    if sys.stderr.isatty():
        print(f"archmon running; data in {service.db_path}; Ctrl-C or SIGTERM to stop, SIGHUP to reload "
              f"{config.path}", file=sys.stderr)
    report = control.run()
    return _exit(0 if report.complete else 1, grace_s=min(2.0, max(0.2, report.bound_s - report.elapsed_s)))


def _check_http(address: str | None) -> None:
    """``--http``: HOST:PORT or ``off`` (a ConfigError, exit 2, before anything starts)."""
    if address is None or address == "off":
        return
    from dashboards.web import parse_address

    try:
        parse_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


_JOINED_AT_EXIT = ("archmon-job", "ThreadPoolExecutor-", "asyncio_")
"""Thread-pool workers Python joins at exit even when they are daemon threads (``concurrent.futures``): the
scheduler's (``archmon-job``, see ``archmon.app.service``), and any other pool's by its default name."""


def _exit(code: int, *, grace_s: float = 2.0) -> int:
    """``code``, or leave at once when a thread that ignores the stop bound would keep the process alive
    (a scheduler worker stuck in a device or database wait): the stop already did all that can be done.
    Idle workers end on their own within ``grace_s`` (what is left of the stop's bound, at most 2 s)."""
    grace = time.monotonic() + grace_s
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread()
             and (not t.daemon or t.name.startswith(_JOINED_AT_EXIT))]
    for thread in stuck:
        thread.join(max(0.0, grace - time.monotonic()))
    stuck = [t for t in stuck if t.is_alive()]
    if not stuck:
        return code
    log.warning("leaving without waiting for thread(s) %s", [t.name for t in stuck])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dashboards.demo import run_demo

    _check_http(args.http)
    return run_demo(Path(args.data_dir), duration_s=args.duration, interval_s=args.interval, http=args.http)


def _cmd_climate(args: argparse.Namespace) -> int:
    from archmon.climate import condition_metrics
    from archmon.climate_text import condition_text

    metrics = condition_metrics(args.t, args.rh).to_dict()
    if args.format == "json":
        print(json.dumps(metrics))
        return 0
    lang = args.lang
    if lang is None:  # the site's language when there is a config, else archmon's default (zh)
        path = config_path(args)
        lang = load_config(path).site.language if path.is_file() else "zh"
    print(condition_text(metrics, lang))
    return 0


def config_help() -> str:
    """Where the config file is looked for, and where that leads here and now (ends every ``--help``)."""
    env = os.environ.get(CONFIG_ENV)
    resolved = Path(env) if env else Path("archmon.toml")
    now = f"${CONFIG_ENV} = {env}" if env else f"${CONFIG_ENV} is not set"
    return (f"config file: --config FILE, else ${CONFIG_ENV}, else ./archmon.toml (in the current folder).\n"
            f"  Here and now {now}, so without --config: {resolved.absolute()}")


def _options_parser(suppress: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--config", "-c", metavar="FILE",
                         default=argparse.SUPPRESS if suppress else None,
                         help="configuration file (where it is looked for without this option: see below)")
    options.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                         default=argparse.SUPPRESS if suppress else os.environ.get("ARCHMON_LOG_LEVEL", "INFO"))
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``archmon`` command."""
    top = _options_parser(suppress=False)
    # Sub-commands repeat the options with SUPPRESS defaults so `archmon --config X status` keeps X.
    common = _options_parser(suppress=True)
    parser = argparse.ArgumentParser(
        prog="archmon", parents=[top],
        description="Environmental monitoring and compliance for archive storage rooms (档案库房环境监测).",
    )
    parser.add_argument("--version", action="version", version=f"archmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from archmon.app.data_commands import add_commands as add_data_commands

    http_help = ("serve the web dashboard on HOST:PORT (default: [http] host and port, 127.0.0.1:8080), "
                 "or 'off'")
    p = sub.add_parser("run", parents=[common], help="collect, store and judge readings until stopped")
    p.add_argument("--http", metavar="HOST:PORT", help=http_help)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", parents=[common],
                       help="a month of simulated history, then everything live against built-in simulators "
                            "(no config, no broker needed)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after the live part ran this long")
    p.add_argument("--data-dir", default="archmon-data", metavar="DIR",
                   help="where the demo keeps its data and its log (a previous demo's data moves to DIR/previous)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                   help="simulated sensors report this often (default 2)")
    p.add_argument("--http", metavar="HOST:PORT", help=http_help)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("check-config", parents=[common], help="validate a config file; exit 2 on problems")
    p.add_argument("file", nargs="?", help="config file (overrides --config)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("decode", parents=[common], help="decode one MQTT payload and print its readings as JSON")
    p.add_argument("--format", required=True, help="zigbee2mqtt, tasmota, shelly-gen1, shelly-gen2, esphome, json")
    p.add_argument("--topic", required=True)
    p.add_argument("--payload", help="payload text (default: read from stdin)")
    p.add_argument("--options", help="decoder options as JSON, e.g. '{\"fields\": {\"temperature\": \"$.t\"}}'")
    p.add_argument("--tz", default="UTC", help="zone of device times without offset (Tasmota Time); default UTC")
    p.set_defaults(func=_cmd_decode)

    # the commands that read what the service stored (status, export, backup, quarantine)
    add_data_commands(sub, common, load=_load)

    p = sub.add_parser("climate", parents=[common],
                       help="dew point, absolute humidity, preservation index, EMC and mould risk of one condition")
    p.add_argument("--t", type=float, required=True, metavar="C", help="air temperature in ℃")
    p.add_argument("--rh", type=float, required=True, metavar="PCT", help="relative humidity in %%")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--lang", choices=["zh", "en"],
                   help="language of the text (default: the site's, from the config if there is one; else zh)")
    p.set_defaults(func=_cmd_climate)

    from functools import partial

    from alerts.calibration import RecordedCorrections
    from alerts.calibration.cli import add_commands as add_calibration_commands
    from alerts.cli import add_commands as add_alert_commands
    from alerts.control.cli import add_commands as add_control_commands
    from alerts.notify.cli import add_commands as add_notify_commands
    from collector.forward.cli import add_commands as add_forward_commands
    from collector.importer.cli import add_commands as add_import_commands
    from dashboards.reports.cli import add_commands as add_report_commands
    from dashboards.web.cli import add_commands as add_web_commands

    # the collector's import applies recorded calibrations, which the alert package keeps
    add_import = partial(add_import_commands, corrections=RecordedCorrections)
    for add_commands in (add_alert_commands, add_calibration_commands, add_control_commands, add_notify_commands,
                         add_web_commands, add_report_commands, add_import, add_forward_commands):
        add_commands(sub, common)
    _add_config_epilog(parser)
    return parser


def _add_config_epilog(parser: argparse.ArgumentParser) -> None:
    """Every command's ``--help`` ends with where the config file is looked for, also command groups
    (``archmon alerts --help``) that have no ``--config`` option of their own."""
    parser.epilog = config_help()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_config_epilog(child)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``archmon`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "file", None) and args.command == "check-config":
        args.config = args.file
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `archmon export ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
