"""`ml-connector sandbox`: the emulated Stampli SFTP server and IFS Cloud on loopback, and
`--demo` (what `make demo` runs): one sync against them, the status table, where to look."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from commands import output
from commands.context import EXAMPLE


def register(main: click.Group) -> None:
    @main.command(help="Start an emulated Stampli SFTP server and IFS Cloud on loopback, seeded"
                  " with sample exports, and write a config and secrets pointing at them. Each"
                  " start is a fresh world. --demo runs one sync, prints the status and stops."
                  + EXAMPLE + "ml-connector sandbox --dir /tmp/mlc-sandbox")
    @click.option("--dir", "directory", default="sandbox-run", type=click.Path(file_okay=False),
                  help="Where the sandbox keeps its config, ledger and SFTP folder.")
    @click.option("--demo", is_flag=True, help="Run one sync, print the status table, and stop.")
    def sandbox(directory: str, demo: bool) -> None:
        from sandbox.launch import start_sandbox

        box = start_sandbox(Path(directory))
        config = box.config
        try:
            click.echo(f"IFS Cloud emulator:  {box.ifs.base_url}  (inspect: {box.ifs.base_url}"
                       "/_emulator/state)")
            click.echo(f"Stampli SFTP:        sftp://{box.sftp.host}:{box.sftp.port}/outbound"
                       f"  (files in {box.outbound})")
            click.echo(f"config:              {config}\n")
            if not demo:
                click.echo("next, in another terminal:\n"
                           f"  ml-connector --config {config} check\n"
                           f"  ml-connector --config {config} sync\n"
                           f"  ml-connector --config {config} status\n"
                           "Ctrl-C stops the sandbox.")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    return
            run_demo(box)
        finally:
            box.stop()


def run_demo(box: Any) -> None:
    """One sync against the sandbox, the status table, and where to look next."""
    from adapters.settings import load_settings
    from runtime import Runtime

    rt = Runtime(load_settings(box.config))
    try:
        output.print_cycle(output.cycle_summary(rt.sync_blocking(), rt.state_counts()))
        click.echo("\n" + output.table(rt.status_rows(), output.STATUS_COLUMNS))
        state = box.ifs.state()
    finally:
        rt.close()
    click.echo(f"\nIFS now holds {len(state.get('invoices', []))} supplier invoices and"
               f" {len(state.get('vouchers', []))} GL vouchers.")
    click.echo(f"\nwhere to look next (the ledger stays in {box.directory / 'data'}):\n"
               f"  ml-connector --config {box.config} history V00231/INV-2026-0117\n"
               f"  ml-connector --config {box.config} audit export --format csv\n"
               f"  ml-connector sandbox --dir {box.directory}   # keep the emulators running")
