"""The customer's phone, billing address and note: order.phone, billing_*, note

Revision ID: c9e1a3b5d7f0
Revises: b8d0f2a4c6e9
Create Date: 2026-12-02 16:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c9e1a3b5d7f0'
down_revision = 'b8d0f2a4c6e9'
branch_labels = None
depends_on = None

# Orders placed before have none of them: "" is "not given" (for the billing address, "the
# same as the delivery address").
COLUMNS = (
    ('phone', sa.String(length=40)),
    ('billing_name', sa.String(length=200)),
    ('billing_address', sa.String(length=300)),
    ('billing_city', sa.String(length=120)),
    ('billing_postcode', sa.String(length=20)),
    ('billing_country', sa.String(length=2)),
    ('note', sa.Text()),
)


def upgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
