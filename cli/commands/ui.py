"""``adapters ui``: the read-only web dashboard (the ``serve`` extra)."""

import click

from loraledger.settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.pass_obj
def ui(settings: Settings, host: str, port: int) -> None:
    """Serve a read-only dashboard of the registry: adapters, lineage graphs, score matrices,
    forgetting curves, alias timelines, versions and datasets; every page also as JSON.

    Nothing in it changes the registry. It binds loopback unless --host says otherwise: the pages show
    data names, sources and notes to whoever can reach the port."""
    try:
        from loraledger.dashboard import serve
    except ImportError as error:
        from loraledger.errors import InvalidInput

        raise InvalidInput(
            f"adapters ui needs the serve extra ({error.name} is missing): pip install 'loraledger[serve]'"
        ) from error
    from loraledger.ledger import Ledger

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: anyone who can reach it can read the registry", err=True)
    click.echo(f"loraledger dashboard on http://{host}:{port}/ (read-only; Ctrl-C stops it)", err=True)
    serve(Ledger(settings), host=host, port=port)


COMMANDS = [ui]
