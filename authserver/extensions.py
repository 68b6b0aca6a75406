"""Objects created once and bound to the app in create_app."""
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
# The base class of every model: Flask-SQLAlchemy derives db.Model from Base at run time, which a type
# checker cannot follow; both declare the same mapped attributes.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


class _MigrationsOnFirstUse:
    """Flask-Migrate's entry in `app.extensions`, set up when something first reads it (`authserver init`,
    the schema check, `flask_migrate.upgrade`): importing Flask-Migrate imports Alembic, a tenth of a
    second that serving requests and most commands never need. The first read puts Flask-Migrate's own
    entry in its place."""

    def __init__(self, app: Any, directory: str) -> None:
        self._app = app
        self._directory = directory

    def __getattr__(self, name: str) -> Any:
        from flask_migrate import Migrate

        Migrate(self._app, db, directory=self._directory)
        return getattr(self._app.extensions["migrate"], name)


def init_migrations(app: Any, directory: str) -> None:
    app.extensions["migrate"] = _MigrationsOnFirstUse(app, directory)
