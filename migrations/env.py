"""Alembic environment: the application's engine and metadata."""

from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name and not getattr(config, "anjuka_quiet", False):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

db = current_app.extensions["migrate"].db


def render_item(type_, obj, autogen_context):
    """Write our column types as the plain SQLAlchemy types they store."""
    if type_ == "type" and obj.__class__.__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


options = {
    "render_item": render_item,
    "target_metadata": db.metadata,
    "render_as_batch": True,
    "compare_type": True,
}


def run_offline() -> None:
    """Emit SQL for the configured database without connecting."""
    context.configure(url=db.engine.url, literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations over the application's engine."""
    with db.engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
