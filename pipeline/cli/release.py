"""Commands of deploying and releasing: deploy, release, serve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.cli.base import app, fail, group, settings_from_env

release_app = group("release", "Release channels (canary, stable; recall): verify, promote, rollback, gc, status, "
                  "list, analyse, decide, hold. Every change is signed, verified first, locked and written to the "
                  "audit log.")


def _targets(settings):
    from deploy.targets import open_targets

    return open_targets(settings)


@app.command()
def deploy(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose version to deploy "
                                                "[default: EDGEREC_RUN_DATE]")] = None,
) -> None:
    """Deploy a blessed, servable version: its embedding rows into the key-value store (EDGEREC_KV_URL), verified,
    then its bundle onto the CDN (EDGEREC_CDN_URL), verified. Resumable: a re-run continues where one stopped.
    Channels do not move; `edgerec release promote` does that."""
    from deploy.pipeline import deploy_day
    from edgerec.redact import redact_url

    settings = settings_from_env()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("deploying")
        result = deploy_day(settings, ds or str(settings.run.date), version, progress=lambda step, done, total:
                            progress.update(task, completed=done, total=total, description=f"deploying {step}"))
    typer.echo(f"deployed {result.version}: {result.rows_written:,} embedding rows written "
               f"({result.rows_skipped:,} already there) to {redact_url(settings.kv_store)}; {result.files_uploaded} "
               f"files uploaded ({result.files_skipped} already there) to {redact_url(settings.cdn_origin)}")
    typer.echo(result.kv.to_markdown())
    typer.echo(result.cdn.to_markdown())
    typer.secho(f"next: edgerec release promote {result.version} --channel canary --percent 10 --reason '...'",
                fg="green")


@release_app.command("verify")
def release_verify(version: Annotated[str, typer.Argument(help="registry number or version id")]) -> None:
    """Version synchronization: CDN files and their sha256, every embedding row in the KV with its checksum, dims
    against the re-ranker's input, one feature spec sha everywhere, and every channel's versions still in the KV.
    Exit 1 when anything fails."""
    from deploy.verify import verify_version
    from edgerec import registry

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        found = registry.find_version(registry.connect(settings), version)
        report = verify_version(targets, found.id, found.tags)
    finally:
        targets.close()
    typer.echo(report.to_markdown())
    if not report.passed:
        fail(f"{found.id} is not in sync: {'; '.join(report.failures)}", code=1)


@release_app.command("promote")
def release_promote(
    version: Annotated[str, typer.Argument(help="registry number or version id")],
    channel: Annotated[str, typer.Option(help="canary or stable (re-ranker), or recall (the recall's version, 100%)")],
    reason: Annotated[str, typer.Option(help="why, for the audit log")],
    percent: Annotated[float, typer.Option(help="share of devices that get it, 0..100")] = 100.0,
) -> None:
    """Point a channel at a version, after checking both blessings and verifying it; moves the MLflow alias of the
    channel's name and writes the audit log."""
    from deploy.release import promote

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        pointer = promote(settings, targets, version, channel, percent, reason)
    finally:
        targets.close()
    typer.secho(f"{channel} -> {pointer.version} for {pointer.rollout_percent:g}% of devices "
                f"(previous {pointer.previous or '-'})", fg="green")


@release_app.command("rollback")
def release_rollback(
    channel: Annotated[str, typer.Option(help="canary, stable or recall")],
    reason: Annotated[str, typer.Option(help="why, for the audit log")],
) -> None:
    """Point a channel back at its previous version (verified first); rolling back again rolls forward."""
    from deploy.release import rollback

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        pointer = rollback(settings, targets, channel, reason)
    finally:
        targets.close()
    typer.secho(f"{channel} -> {pointer.version} (rolled back from {pointer.previous})", fg="green")


@release_app.command("analyse")
def analyse(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD (after `edgerec dbt build` of that day)")]
            ) -> None:
    """The day's logs per model version the devices ran, and the canary against stable and the cloud's order with
    95% intervals (the DAG's canary_analysis task); writes reports/ds=D/canary_analysis.{json,md}."""
    from pipeline.stages import canary_analysis

    typer.echo(canary_analysis(settings_from_env(), ds).to_markdown())


@release_app.command("decide")
def decide(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD (after `edgerec release analyse`)")]) -> None:
    """The guardrails' decision on that day's canary (the DAG's release_decision task): promote it to stable, roll it
    back and alert, or wait, by the policy of EDGEREC_RELEASE_GUARDRAILS (default deploy/guardrails.yml)."""
    from pipeline.stages import release_decision

    decision = release_decision(settings_from_env(), ds)
    typer.echo(f"{decision.action}{f' {decision.canary}' if decision.canary else ''}: {'; '.join(decision.reasons)}"
               + (f"\n{decision.done}" if decision.done else ""))


@release_app.command("hold")
def hold(channel: Annotated[str, typer.Argument(help="canary | stable")],
         reason: Annotated[str, typer.Option(help="why, for the audit log")],
         resume: Annotated[bool, typer.Option("--resume", help="end the hold instead")] = False) -> None:
    """Pause the guardrails' automation on a channel (or resume it); manual releases still work."""
    from deploy.release import hold as hold_channel

    targets = _targets(settings_from_env())
    try:
        record = hold_channel(targets, channel, reason, on=not resume)
    finally:
        targets.close()
    typer.echo(f"{channel}: automation {'resumed' if resume else 'paused'} by {record['by']}: {reason}")


@release_app.command("status")
def release_status() -> None:
    """Each channel's pointer: version, previous, rollout, who moved it and when, whether its signature holds and it
    is the one the audit log's last move wrote; and whether the audit log's chain holds. Exit 1 when anything does
    not (`edgerec release repair` mends the channels)."""
    from deploy import audit

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        typer.echo(f"CDN {targets.cdn.url}, KV {targets.kv.url}")
        notes = _channel_notes(targets)
        for name, note in notes.items():
            typer.echo(f"{name:<7} {note}")
        broken = audit.problems(targets.audit_log)
        typer.echo(f"audit   {targets.audit_log}: " + ("chain holds" if not broken else "; ".join(broken)))
    finally:
        targets.close()
    if broken or any(note.startswith(("FORGED", "UNFINISHED")) for note in notes.values()):
        fail("a channel or the audit log is not in order (see above)", code=1)


@release_app.command("keygen")
def release_keygen(
    out: Annotated[Path, typer.Argument(help="where to write the new private key (PEM); must not exist")],
) -> None:
    """A new Ed25519 signing key for manifests, its public key added to the trusted ones
    (EDGEREC_RELEASE_TRUSTED_KEYS): the first step of a key rotation (docs/operations.md)."""
    from edgerec.contracts import signing

    settings = settings_from_env()
    if out.exists():
        fail(f"{out} exists: a signing key is never overwritten")
    key = signing.load_signing_key(out, create=True)
    public = signing.trust(settings.trusted_keys_dir, key.public_key())
    typer.echo(f"key {signing.key_id(key.public_key())}: private {out}, public {public}; copy the public key to the "
               "trusted folder of every host that deploys, then set EDGEREC_RELEASE_SIGNING_KEY where export runs")


@release_app.command("repair")
def release_repair(reason: Annotated[str, typer.Option(help="why, for the audit log")]) -> None:
    """Settle a channel move a crash left unfinished, and write again, from the audit log's last completed move,
    every pointer that is not that move's (forged, copied from another channel, an older one put back)."""
    from deploy.release import repair

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        done = repair(settings, targets, reason)
    finally:
        targets.close()
    for channel, what in done.items():
        typer.echo(f"{channel:<7} {what}")


@release_app.command("list")
def release_list() -> None:
    """Deployed versions: when, where (KV, CDN) and which channels hold them."""
    import datetime as _dt

    from deploy.release import deployed_versions

    settings = settings_from_env()
    targets = _targets(settings)
    try:
        versions = deployed_versions(targets)
    finally:
        targets.close()
    now = _dt.datetime.now(_dt.UTC)
    typer.echo(f"{'version':<20} {'deployed':<26} {'age (d)':>7}  kv   cdn  held by")
    for v in versions:
        age = v.age_days(now)
        typer.echo(f"{v.version:<20} {v.deployed_at or '-':<26} {'-' if age is None else f'{age:.1f}':>7}  "
                   f"{'yes' if v.in_kv else 'no':<4} {'yes' if v.on_cdn else 'no':<4} {', '.join(v.held_by) or '-'}")


@release_app.command("gc")
def release_gc(
    retention_days: Annotated[float | None, typer.Option(min=0, help="keep versions younger than this "
                                                            "[default: EDGEREC_RELEASE_RETENTION_DAYS or 7]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed, remove nothing")] = False,
) -> None:
    """Remove embeddings and bundle files of versions no channel holds (current or previous) and older than the
    retention."""
    from deploy.pipeline import gc_day

    settings = settings_from_env()
    days = settings.release.retention_days if retention_days is None else retention_days
    doomed = gc_day(settings.replace(release={"retention_days": days}), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(doomed)} version(s) older than {days:g} days held by no channel"
               + "".join(f"\n  {v}" for v in doomed))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface to listen on [default: EDGEREC_SERVING_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [default: EDGEREC_SERVING_PORT]")] = None,
    load_test: Annotated[int, typer.Option(help="instead of serving: N page requests on loopback, then report "
                                                "p50/p99 and requests/s")] = 0,
    version: Annotated[str | None, typer.Option(help="model version the load test's clients run [default: "
                                                     "stable's, else canary's]")] = None,
    concurrency: Annotated[int, typer.Option(help="load test clients in parallel")] = 4,
    token: Annotated[str | None, typer.Option(help="instead of serving: print a device token for this device id "
                                                   "(30 days; needs EDGEREC_SERVING_TOKEN_KEY)")] = None,
) -> None:
    """The cloud paging API: candidates of the simulated world's cloud ranker with their embedding rows for the
    client's model version (409 naming the version to fetch when it is not served); /healthz, /v1/model, /docs.
    With EDGEREC_SERVING_TOKEN_KEY set, /v1/model and /v1/page require a device token; without it, the API
    listens on loopback only."""
    import uvicorn

    from deploy.release import channel_pointers
    from deploy.serving.app import embedded_app
    from deploy.serving.auth import DeviceTokens
    from deploy.serving.loadtest import LoopbackServer
    from deploy.serving.loadtest import load_test as run_load_test

    settings = settings_from_env()
    tokens = DeviceTokens(settings.serving.token_key.encode()) if settings.serving.token_key else None
    if token is not None:
        if tokens is None:
            fail("set EDGEREC_SERVING_TOKEN_KEY (at least 32 bytes) to issue device tokens")
        typer.echo(tokens.issue(token))
        return
    host = host or settings.serving.host
    if tokens is None and not load_test and not _loopback(host):
        fail(f"the paging API would answer anyone on {host} without authentication: set EDGEREC_SERVING_TOKEN_KEY "
             "(device tokens) or listen on 127.0.0.1")
    app_ = embedded_app(settings)
    if not load_test:
        uvicorn.run(app_, host=host, port=port or settings.serving.port, log_level="info")
        return
    if version is None:
        targets = _targets(settings)
        pointers = channel_pointers(targets)
        current = pointers["stable"] or pointers["canary"]
        version = current.version if current else None
        targets.close()
    with LoopbackServer(app_) as server:
        figures = run_load_test(server.url, version, requests=load_test, concurrency=concurrency,
                                users=settings.sim.users, tokens=tokens)
    typer.echo(f"{figures['requests']:,} page requests (model version {version or 'none'}), {concurrency} clients: "
               f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
               f"{figures['requests_per_s']:,.0f} requests/s")



def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may be reached from anywhere
        return False


def _channel_notes(targets) -> dict[str, str]:
    """Each channel's pointer in words: version, rollout, previous, who and when; or not set, unfinished, forged."""
    from deploy.channels import CHANNEL_NAMES, ForgedPointer
    from deploy.release import HalfDone, current_pointer

    notes = {}
    for name in CHANNEL_NAMES:
        try:
            p = current_pointer(targets, name)
        except HalfDone as error:
            notes[name] = f"UNFINISHED: {error}"
            continue
        except ForgedPointer as error:
            notes[name] = f"FORGED: {error}"
            continue
        notes[name] = (f"{p.version} for {p.rollout_percent:g}% of devices (previous {p.previous or '-'}), by {p.by} "
                       f"at {p.updated_at}" if p else "not set")
    return notes
