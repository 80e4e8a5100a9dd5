"""Evidence names who caused it: payment_event.actor and actor_name

Revision ID: a1f3c2d4e5b6
Revises: 5c0e6958773a
Create Date: 2026-12-02 07:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a1f3c2d4e5b6'
down_revision = '5c0e6958773a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payment_event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('actor', sa.String(length=20), nullable=False, server_default='shop')
        )
        batch_op.add_column(
            sa.Column('actor_name', sa.String(length=254), nullable=False, server_default='')
        )
    # The defaults were for the rows already there; new rows always name their actor.
    with op.batch_alter_table('payment_event', schema=None) as batch_op:
        batch_op.alter_column('actor', server_default=None)
        batch_op.alter_column('actor_name', server_default=None)


def downgrade():
    with op.batch_alter_table('payment_event', schema=None) as batch_op:
        batch_op.drop_column('actor_name')
        batch_op.drop_column('actor')
