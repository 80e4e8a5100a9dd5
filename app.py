"""The WSGI entry point: ``gunicorn app:app`` (Procfile) and ``flask --app app …`` (Makefile).

With ``STOREFRONT_SANDBOX`` on (the default outside production) the sandbox gateway is mounted
under ``/sandbox`` of this same process, so a demo deployed from the Procfile alone takes test
payments, and the shop's default gateway URLs point there. The shop still reaches it only over
HTTP, exactly as it reaches a real gateway. Its state lives in ``instance/sandbox.db`` so that
every worker process sees the same payments.
"""

from pathlib import Path

from werkzeug.middleware.dispatcher import DispatcherMiddleware

from storefront import create_app

app = create_app()

if app.config["SANDBOX"]:
    from sandbox import create_app as create_sandbox

    # The mounted sandbox knows the shop by the shop's own credentials: a public demo that sets
    # its own (STOREFRONT_RBS_PASSWORD, …) keeps strangers out of the sandbox's merchant APIs,
    # which name each payment's customer as a real gateway's do.
    SHARED = (
        "RBS_USERNAME",
        "RBS_PASSWORD",
        "RBS_CALLBACK_KEY",
        "ALTAPAY_USERNAME",
        "ALTAPAY_PASSWORD",
        "ALTAPAY_TERMINAL",
        "ALTAPAY_SECRET",
        "INTERPAY_TERMID",
        "INTERPAY_PASS",
    )
    sandbox = create_sandbox(
        {
            "SANDBOX_DB": str(Path(app.instance_path) / "sandbox.db"),
            # The demo InterPay terminal charges in the shop's own currency.
            "SANDBOX_INTERPAY_CURRENCY": app.config["INTERPAY_CURRENCY"],
            **{f"SANDBOX_{name}": app.config[name] for name in SHARED},
        }
    )
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/sandbox": sandbox})
