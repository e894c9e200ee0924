"""The `edgerec` command's root: the app, its one error handler, and what every command group shares."""

from __future__ import annotations

import typer

from edgerec.errors import EdgeRecError, with_notes


class _Commands(typer.core.TyperGroup):
    """The one error handler: an EdgeRecError is a problem the user can act on, printed without a traceback; any
    other exception is a bug and shows its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeRecError as error:
            fail(with_notes(error), error.exit_code)


app = typer.Typer(cls=_Commands, help="`edgerec`: one sub-command per pipeline stage; every stage runs without "
                  "Airflow.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def group(name: str, help: str) -> typer.Typer:
    """A command group (`edgerec NAME ...`) on the app."""
    sub = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


def fail(message: str, code: int = 2) -> None:
    from edgerec.redact import scrub

    typer.secho(f"error: {scrub(message)}", fg="red", err=True)
    raise typer.Exit(code)


def settings_from_env():
    from edgerec.config import load_settings

    return load_settings()
