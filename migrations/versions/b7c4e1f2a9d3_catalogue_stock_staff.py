"""Catalogue and stock from the admin, stock history, staff roles and a second factor

category.parent_id; product.upload and product.tax_class; the stock_movement and audit_entry
tables; staff_user.role, can_refund, session_epoch and the TOTP columns.

Revision ID: b7c4e1f2a9d3
Revises: a1f3c2d4e5b6
Create Date: 2026-12-02 07:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "b7c4e1f2a9d3"
down_revision = "a1f3c2d4e5b6"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=254), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)

    op.create_table(
        "stock_movement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["order.id"], name=op.f("fk_stock_movement_order_id_order")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_stock_movement_product_id_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movement")),
    )
    with op.batch_alter_table("stock_movement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stock_movement_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_stock_movement_product_id"), ["product_id"], unique=False
        )

    with op.batch_alter_table("category", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_category_parent_id"), ["parent_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_category_parent_id_category"), "category", ["parent_id"], ["id"]
        )

    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("upload", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("tax_class", sa.String(length=20), server_default="standard", nullable=False)
        )

    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        # Accounts made before roles existed could do everything: they stay owners.
        batch_op.add_column(
            sa.Column("role", sa.String(length=20), nullable=False, server_default="owner")
        )
        batch_op.add_column(
            sa.Column("can_refund", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("totp_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    # The defaults were for the rows already there; new accounts always say what they are.
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.alter_column("role", server_default=None)
        batch_op.alter_column("can_refund", server_default=None)
        batch_op.alter_column("totp_enabled", server_default=None)
        batch_op.alter_column("session_epoch", server_default=None)


def downgrade():
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("can_refund")
        batch_op.drop_column("role")

    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_column("tax_class")
        batch_op.drop_column("upload")

    with op.batch_alter_table("category", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_category_parent_id_category"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_category_parent_id"))
        batch_op.drop_column("parent_id")

    with op.batch_alter_table("stock_movement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_movement_product_id"))
        batch_op.drop_index(batch_op.f("ix_stock_movement_order_id"))

    op.drop_table("stock_movement")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entry_at"))

    op.drop_table("audit_entry")
