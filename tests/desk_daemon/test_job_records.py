"""The server's answers parsed into the daemon's records, refused when malformed."""

from __future__ import annotations

import pytest
from cardreader_testkit import make_record

from cardreader.jobs import Binding, Job, JobFormatError
from cardreader.record import RecordFormatError


def test_a_job_is_read_with_its_erase_details_and_extra_fields_ignored():
    job = Job.from_json(
        {
            "id": 17,
            "kind": "erase",
            "card_no": "AJ00000012Q",
            "attempt": 2,
            "lease_seconds": 120,
            "expected_uid": "04A1B2C3",
            "card_type": "mifare1k",
            "keys": {"key_b": "00" * 6},
            "something_new": True,
        }
    )
    assert (job.id, job.kind, job.attempt, job.erase_card_type) == (17, "erase", 2, "mifare1k")
    assert job.attempt_report() == {"attempt": 2}
    assert job.keys == {"key_b": "00" * 6}


def test_a_job_without_a_usable_attempt_or_card_type_still_reads():
    job = Job.from_json({"id": 3, "kind": "scan", "attempt": 0, "card_type": "mifare4k"})
    assert job.attempt_report() == {}
    assert job.current_attempt is None
    assert job.erase_card_type is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"kind": "issue"},
        {"id": "17", "kind": "issue"},
        {"id": True, "kind": "issue"},
        {"id": 17},
        {"id": 17, "kind": "issue", "attempt": "1"},
        {"id": 17, "kind": "erase", "keys": {"key_b": 1}},
        {"id": 17, "kind": "erase", "keys": "00"},
    ],
)
def test_a_malformed_job_is_refused(body):
    with pytest.raises(JobFormatError):
        Job.from_json(body)


def test_a_binding_carries_the_record_bytes_and_keys():
    record = make_record(bytes.fromhex("01020304"))
    binding = Binding.from_json({"record": record.hex(), "keys": {"write_key": "11" * 16}})
    assert binding.record == record
    assert binding.keys == {"write_key": "11" * 16}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"keys": {}}, JobFormatError),
        ({"record": "zz", "keys": {}}, JobFormatError),
        ({"record": "00" * 10, "keys": {}}, RecordFormatError),
    ],
)
def test_a_malformed_binding_is_refused(body, error):
    with pytest.raises(error):
        Binding.from_json(body)


def test_a_binding_without_keys_is_refused():
    record = make_record(bytes.fromhex("01020304"))
    with pytest.raises(JobFormatError, match="'keys' is missing"):
        Binding.from_json({"record": record.hex()})
