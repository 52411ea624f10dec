"""`jitfarm` command line: run | runs | report | compare | regress | dashboard | space | devices list | devices probe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from farm.config.errors import UserError
from farm.report.commands import register as register_result_commands


def _cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from farm.config.experiments import load_experiment

    # Validate everything before importing Ray or starting anything.
    source = args.resume or args.replay
    if source:
        if args.experiment or (args.resume and args.replay):
            raise UserError("jitfarm run: give an experiment YAML, or --resume RUN_ID, or --replay RUN_ID (one of them)")
        from farm.config.lock import experiment_of_run
        from farm.scheduler.manifest import drift

        exp, recorded = experiment_of_run(Path(args.results_dir), source)
        for note in drift(recorded):
            err.print(f"[yellow]differs from the recorded run[/]: {note}", highlight=False)
    elif not args.experiment:
        raise UserError("jitfarm run: no experiment. Fix: pass experiments/<name>.yaml, or --resume/--replay RUN_ID")
    else:
        exp = load_experiment(Path(args.experiment), Path(args.devices_dir) if args.devices_dir else None)

    from farm.analysis.overhead import run_overhead
    from farm.analysis.summary import summarize
    from farm.report.console import print_results
    from farm.scheduler.run import RunOptions, run_experiment
    from farm.store.parquet import ParquetStore

    outcome = run_experiment(exp, RunOptions(results_dir=Path(args.results_dir), address=args.address,
                                             resume=args.resume, replay_of=args.replay), console=err)
    store = ParquetStore(outcome.run_dir)
    summaries = summarize(store)
    print_results(summaries, list(exp.baselines), out)
    for device in run_overhead(store):
        out.print(device.describe(), highlight=False, markup=False)
    failed = [s for s in summaries if s.status != "ok"]
    out.print(f"run {outcome.run_id}: {len(summaries) - len(failed)} of {len(summaries)} jobs ok in "
              f"{outcome.wall_s:.1f} s · results in {outcome.run_dir}")
    return 1 if failed else 0


def _cmd_devices_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    from rich.table import Table

    from farm.config.devices import list_devices
    from farm.config.selection import matches

    directory = Path(args.devices_dir or "device_configs")
    if not directory.is_dir():
        raise UserError(f"{directory}: no such folder. Fix: run from the project root or pass --devices-dir")
    selector = {}
    for item in args.tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--tag {item!r}: expected KEY=VALUE. Fix: e.g. --tag vendor=mesa")
        selector[key] = value
    table = Table(title=f"devices in {directory}" + (f" with {selector}" if selector else ""))
    for col in ("id", "driver", "name", "tags", "status"):
        table.add_column(col)
    for path, spec in list_devices(directory):
        if isinstance(spec, UserError):
            table.add_row(path.stem, "-", "-", "-", f"[red]invalid[/]: {spec}")
        elif selector and not matches(spec, selector):
            continue
        else:
            tags = ", ".join(f"{k}={v}" for k, v in spec.tags.items())
            table.add_row(spec.id, spec.driver, spec.name, tags, "ok")
    out.print(table)
    return 0


def _cmd_space(args: argparse.Namespace, out: Console, err: Console) -> int:
    from farm.config.devices import find_device
    from farm.drivers import make_driver
    from farm.report.space import parse_op, print_space
    from farm.scheduler.job import DeviceContext
    from jit_core.templates import TEMPLATES, templates_for

    op = parse_op(args.op)
    if args.template and args.template not in TEMPLATES:
        raise UserError(f"--template {args.template!r} is unknown. Fix: use one of {sorted(TEMPLATES)}")
    if args.template and TEMPLATES[args.template].op_kind != "matmul":
        raise UserError(f"--template {args.template!r} tunes {TEMPLATES[args.template].op_kind} ops, --op is a matmul. "
                        f"Fix: use one of {templates_for('matmul')}")
    device = find_device(Path(args.devices_dir or "device_configs"), args.device, where="--device", key="device")
    with make_driver(device) as driver:  # the space depends on what the adapter reports
        ctx = DeviceContext.from_probe(device.id, driver.probe(), device.caps_overrides)
    print_space(op, ctx.caps, f"{device.id}: {ctx.adapter}", [args.template] if args.template else templates_for("matmul"), out)
    return 0


def _cmd_devices_probe(args: argparse.Namespace, out: Console, err: Console) -> int:
    from farm.config.devices import find_device
    from farm.report.probe import DriverError, print_probe, probe_device

    directory = Path(args.devices_dir or "device_configs")
    if not directory.is_dir():
        raise UserError(f"{directory}: no such folder. Fix: run from the project root or pass --devices-dir")
    device = find_device(directory, args.device_id, where="command line", key="ID")
    try:
        probe = probe_device(device)
    except DriverError as exc:
        err.print(f"[red]{device.id}: could not open ({exc.error_class})[/]: {exc.message}", highlight=False)
        return 1
    print_probe(device, probe, out, as_json=args.json)
    return 0 if probe.get("webgpu") else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jitfarm", description="JIT-tune in-browser DL kernels across a device farm")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an experiment YAML")
    run.add_argument("experiment", nargs="?", help="path to experiments/<name>.yaml")
    run.add_argument("--resume", metavar="RUN_ID", help="complete a run: re-run only its jobs without a successful record")
    run.add_argument("--replay", metavar="RUN_ID", help="run the experiment recorded in RUN_ID's manifest again, as a new run")
    run.add_argument("--results-dir", default="results", help="where results/<run_id>/ goes (default: results)")
    run.add_argument("--devices-dir", default=None, help="folder of device YAMLs (default: ../device_configs of the experiment)")
    run.add_argument("--address", default=None, help="Ray cluster to join: 'auto', host:port or ray://host:port (README: a farm of several machines); default: a private local Ray")
    run.set_defaults(func=_cmd_run)
    register_result_commands(sub)  # runs | report | compare | regress | dashboard
    dev = sub.add_parser("devices", help="device configs")
    dsub = dev.add_subparsers(dest="devices_command", required=True)
    dl = dsub.add_parser("list", help="list device configs and whether they are valid")
    dl.add_argument("--devices-dir", default=None)
    dl.add_argument("--tag", action="append", metavar="KEY=VALUE", help="only devices with this tag (repeatable)")
    dl.set_defaults(func=_cmd_devices_list)
    dp = dsub.add_parser("probe", help="open a device and print its adapter, limits, features, timers, WASM and WebGL2")
    dp.add_argument("device_id", help="a device id from device_configs/")
    dp.add_argument("--devices-dir", default=None)
    dp.add_argument("--json", action="store_true", help="print the raw probe as JSON")
    dp.set_defaults(func=_cmd_devices_probe)
    sp = sub.add_parser("space", help="search-space sizes of an op on a device: raw, per pruning rule, TVM-like")
    sp.add_argument("--device", required=True, help="device id in the devices folder (its adapter is probed)")
    sp.add_argument("--op", required=True, help="matmul shape MxNxK (or BxMxNxK)")
    sp.add_argument("--template", default=None, help="one template (default: all)")
    sp.add_argument("--devices-dir", default=None, help="folder of device YAMLs (default: device_configs)")
    sp.set_defaults(func=_cmd_space)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A pipe or a log file gets a table wide enough not to fold every column.
    out = Console() if sys.stdout.isatty() else Console(width=200)
    err = Console(stderr=True)
    try:
        return int(args.func(args, out, err))
    except UserError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: records written so far are kept under results/")
        return 130


if __name__ == "__main__":
    sys.exit(main())
