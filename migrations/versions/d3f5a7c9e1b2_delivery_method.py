"""Delivery methods: delivery_method table

Revision ID: d3f5a7c9e1b2
Revises: b7e4d1c9a2f3
Create Date: 2026-12-02 12:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3f5a7c9e1b2'
down_revision = 'b7e4d1c9a2f3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'delivery_method',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('price', sa.Integer(), nullable=False),
        sa.Column('free_over', sa.Integer(), nullable=True),
        sa.Column('countries', sa.String(length=1000), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_method')),
    )


def downgrade():
    op.drop_table('delivery_method')
