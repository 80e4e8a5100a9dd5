"""Refunds by line: the refund_line table

Revision ID: b8d0f2a4c6e9
Revises: f1b3d5a7c9e2
Create Date: 2026-12-02 15:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8d0f2a4c6e9'
down_revision = 'f1b3d5a7c9e2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'refund_line',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('order_line_id', sa.Integer(), nullable=True),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('restock', sa.Boolean(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=False),
        sa.Column('refund_ref', sa.String(length=80), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor', sa.String(length=254), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['attempt_id'], ['payment_attempt.id'],
            name=op.f('fk_refund_line_attempt_id_payment_attempt'),
        ),
        sa.ForeignKeyConstraint(
            ['order_id'], ['order.id'], name=op.f('fk_refund_line_order_id_order')
        ),
        sa.ForeignKeyConstraint(
            ['order_line_id'], ['order_line.id'],
            name=op.f('fk_refund_line_order_line_id_order_line'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_refund_line')),
    )
    with op.batch_alter_table('refund_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_line_order_id'), ['order_id'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_refund_line_order_line_id'), ['order_line_id'], unique=False
        )


def downgrade():
    with op.batch_alter_table('refund_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refund_line_order_line_id'))
        batch_op.drop_index(batch_op.f('ix_refund_line_order_id'))
    op.drop_table('refund_line')
