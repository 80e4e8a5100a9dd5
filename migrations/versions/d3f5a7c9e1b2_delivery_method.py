"""Delivery and VAT: delivery_method, order_tax, order.delivery_name and delivery_price

Revision ID: d3f5a7c9e1b2
Revises: c3d5e7f9a1b2
Create Date: 2026-12-02 12:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3f5a7c9e1b2'
down_revision = 'c3d5e7f9a1b2'
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
    op.create_table(
        'order_tax',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('tax_class', sa.String(length=20), nullable=False),
        sa.Column('rate', sa.Integer(), nullable=False),
        sa.Column('gross', sa.Integer(), nullable=False),
        sa.Column('vat', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['order_id'], ['order.id'], name=op.f('fk_order_tax_order_id_order')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_tax')),
    )
    op.create_index(op.f('ix_order_tax_order_id'), 'order_tax', ['order_id'], unique=False)
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('delivery_name', sa.String(length=120), nullable=False, server_default='')
        )
        batch_op.add_column(
            sa.Column('delivery_price', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade():
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_column('delivery_price')
        batch_op.drop_column('delivery_name')
    op.drop_index(op.f('ix_order_tax_order_id'), table_name='order_tax')
    op.drop_table('order_tax')
    op.drop_table('delivery_method')
