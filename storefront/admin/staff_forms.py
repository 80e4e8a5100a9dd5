"""Forms of the staff pages and of one's own account."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # not in types-WTForms 3.2
from wtforms.validators import EqualTo, InputRequired, Length, ValidationError

from storefront.admin.models import MAX_PASSWORD_LENGTH, Role, password_problem

ROLE_CHOICES = [
    SelectChoice(Role.STAFF.value, "Staff: orders, fulfilment, catalogue and stock"),
    SelectChoice(Role.OWNER.value, "Owner: everything, including staff accounts and payments"),
]


class PasswordFields(FlaskForm):
    """A new password typed twice, checked against the policy for ``self.email_for_policy``."""

    password = PasswordField(
        "New password", validators=[InputRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )
    repeat = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("password", message="The two passwords differ.")],
    )

    def policy_email(self) -> str:
        return ""

    def validate_password(self, field) -> None:
        problem = password_problem(field.data or "", self.policy_email())
        if problem:
            raise ValidationError(problem)


class StaffForm(PasswordFields):
    """A new staff account, with the password the owner gives it."""

    email = StringField("Email", validators=[InputRequired(), Length(max=254)])
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.STAFF.value)
    can_refund = BooleanField("May capture, void and refund payments")

    def policy_email(self) -> str:
        return self.email.data or ""

    def validate_email(self, field) -> None:
        email = (field.data or "").strip()
        local, _, domain = email.partition("@")
        if not local or "." not in domain or any(c.isspace() or not c.isprintable() for c in email):
            raise ValidationError("Type an email address, such as sam@example.com.")


class StaffEditForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    can_refund = BooleanField("May capture, void and refund payments")


class ResetPasswordForm(PasswordFields):
    def __init__(self, email: str, **kwargs):
        super().__init__(**kwargs)
        self._email = email

    def policy_email(self) -> str:
        return self._email


class OwnPasswordForm(ResetPasswordForm):
    current = PasswordField(
        "Current password", validators=[InputRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app", validators=[InputRequired(), Length(max=12)]
    )
    next = HiddenField()
