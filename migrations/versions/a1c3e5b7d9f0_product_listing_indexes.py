"""Indexes for a category's listing: ix_product_listing_name, ix_product_listing_price

A category page counts the category's active products and reads one page of them in name or
price order; with these, both come from an index instead of from every product of the category.

Revision ID: a1c3e5b7d9f0
Revises: e5b7d9f1a3c8
Create Date: 2026-12-03 09:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a1c3e5b7d9f0'
down_revision = 'e5b7d9f1a3c8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_product_listing_name', 'product', ['category_id', 'active', 'name', 'id']
    )
    op.create_index(
        'ix_product_listing_price', 'product', ['category_id', 'active', 'price', 'id']
    )


def downgrade():
    op.drop_index('ix_product_listing_price', table_name='product')
    op.drop_index('ix_product_listing_name', table_name='product')
