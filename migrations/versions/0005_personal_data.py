"""personal data: phones encrypted at rest and bound to their rows, with masks

Persons' and landlords' phones move from clear text to AES-GCM ciphertexts
bound to their row (anjuka.core.protect), beside the masks responses show.
The conversion needs the registry's keys, so run it as ``anjuka db upgrade``
(the app's keys are loaded there). Document numbers written before rows
were bound still decrypt; ``anjuka keys reencrypt`` binds them.

Revision ID: 0005_personal_data
Revises: 0004_transfers
Create Date: 2026-12-01 22:00:00
"""

import sqlalchemy as sa
from alembic import op

from anjuka.core.migration_ops import drop_columns

revision = "0005_personal_data"
down_revision = "0004_transfers"
branch_labels = None
depends_on = None

PERSON_PHONE = "person.phone"
LANDLORD_PHONE = "dwelling.landlord_phone"


def _mask(phone: str) -> str:
    from anjuka.core.privacy import mask

    return mask(phone, start=1, end=4)


def upgrade():
    from anjuka.core.protect import encrypt

    op.add_column("persons", sa.Column("phone_enc", sa.LargeBinary(), nullable=True))
    op.add_column("persons", sa.Column("phone_masked", sa.String(length=32), nullable=True))
    op.add_column("dwellings", sa.Column("landlord_phone_enc", sa.LargeBinary(), nullable=True))
    op.add_column(
        "dwellings", sa.Column("landlord_phone_masked", sa.String(length=32), nullable=True)
    )
    conn = op.get_bind()
    persons = conn.execute(
        sa.text("SELECT id, document_index, phone FROM persons WHERE phone IS NOT NULL")
    ).all()
    for row in persons:
        conn.execute(
            sa.text("UPDATE persons SET phone_enc = :enc, phone_masked = :masked WHERE id = :id"),
            {
                "enc": encrypt(row.phone, PERSON_PHONE, f"persons:{row.document_index}"),
                "masked": _mask(row.phone),
                "id": row.id,
            },
        )
    landlords = conn.execute(
        sa.text("SELECT id, landlord_phone FROM dwellings WHERE landlord_phone IS NOT NULL")
    ).all()
    for row in landlords:
        conn.execute(
            sa.text(
                "UPDATE dwellings SET landlord_phone_enc = :enc, landlord_phone_masked = :masked"
                " WHERE id = :id"
            ),
            {
                "enc": encrypt(row.landlord_phone, LANDLORD_PHONE, f"dwellings:{row.id}"),
                "masked": _mask(row.landlord_phone),
                "id": row.id,
            },
        )
    drop_columns("persons", "phone")
    drop_columns("dwellings", "landlord_phone")


def downgrade():
    from anjuka.core.protect import decrypt

    op.add_column("persons", sa.Column("phone", sa.String(length=32), nullable=True))
    op.add_column("dwellings", sa.Column("landlord_phone", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    persons = conn.execute(
        sa.text("SELECT id, document_index, phone_enc FROM persons WHERE phone_enc IS NOT NULL")
    ).all()
    for row in persons:
        phone = decrypt(row.phone_enc, PERSON_PHONE, f"persons:{row.document_index}")
        conn.execute(
            sa.text("UPDATE persons SET phone = :phone WHERE id = :id"), {"phone": phone, "id": row.id}
        )
    landlords = conn.execute(
        sa.text("SELECT id, landlord_phone_enc FROM dwellings WHERE landlord_phone_enc IS NOT NULL")
    ).all()
    for row in landlords:
        phone = decrypt(row.landlord_phone_enc, LANDLORD_PHONE, f"dwellings:{row.id}")
        conn.execute(
            sa.text("UPDATE dwellings SET landlord_phone = :phone WHERE id = :id"),
            {"phone": phone, "id": row.id},
        )
    drop_columns("persons", "phone_masked", "phone_enc")
    drop_columns("dwellings", "landlord_phone_masked", "landlord_phone_enc")
