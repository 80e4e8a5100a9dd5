"""The order's language: order.locale

Revision ID: d0f2b4c6e8a1
Revises: c9e1a3b5d7f0
Create Date: 2026-12-02 16:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd0f2b4c6e8a1'
down_revision = "c9e1a3b5d7f0"
branch_labels = None
depends_on = None


def upgrade():
    # Orders placed before the shop spoke other languages were placed in English.
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('locale', sa.String(length=16), nullable=False, server_default='en')
        )


def downgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_column('locale')
