"""Bodies of the card, reader and job endpoints."""

import marshmallow as ma
from marshmallow import fields, validate

from anjuka.cards.jobs import MAX_ATTEMPTS, erase_keys, is_erase, lease_seconds
from anjuka.cards.models import (
    DESK_REVOCATION_REASONS,
    CardType,
    JobKind,
    JobStatus,
    ReportOutcome,
)
from anjuka.cards.readers import reader_area_code
from anjuka.core.dumping import dump_context
from anjuka.core.fields import Id, computed
from cardreader.record import MAX_UID_SIZE

HEX = r"^(?:[0-9a-fA-F]{2})+$"


class Hex(fields.String):
    """Hex text of bytes, loaded as lowercase."""

    def __init__(self, max_bytes: int, **kwargs) -> None:
        kwargs.setdefault(
            "validate",
            [validate.Length(2, 2 * max_bytes), validate.Regexp(HEX, error="Not hex bytes.")],
        )
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).lower()


class CardIssueSchema(ma.Schema):
    residence_id = Id(required=True, strict=True)
    reader_id = Id(required=True, strict=True)


class CardIssuedSchema(ma.Schema):
    """A card's job just queued (dumps the job)."""

    card_no = fields.String(required=True, attribute="card.card_no")
    status = fields.String(required=True, attribute="card.status")
    job_id = fields.Integer(required=True, attribute="id")
    residence_id = fields.Integer(attribute="card.residence_id")
    reader_id = fields.Integer()


class CardRevokeSchema(ma.Schema):
    reason = fields.String(
        required=True, validate=validate.OneOf([r.value for r in DESK_REVOCATION_REASONS])
    )


class CardReaderChoiceSchema(ma.Schema):
    reader_id = Id(
        strict=True,
        metadata={
            "description": "default: the reader that wrote the card (return) or ran the"
            " last job (retry)"
        },
    )


class JobSummarySchema(ma.Schema):
    """A card's latest job, as the card shows it."""

    id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    reader_id = fields.Integer()
    attempt = fields.Integer()
    error = fields.String(allow_none=True)


class CardSchema(ma.Schema):
    """A card as the desk sees it: no personal data is on it or in it."""

    card_no = fields.String()
    status = fields.String()
    residence_id = fields.Integer()
    person_id = fields.Integer()
    card_type = fields.String(allow_none=True)
    uid = fields.String(allow_none=True, metadata={"description": "chip UID, hex"})
    key_id = fields.Integer(allow_none=True, metadata={"description": "signing key id"})
    issued_at = fields.DateTime()
    activated_at = fields.DateTime(allow_none=True)
    expires_on = fields.Date(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    revocation_reason = fields.String(allow_none=True)
    returned_at = fields.DateTime(allow_none=True)
    job = fields.Nested(
        JobSummarySchema,
        attribute="latest_job",
        allow_none=True,
        metadata={"description": "latest job"},
    )


class JobSchema(ma.Schema):
    """A job as the desk and the daemon see its state."""

    id = fields.Integer()
    kind = fields.String(validate=validate.OneOf([k.value for k in JobKind]))
    status = fields.String(validate=validate.OneOf([s.value for s in JobStatus]))
    card_no = fields.String(attribute="card.card_no")
    card_status = fields.String(attribute="card.status")
    reader_id = fields.Integer()
    attempt = fields.Integer()
    max_attempts = computed(fields.Integer, lambda _job: MAX_ATTEMPTS)
    uid = fields.String(allow_none=True)
    card_type = fields.String(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "the last failure, readable"})
    created_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    lease_expires_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class ReaderCreateSchema(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(1, 80))
    area_code = fields.String(validate=validate.Length(1, 32))
    estate_id = Id(strict=True)


class ReaderSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    area_code = computed(
        fields.String, lambda reader: reader.area.code if reader.area else None, allow_none=True
    )
    estate_id = fields.Integer(allow_none=True)
    active = fields.Boolean()
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    last_seen_at = fields.DateTime(allow_none=True)


class ReaderCreatedSchema(ReaderSchema):
    """A reader just registered, with its token (the view passes it in the dump context)."""

    token = computed(
        fields.String,
        lambda _reader: dump_context()["reader_token"],
        metadata={"description": "shown once; only its hash is kept"},
    )


class ReaderMeSchema(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    area_code = computed(fields.String, reader_area_code, allow_none=True)
    estate_id = fields.Integer(allow_none=True)


# -- the daemon's side (docs/job-protocol.md) ---------------------------------


class PollQuerySchema(ma.Schema):
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0),
        metadata={"description": "seconds to wait for a job; at most 30 are used"},
    )
    holder = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"),
        metadata={
            "description": "the daemon process's own id: a job it holds is handed back"
            " to it, never to another holder"
        },
    )
    run = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"),
        metadata={
            "description": "this run of the daemon (new at each start): once the daemon"
            " releases its jobs naming it, a poll of this run ends and claims nothing"
        },
    )


class DaemonJobSchema(ma.Schema):
    """A job as the daemon receives it; an erase carries the chip and its keys."""

    id = fields.Integer()
    kind = fields.String()
    card_no = fields.String(attribute="card.card_no")
    attempt = fields.Integer()
    lease_seconds = computed(fields.Integer, lease_seconds)
    expected_uid = computed(
        fields.String, lambda job: job.uid if is_erase(job) else None, allow_none=True
    )
    card_type = computed(
        fields.String, lambda job: job.card_type if is_erase(job) else None, allow_none=True
    )
    keys = computed(
        fields.Dict, erase_keys, keys=fields.String(), values=fields.String(), allow_none=True
    )


class HolderQuerySchema(ma.Schema):
    holder = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"))


class ReleaseSchema(ma.Schema):
    run = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"),
        metadata={"description": "the run that is over: its polls still open end at once"},
    )


class ReleasedSchema(ma.Schema):
    released = fields.List(
        fields.Integer(), metadata={"description": "the jobs handed back to the queue"}
    )


class UidReportSchema(ma.Schema):
    uid = Hex(MAX_UID_SIZE, required=True)
    card_type = fields.String(required=True, validate=validate.OneOf([t.value for t in CardType]))
    attempt = fields.Integer(strict=True, validate=validate.Range(1, 1000))


class UidAnswerSchema(ma.Schema):
    job_id = fields.Integer()
    card_no = fields.String()
    record = fields.String(metadata={"description": "hex of the signed record to write"})
    keys = fields.Dict(keys=fields.String(), values=fields.String())
    key_id = fields.Integer()
    valid_until = fields.Date()


class ResultReportSchema(ma.Schema):
    outcome = fields.String(
        required=True, validate=validate.OneOf([o.value for o in ReportOutcome])
    )
    uid = Hex(MAX_UID_SIZE)
    record = Hex(1024)
    error = fields.String(validate=validate.Length(max=2000))
    attempt = fields.Integer(strict=True, validate=validate.Range(1, 1000))

    @ma.validates_schema
    def _done_names_the_card(self, data: dict, **_kwargs) -> None:
        if data["outcome"] == ReportOutcome.DONE and "uid" not in data:
            raise ma.ValidationError("A done report names the card's UID.", "uid")
