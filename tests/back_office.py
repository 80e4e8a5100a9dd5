"""The back office through the Flask test client: forms filled in as shown (CSRF token
included), files uploaded, accounts made. Used by the catalogue and staff tests."""

from __future__ import annotations

from io import BytesIO
from urllib.parse import urljoin, urlsplit

from PIL import Image

from storefront.admin.models import Role, StaffUser
from storefront.extensions import db
from tests.browser import Form, Page

OWNER = "owner@example.com"
CLERK = "clerk@example.com"
PASSWORD = "a long and quiet harbour"


def make_account(app, email: str = OWNER, role: str = Role.OWNER, can_refund: bool = False):
    with app.app_context():
        user = StaffUser(email=email, name=email.split("@")[0].title(), role=role)
        user.can_refund = can_refund
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        return user.id


def picture(kind: str = "PNG", size=(64, 48), colour=(200, 80, 40), **save) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, format=kind, **save)
    return out.getvalue()


class Office:
    def __init__(self, client):
        self.client = client
        self.page: Page | None = None

    def _read(self, response) -> Page:
        self.response = response
        self.page = Page.from_test_client(response)
        return self.page

    def get(self, path: str) -> Page:
        return self._read(self.client.get(path, follow_redirects=True))

    def submit(self, form: Form, files: dict | None = None, **values) -> Page:
        data = dict(form.fields)
        data.update({k: str(v) for k, v in values.items()})
        for name, (content, filename) in (files or {}).items():
            data[name] = (BytesIO(content), filename)
        target = urlsplit(urljoin(self.page.url, form.action or self.page.url))
        if form.method == "POST":
            response = self.client.post(
                target.path,
                data=data,
                follow_redirects=True,
                content_type="multipart/form-data" if files else None,
            )
        else:
            response = self.client.get(target.path, query_string=data, follow_redirects=True)
        return self._read(response)

    def sign_in(self, email: str = OWNER, password: str = PASSWORD) -> Page:
        page = self.get("/admin/sign-in")
        return self.submit(page.form("/admin/sign-in"), email=email, password=password)

    def notices(self) -> str:
        return self.page.text
