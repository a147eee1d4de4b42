"""The ``adapters`` command: a thin layer over the registry and the trainer.

Each command parses its options, calls one function, and renders the result. Errors a user can fix
(``LedgerError``) print one line and exit non-zero; anything else is a bug: its type and message, and
the traceback with ``-v``.
"""

import sys
from pathlib import Path
from typing import IO, cast

import click

from loraledger.cli.commands import register_commands
from loraledger.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Registry home (default $ADAPTERS_HOME or ~/.adapters).",
)
@click.option("-v", "--verbose", count=True, help="Show tracebacks and library logs.")
@click.version_option(package_name="loraledger", prog_name="adapters")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: int) -> None:
    """Registry and version manager for continual LoRA fine-tuning.

    Train a LoRA update each time new data arrives, keep every version with its lineage, data digests
    and scores, catch forgetting before it goes live, roll back in one command, and publish.
    """
    ctx.obj = Settings.load(home, verbose)
    if not verbose:
        quiet_libraries()


def quiet_libraries() -> None:
    """Our own bars report progress; the libraries' bars, advisories and deprecation notes are noise on
    a user's terminal (``-v`` lets them through). Set before the libraries are imported."""
    import logging
    import os
    import warnings

    # bitsandbytes warns through its logger at import, on CPUs with AVX512-BF16, that an optional
    # kernel package is missing: nothing a user of ours must act on (a run's log still records it).
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for module in ("transformers", "peft", "accelerate", "torch", "bitsandbytes"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)


register_commands(cli)


def _verbose(argv: list[str]) -> bool:
    """Whether the group's ``-v`` comes before the command (read here because the error handler runs
    outside click's parsing; a ``-v`` after the command is some option's value, e.g. ``--note -v``)."""
    arguments = iter(argv)
    for arg in arguments:
        if arg == "--home":
            next(arguments, None)
        elif arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            return True
        elif not arg.startswith("-"):
            return False  # the command
    return False


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the one error handler."""
    verbose = _verbose(argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="adapters", standalone_mode=False)
        # Without standalone mode, click returns (not raises) the code of a `ctx.exit(N)`.
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        from loraledger.cli.terminal import EscapingWriter

        exc.show(file=cast(IO[str], EscapingWriter(sys.stderr)))
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from loraledger.cli.terminal import printable
        from loraledger.schemas.errors import LedgerError

        if verbose:
            raise
        if isinstance(exc, LedgerError):
            click.echo(f"error: {printable(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        message = printable(f"{type(exc).__name__}: {exc}")
        click.echo(f"error: {message} (add -v for the traceback)", err=True)
        sys.exit(1)
