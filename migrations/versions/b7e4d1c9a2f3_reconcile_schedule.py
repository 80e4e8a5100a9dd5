"""The reconciler's schedule on each attempt: payment_attempt.next_check_at and check_streak

Revision ID: b7e4d1c9a2f3
Revises: b2c4d6e8f0a1
Create Date: 2026-12-02 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7e4d1c9a2f3'
down_revision = 'b2c4d6e8f0a1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_check_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('check_streak', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.create_index(
            batch_op.f('ix_payment_attempt_next_check_at'), ['next_check_at'], unique=False
        )
    # The default was for the rows already there (no check made yet); new rows set their own.
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.alter_column('check_streak', server_default=None)


def downgrade():
    with op.batch_alter_table('payment_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_attempt_next_check_at'))
        batch_op.drop_column('check_streak')
        batch_op.drop_column('next_check_at')
