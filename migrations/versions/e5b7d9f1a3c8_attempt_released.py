"""The rest of a partial capture released: payment_attempt.released

Revision ID: e5b7d9f1a3c8
Revises: d0f2b4c6e8a1
Create Date: 2026-12-02 16:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e5b7d9f1a3c8'
down_revision = 'd0f2b4c6e8a1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('released', sa.Integer(), nullable=False, server_default='0')
        )
    # The default was for the rows already there; new rows always set it.
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.alter_column('released', server_default=None)


def downgrade():
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.drop_column('released')
