"""The rest of a partial capture released: payment_attempt.released

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
