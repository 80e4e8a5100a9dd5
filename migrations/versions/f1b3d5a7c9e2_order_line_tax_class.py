"""The tax class frozen on each order line: order_line.tax_class

Revision ID: f1b3d5a7c9e2
Revises: f5b7d9e1a3c6
Create Date: 2026-12-02 14:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f1b3d5a7c9e2'
down_revision = 'f5b7d9e1a3c6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('tax_class', sa.String(length=20), nullable=False, server_default='standard')
        )
    # Lines placed before: the class their product has now, the best record there is.
    op.execute(
        "UPDATE order_line SET tax_class = (SELECT product.tax_class FROM product"
        " WHERE product.id = order_line.product_id) WHERE product_id IS NOT NULL"
    )


def downgrade():
    with op.batch_alter_table('order_line', schema=None) as batch_op:
        batch_op.drop_column('tax_class')
