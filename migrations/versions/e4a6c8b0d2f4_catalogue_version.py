"""The catalogue's version counter (catalogue page cache)

Revision ID: e4a6c8b0d2f4
Revises: d3f5a7c9e1b2
Create Date: 2026-12-02 12:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e4a6c8b0d2f4'
down_revision = 'd3f5a7c9e1b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'catalogue_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_version')),
    )


def downgrade():
    op.drop_table('catalogue_version')
