"""A form-filling HTTP client for tests: what a person with JavaScript off can do, over real HTTP.

It follows redirects across hosts (shop → gateway → shop), keeps cookies per host, reads the
forms on a page (hidden CSRF tokens included) and submits them with the fields a person fills in.
"""

from __future__ import annotations

from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import urljoin

import requests


class Form:
    def __init__(self, action: str, method: str, attrs: dict):
        self.action = action
        self.method = method.upper()
        self.attrs = attrs
        self.fields: dict[str, str] = {}
        self.buttons: list[dict] = []
        self.selects: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"<Form {self.method} {self.action} {sorted(self.fields)}>"


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._link: dict | None = None
        self._text: list[str] = []
        self._button: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        form = self.forms[-1] if self.forms else None
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get"), a))
        elif tag == "input" and form is not None and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                form.buttons.append({"name": a["name"], "value": a.get("value", ""), "text": ""})
            elif kind in ("checkbox", "radio"):
                if "checked" in a:
                    form.fields[a["name"]] = a.get("value", "on")
            else:
                form.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and form is not None:
            self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}
            form.buttons.append(self._button)
        elif tag == "select" and form is not None and a.get("name"):
            self._select = a["name"]
            form.selects[self._select] = []
        elif tag == "option" and form is not None and self._select:
            form.selects[self._select].append(a.get("value", ""))
            if "selected" in a or self._select not in form.fields:
                form.fields[self._select] = a.get("value", "")
        elif tag == "textarea" and form is not None and a.get("name"):
            self._textarea = a["name"]
            form.fields[self._textarea] = ""
        elif tag == "a" and "href" in a:
            self._link = a
            self._text = []

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "button":
            self._button = None
        elif tag == "a" and self._link is not None:
            self.links.append((" ".join("".join(self._text).split()), self._link["href"]))
            self._link = None

    def handle_data(self, data):
        if self._textarea and self.forms:
            self.forms[-1].fields[self._textarea] += data
        if self._link is not None:
            self._text.append(data)
        if self._button is not None:
            self._button["text"] += data.strip()


class Page:
    def __init__(self, response: requests.Response):
        self.response = response
        self.url = response.url
        self.status = response.status_code
        self.text = response.text
        parser = _FormParser()
        parser.feed(self.text)
        self.forms = parser.forms
        self.links = parser.links

    @classmethod
    def from_test_client(cls, response) -> Page:
        """A Flask test client's response, read as a page: its forms and links."""
        return cls(
            SimpleNamespace(
                url="http://localhost" + response.request.path,
                status_code=response.status_code,
                text=response.get_data(as_text=True),
            )
        )

    def form(self, contains: str = "", button: str | None = None) -> Form:
        """The first form whose action contains ``contains`` (and that has ``button``, if given)."""
        for form in self.forms:
            if contains in form.action and (
                button is None
                or any(button in b["text"] or button == b["value"] for b in form.buttons)
            ):
                return form
        raise AssertionError(f"no form with action ~{contains!r} on {self.url}: {self.forms}")

    def link(self, text: str) -> str:
        for label, href in self.links:
            if text in label:
                return urljoin(self.url, href)
        raise AssertionError(f"no link {text!r} on {self.url}: {self.links}")

    def __contains__(self, text: str) -> bool:
        return text in self.text


class Browser:
    def __init__(self, timeout: float = 30):
        self.http = requests.Session()
        self.timeout = timeout
        self.page: Page | None = None

    def get(self, url: str, **kwargs) -> Page:
        response = self.http.get(url, timeout=self.timeout, **kwargs)
        self.page = Page(response)
        return self.page

    def submit(self, form: Form, button: str | None = None, **values) -> Page:
        """Submit ``form`` as shown, with ``values`` typed in and the named button pressed."""
        data = dict(form.fields)
        data.update({k: str(v) for k, v in values.items()})
        if button is not None:
            # An exact value or label wins over a partial one ("pay" is in "Cancel payment").
            named = [b for b in form.buttons if b["name"]]
            chosen = [b for b in named if button in (b["value"], b["text"])] or [
                b for b in named if button in b["text"]
            ]
            if chosen:
                data[chosen[0]["name"]] = chosen[0]["value"]
        base = self.page.url if self.page else ""
        target = urljoin(base, form.action or base)
        if form.method == "POST":
            response = self.http.post(target, data=data, timeout=self.timeout)
        else:
            response = self.http.get(target, params=data, timeout=self.timeout)
        self.page = Page(response)
        return self.page
