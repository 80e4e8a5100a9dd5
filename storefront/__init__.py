"""Storefront: a Flask shop that hands payments off to a gateway by redirect and gets them back.

``create_app`` is the application factory: configuration from defaults, then ``STOREFRONT_*``
environment variables, then ``test_config``; then extensions, blueprints, error pages, security
headers and commands, each registered by its own function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from storefront import config as configuration
from storefront import database, i18n
from storefront.extensions import csrf, db, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: Mapping | None = None) -> Flask:
    # The instance folder holds the SQLite file, the sandbox's state and written mails.
    instance = (test_config or {}).get("INSTANCE_PATH") or os.environ.get(
        "STOREFRONT_INSTANCE_PATH", str(ROOT / "instance")
    )
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(configuration.load(app.instance_path, os.environ, test_config))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if app.config["PROXY_COUNT"]:  # None (unset) and 0: browsers reach the shop directly
        # Behind a load balancer: take the client's address and scheme from the trusted proxies.
        count = app.config["PROXY_COUNT"]
        # Wrapping ``wsgi_app`` is how Flask takes middleware; its type calls it a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count
        )
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_templating(app)
    register_security(app)
    register_commands(app)
    register_ops(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    database.init_app(app)
    # Batch mode: SQLite can only alter a table by rebuilding it, which Alembic then does.
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    i18n.init_app(app)
    # Import the models so that metadata knows every table (migrations, create_all).
    from storefront import ratelimit as _ratelimit  # noqa: F401
    from storefront.admin import models as _admin  # noqa: F401
    from storefront.admin import sessions as _sessions  # noqa: F401
    from storefront.catalogue import cache as _catalogue_cache  # noqa: F401
    from storefront.catalogue import models as _catalogue  # noqa: F401
    from storefront.checkout import models as _checkout  # noqa: F401
    from storefront.orders import models as _orders  # noqa: F401
    from storefront.orders import refunds as _refunds  # noqa: F401
    from storefront.orders import shipping as _shipping  # noqa: F401
    from storefront.payments import models as _payments  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from storefront.admin.images import media
    from storefront.admin.views import bp as admin
    from storefront.cart.views import bp as cart
    from storefront.catalogue.views import bp as catalogue
    from storefront.checkout.views import bp as checkout
    from storefront.orders.views import bp as orders
    from storefront.pages.views import bp as pages
    from storefront.payments.views import bp as payments

    for blueprint in (catalogue, cart, checkout, orders, pages, payments, admin, media):
        app.register_blueprint(blueprint)


def register_errorhandlers(app: Flask) -> None:
    from storefront.errors import init_app

    init_app(app)


def register_templating(app: Flask) -> None:
    from storefront.templating import init_app

    init_app(app)


def register_security(app: Flask) -> None:
    from storefront.security import init_app

    init_app(app)


def register_commands(app: Flask) -> None:
    from storefront.admin.cli import init_app as init_admin_cli
    from storefront.cli import init_app

    init_app(app)
    init_admin_cli(app)


def register_ops(app: Flask) -> None:
    from storefront.ops import init_app

    init_app(app)
