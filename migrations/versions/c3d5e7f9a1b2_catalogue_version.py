"""The catalogue's version counter (catalogue page cache)

Revision ID: c3d5e7f9a1b2
Revises: b7e4d1c9a2f3
Create Date: 2026-12-02 12:10:00

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
        'catalogue_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogue_version')),
    )


def downgrade():
    op.drop_table('catalogue_version')
