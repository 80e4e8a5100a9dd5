"""Extensions, created once here and bound to the application in ``create_app``."""

from typing import TYPE_CHECKING

from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints, so that migrations can drop and alter them on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)

# The base class of every model. ``db.Model`` is made at run time, so a type checker cannot
# use it as a base class; it sees the declarative base it is built on instead.
if TYPE_CHECKING:
    Model = Base  # what the type checker sees: the declarative base with the naming convention
else:
    Model = db.Model  # what runs: Flask-SQLAlchemy's model class (table names, session)

migrate = Migrate()
csrf = CSRFProtect()
babel = Babel()  # bound with its locale selector by storefront.i18n
