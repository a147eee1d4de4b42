"""``adapters serve``: the registry behind an OpenAI-compatible HTTP server."""

import click

from loraledger.cli.output import warn
from loraledger.settings import Settings


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--base", metavar="MODEL", help="Serve every adapter on this base (default: the base of NAMEs)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free one).")
@click.option(
    "--api-key",
    envvar="ADAPTERS_API_KEY",
    metavar="KEY",
    help="Require `Authorization: Bearer KEY` (or set ADAPTERS_API_KEY, kept out of the process list).",
)
@click.option("--max-loaded", default=4, show_default=True, type=int, help="Adapters kept in memory at once.")
@click.option("--max-tokens", default=512, show_default=True, type=int, help="Largest max_tokens allowed.")
@click.option("--device", help="cpu, cuda, cuda:1, mps (default: the best available).")
@click.option("--log-prompts", is_flag=True, help="Log each prompt (off by default: prompts may be private).")
@click.pass_obj
def serve(
    settings: Settings,
    names: tuple[str, ...],
    base: str | None,
    host: str,
    port: int,
    api_key: str | None,
    max_loaded: int,
    max_tokens: int,
    device: str | None,
    log_prompts: bool,
) -> None:
    """Serve versions over the OpenAI API (/v1/models, /v1/completions, /v1/chat/completions).

    Ask for `NAME` (its current version), `NAME@ALIAS` or `NAME@N`: each request resolves the name
    again, so `adapters rollback NAME` in another shell takes effect on the next request.
    """
    from loraledger.ledger import Ledger
    from loraledger.server import ServeOptions, serve

    options = ServeOptions(
        base=base,
        names=names,
        host=host,
        port=port,
        api_key=api_key or None,
        max_loaded=max_loaded,
        max_tokens=max_tokens,
        device=device,
        log_prompts=log_prompts,
    )
    if not options.loopback and options.api_key is None:
        warn(f"listening on {host} without --api-key: anyone who can reach it may use it")
    serve(
        Ledger(settings), options, ready=lambda url: click.echo(f"serving on {url} (Ctrl-C stops)", err=True)
    )


COMMANDS = [serve]
