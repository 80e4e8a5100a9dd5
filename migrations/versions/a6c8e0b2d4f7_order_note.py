"""Internal notes on orders: the order_note table

Revision ID: a6c8e0b2d4f7
Revises: e4a6c8b0d2f4
Create Date: 2026-12-02 14:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a6c8e0b2d4f7'
down_revision = 'e4a6c8b0d2f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'order_note',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('author', sa.String(length=254), nullable=False),
        sa.Column('author_name', sa.String(length=200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ['order_id'], ['order.id'], name=op.f('fk_order_note_order_id_order')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_note')),
    )
    with op.batch_alter_table('order_note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_note_order_id'), ['order_id'], unique=False)


def downgrade():
    with op.batch_alter_table('order_note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_note_order_id'))
    op.drop_table('order_note')
