"""The operator's command, ``anjuka``: a Flask CLI group."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask.cli import FlaskGroup, with_appcontext

from anjuka import create_app
from anjuka.alerts.commands import sweep
from anjuka.core.db import db
from anjuka.core.transactions import command_transaction
from anjuka.imports.commands import gen_city, import_command
from anjuka.notifications.commands import webhooks
from anjuka.personal_data.commands import persons, retention
from anjuka.stats.commands import stats


@click.group()
def users() -> None:
    """Accounts."""


@users.command("create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["admin", "supervisor", "manager", "officer", "auditor"]),
)
@click.option(
    "--scope", "scopes", multiple=True, help="area:CODE, estate:ID or dwelling:ID (repeatable)"
)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--display-name")
@with_appcontext
def create_user(
    name: str, role: str, scopes: tuple[str, ...], password_stdin: bool, display_name: str | None
) -> None:
    """Create a user; the password comes from stdin or is generated and printed once."""
    import secrets

    from anjuka.auth.operations import create_user as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    else:
        password = secrets.token_urlsafe(12)
        generated = True
    with command_transaction():
        user = create(name, role, password, list(scopes), display_name)
    click.echo(f"user {user.username} (id {user.id}, role {role}) created")
    if generated:
        click.echo(f"password: {password}")


def _change_account(change):
    """Run ``change()`` in one transaction; a refusal exits 1 with its code."""
    with command_transaction():
        result = change()
    return result


@users.command("list")
@with_appcontext
def users_list() -> None:
    """Every account: id, name, role, scopes, active or disabled."""
    import sqlalchemy as sa

    from anjuka.auth.models import User
    from anjuka.auth.operations import scope_specs

    for user in db.session.scalars(sa.select(User).order_by(User.id)):
        state = "active" if user.active else "disabled"
        scopes = " ".join(scope_specs(user)) or "-"
        click.echo(f"{user.id}\t{user.username}\t{user.role}\t{scopes}\t{state}")


@users.command("disable")
@click.argument("name")
@with_appcontext
def users_disable(name: str) -> None:
    """Disable an account: every token and session of it answers 401 at once."""
    from anjuka.auth import operations

    revoked = _change_account(lambda: operations.disable_user(operations.find_user(name)))
    click.echo(f"user {name} disabled; {revoked} token(s) and session(s) revoked")


@users.command("enable")
@click.argument("name")
@with_appcontext
def users_enable(name: str) -> None:
    """Let a disabled account sign in again (its old tokens stay revoked)."""
    from anjuka.auth import operations

    _change_account(lambda: operations.enable_user(operations.find_user(name)))
    click.echo(f"user {name} enabled")


@users.command("update")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "supervisor", "manager", "officer", "auditor"]))
@click.option(
    "--scope", "scopes", multiple=True, help="the new scopes, replacing the old (repeatable)"
)
@click.option("--no-scopes", is_flag=True, help="remove every scope (admins, auditors)")
@click.option("--display-name")
@with_appcontext
def users_update(
    name: str,
    role: str | None,
    scopes: tuple[str, ...],
    no_scopes: bool,
    display_name: str | None,
) -> None:
    """Change an account's role, scopes or display name (checked as at creation)."""
    from anjuka.auth import operations

    new_scopes = [] if no_scopes else (list(scopes) if scopes else None)
    extra = {"display_name": display_name} if display_name is not None else {}
    user = _change_account(
        lambda: operations.update_user(
            operations.find_user(name), role=role, scopes=new_scopes, **extra
        )
    )
    click.echo(
        f"user {name}: role {user.role}, scopes {' '.join(operations.scope_specs(user)) or '-'}"
    )


@users.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@with_appcontext
def users_set_password(name: str, password_stdin: bool) -> None:
    """Set a new password (from stdin, or generated and printed once); revokes every token."""
    import secrets

    from anjuka.auth import operations

    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    revoked = _change_account(lambda: operations.set_password(operations.find_user(name), password))
    click.echo(f"user {name}: password set; {revoked} token(s) and session(s) revoked")
    if not password_stdin:
        click.echo(f"password: {password}")


@users.command("revoke-tokens")
@click.argument("name")
@with_appcontext
def users_revoke_tokens(name: str) -> None:
    """Revoke every token and session of an account (it may sign in again)."""
    from anjuka.auth import operations

    revoked = _change_account(lambda: operations.revoke_user_tokens(operations.find_user(name)))
    click.echo(f"user {name}: {revoked} token(s) and session(s) revoked")


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option(
    "--anchor",
    "anchor_file",
    type=click.File("r"),
    help="also check the chain heads recorded by an earlier `anjuka audit anchor`",
)
@with_appcontext
def audit_verify(anchor_file) -> None:
    """Walk every hash chain; exit 1 naming the first event that fails."""
    import json

    from anjuka.audit.operations import check_anchor, verify

    result = verify()
    if not result.ok:
        click.echo(
            f"audit trail BROKEN at event {result.first_bad_event_id}: {result.reason}", err=True
        )
        sys.exit(1)
    if anchor_file is not None:
        problems = check_anchor(json.load(anchor_file))
        if problems:
            for problem in problems:
                click.echo(f"audit trail REWRITTEN: {problem}", err=True)
            sys.exit(1)
    click.echo(f"audit trail intact: {result.events} events in {result.chains} chains")
    if anchor_file is None:
        click.echo(
            "checked without an anchor: a tail cut off together with its chain head, or a"
            " whole chain deleted with its head, is not detected; pass --anchor FILE"
        )


@audit.command("anchor")
@with_appcontext
def audit_anchor() -> None:
    """Print every chain's head as JSON: keep it off this database (e.g. daily)."""
    import json

    from anjuka.audit.operations import take_anchor

    click.echo(json.dumps(take_anchor(), indent=2, sort_keys=True))


@click.group()
def keys() -> None:
    """Key material: rotation and re-encryption."""


KEY_FAMILIES = ["signing", "encryption", "blind_index", "card_master"]


@keys.command("rotate")
@click.argument("family", type=click.Choice(KEY_FAMILIES))
@click.option(
    "--staged",
    is_flag=True,
    help="add the key without using it yet: restart every process, then `keys activate`",
)
@with_appcontext
def keys_rotate(family: str, staged: bool) -> None:
    """Add a new key to FAMILY and make it active (restart the app afterwards)."""
    from anjuka.core.keys import keyring, rotate

    new_id = rotate(keyring().path, family, activate=not staged)
    if staged:
        click.echo(f"{family}: new key {new_id} staged (read, not yet written with)")
    else:
        click.echo(f"{family}: new active key {new_id}")


@keys.command("activate")
@click.argument("family", type=click.Choice(KEY_FAMILIES))
@click.argument("key_id")
@with_appcontext
def keys_activate(family: str, key_id: str) -> None:
    """Write new values with KEY_ID of FAMILY (a staged key every process already reads)."""
    from anjuka.core.keys import activate, keyring

    try:
        activate(keyring().path, family, key_id)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"{family}: active key {key_id} (restart the app)")


@keys.command("reencrypt")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@with_appcontext
def keys_reencrypt(batch_size: int) -> None:
    """Rewrite stored personal data under the active keys, bound to its rows.

    Each batch is committed as it is done, so the app keeps serving (every
    key in the ring still reads) and an interrupted run is resumed by running
    it again: rows already under the active keys are skipped.
    """
    from rich.progress import TaskID

    from anjuka.audit.operations import record
    from anjuka.core.keys import keyring
    from anjuka.core.progress import progress_bar
    from anjuka.dwellings.operations import landlords_to_examine, reencrypt_landlords
    from anjuka.persons.operations import persons_to_examine, reencrypt_all

    with progress_bar() as bar:
        people = bar.add_task("persons", total=persons_to_examine())
        places = bar.add_task("landlords", total=landlords_to_examine())

        def committed(task: TaskID) -> Callable[[int], None]:
            def done(n: int) -> None:
                db.session.commit()
                bar.advance(task, n)

            return done

        try:
            persons = reencrypt_all(batch_size, done=committed(people))
            landlords = reencrypt_landlords(batch_size, done=committed(places))
        except BaseException:
            db.session.rollback()
            raise
    ring = keyring()
    with command_transaction():
        record(
            "keys.reencrypt",
            subject_type="keys",
            chain="system",
            details={
                "encryption": ring.encryption[0],
                "blind_index": ring.blind_index[0],
                "persons": persons,
                "landlords": landlords,
            },
        )
    click.echo(f"re-encrypted {persons} persons, {landlords} landlords")


@keys.command("show")
@with_appcontext
def keys_show() -> None:
    """Print the active key ids and the public signing keys."""
    import base64

    from anjuka.core.keys import keyring

    ring = keyring()
    click.echo(f"encryption: {ring.encryption[0]}  blind_index: {ring.blind_index[0]}")
    click.echo(f"card_master: {ring.card_master[0]}")
    for kid, raw in sorted(ring.signing_public_keys_raw().items()):
        mark = " (active)" if kid == ring.active_signing_key_id else ""
        click.echo(f"signing {kid}{mark}: {base64.b64encode(raw).decode()}")


@click.group()
def readers() -> None:
    """Desk readers: the devices that write and erase cards."""


@readers.command("create")
@click.argument("name")
@click.option("--area", "area_code", help="serve the dwellings of this area's subtree")
@click.option("--estate", "estate_id", type=int, help="serve the dwellings of this estate")
@with_appcontext
def readers_create(name: str, area_code: str | None, estate_id: int | None) -> None:
    """Register a reader; prints its id and its token (shown once)."""
    from anjuka.cards.readers import create_reader

    with command_transaction():
        reader, token = create_reader(name, area_code=area_code, estate_id=estate_id)
    click.echo(f"reader {reader.name} (id {reader.id}) created")
    click.echo(f"id: {reader.id}")
    click.echo(f"token: {token}")


@readers.command("list")
@with_appcontext
def readers_list() -> None:
    """Every reader, its scope and when its daemon was last heard from."""
    import sqlalchemy as sa

    from anjuka.cards.models import Reader

    for reader in db.session.scalars(sa.select(Reader).order_by(Reader.id)):
        scope = (
            f"area {reader.area.code}"
            if reader.area
            else f"estate {reader.estate_id}"
            if reader.estate_id
            else "everywhere"
        )
        state = "active" if reader.active else "revoked"
        seen = reader.last_seen_at.isoformat(timespec="seconds") if reader.last_seen_at else "never"
        click.echo(f"{reader.id}\t{reader.name}\t{scope}\t{state}\tlast seen {seen}")


@readers.command("revoke")
@click.argument("reader_id", type=int)
@with_appcontext
def readers_revoke(reader_id: int) -> None:
    """Disable a reader's token at once; its open jobs are cancelled."""
    from anjuka.cards.operations import revoke_reader
    from anjuka.cards.permissions import get_reader_or_404

    with command_transaction():
        cancelled = revoke_reader(get_reader_or_404(reader_id, lock="update"))
    click.echo(f"reader {reader_id} revoked; {len(cancelled)} open jobs cancelled")


@click.command("demo")
@click.option("--seed", default=20261129, help="random seed for the demo residents")
@with_appcontext
def demo(seed: int) -> None:
    """Load a demo city (areas, estates, dwellings, residents, users of every role)."""
    from anjuka.demo import load_demo

    with command_transaction():
        city = load_demo(seed)
    click.echo(f"demo city loaded: {city.dwellings} dwellings, {city.residents} residents")
    click.echo("users (passwords are shown this once):")
    for username, password in city.passwords.items():
        click.echo(f"  {username:<11} {password}")


def _build_app(*_args: object, **_kwargs: object):
    return create_app()


cli = FlaskGroup(create_app=_build_app, help="Anjuka: the Anju e-Card registry.")
cli.add_command(users)
cli.add_command(audit)
cli.add_command(keys)
cli.add_command(demo)
cli.add_command(webhooks)
cli.add_command(sweep)
cli.add_command(readers)
cli.add_command(gen_city)
cli.add_command(import_command)
cli.add_command(stats)
cli.add_command(retention)
cli.add_command(persons)


def main() -> None:
    """Console entry point."""
    cli.main()
