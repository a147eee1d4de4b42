"""Options several commands share, declared once, and the decorator that hands a command its Ledger."""

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from loraledger.ledger import Ledger

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
reason_option = click.option("--reason", help="Why: recorded in the alias history.")
note_option = click.option("--note", help="Free text recorded on the version.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages.")
promote_option = click.option(
    "--promote", is_flag=True, help="Make the new version current even if NAME already has one."
)
DTYPES = ["fp32", "bf16", "fp16"]


def dtype_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--dtype", type=click.Choice(DTYPES), default="fp32", show_default=True, help=help_text
    )


def pass_ledger(command: Callable[..., Any]) -> Callable[..., Any]:
    """Call ``command(ledger, ...)`` with a Ledger over the group's Settings (``--home`` and the
    environment): the one library object every command talks to."""

    @click.pass_context
    def with_ledger(ctx: click.Context, /, *args: Any, **kwargs: Any) -> Any:
        return command(ledger_of(ctx), *args, **kwargs)

    return functools.update_wrapper(with_ledger, command)


def ledger_of(ctx: click.Context) -> "Ledger":
    from loraledger.ledger import Ledger

    return Ledger(ctx.find_root().obj)
