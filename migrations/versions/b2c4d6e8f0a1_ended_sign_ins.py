"""Staff sign-ins that ended (signing out revokes the cookie)

Revision ID: b2c4d6e8f0a1
Revises: b7c4e1f2a9d3
Create Date: 2026-12-02 07:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b2c4d6e8f0a1'
down_revision = 'b7c4e1f2a9d3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ended_sign_in',
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sid', name=op.f('pk_ended_sign_in')),
    )


def downgrade():
    op.drop_table('ended_sign_in')
