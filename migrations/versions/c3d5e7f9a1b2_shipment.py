"""An order's dispatch: the shipment table

Revision ID: c3d5e7f9a1b2
Revises: b7e4d1c9a2f3
Create Date: 2026-12-02 12:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3d5e7f9a1b2'
down_revision = 'b7e4d1c9a2f3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'shipment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('carrier', sa.String(length=60), nullable=False),
        sa.Column('tracking', sa.String(length=60), nullable=False),
        sa.Column('dispatched_by', sa.String(length=254), nullable=False),
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['order.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_id'),
    )


def downgrade():
    op.drop_table('shipment')
