"""``adapters demo``."""

from pathlib import Path

import click

from loraledger.settings import Settings


@click.command()
@click.option(
    "--home",
    "demo_home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the demo registry here (default: a new temporary folder).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_obj
def demo(settings: Settings, demo_home: Path | None, quiet: bool) -> None:
    """Run the continual fine-tuning story on the shipped sample data (CPU, a few minutes)."""
    from loraledger.cli.demo import run_demo

    run_demo(settings, home=demo_home, quiet=quiet)


COMMANDS = [demo]
