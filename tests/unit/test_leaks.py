"""The leak finders the wire tests rely on: they must find every encoding a
leak would take, and must not call chance bytes in ciphertexts a leak."""

from __future__ import annotations

import base64
import json
import os
import random
import struct
from pathlib import Path

import pytest

from datawharf.v1 import buyer_pb2, common_pb2, party_pb2
from tests.leaks import (
    Traffic,
    WireRecord,
    chance_of_match,
    decimal_texts,
    decoded,
    find_any,
    find_figures,
    find_values,
    fixed_width,
    leaves,
    numbers_in,
    read_wire_log,
    significant_bytes,
    unknown_fields,
    wire_traffic,
)

# About what tests/integration/test_wire_privacy.py records in opaque bytes
# (ciphertexts, Paillier moduli, CKKS/BFV public contexts): 3.2 MB.
RECORDED_OPAQUE_BYTES = 3_200_000

# Per-holder figures of the size that test checks: a row count, a sum of
# cents and a sum of squared cents.
FIGURES = {"rows": (823, 0), "sum": (61_174_735, 2), "sum of squares": (9_081_112_346_521, 4)}


# ------------------------------------------------------------------ find_any


def test_finds_planted_patterns_at_any_offset() -> None:
    noise = os.urandom(100_000)
    planted = [b"P-000123", b"12.50", b"\x01\x02\x03\x04\x05\x06\x07\x08\x09", b"x", b"ab"]
    blob = planted[0] + noise[:5000] + planted[1] + noise[5000:9001] + planted[2] + noise[9001:] + planted[3] + planted[4]
    absent = [b"P-999999", b"77.77.77", b"\xff" * 12]
    assert find_any(blob, planted + absent) == set(planted)


def test_nothing_in_empty_blob() -> None:
    assert find_any(b"", [b"abc"]) == set()


# ------------------------------------------------------------------ encodings and odds


def test_decimal_texts() -> None:
    assert decimal_texts(823) == {"823"}
    assert decimal_texts(61_174_735, 2) == {"61174735", "61,174,735", "611747.35", "611,747.35"}
    assert decimal_texts(-1500, 2) == {"1500", "1,500", "15.00"}


def test_fixed_width() -> None:
    assert fixed_width(823) == {
        "int32 little-endian": b"\x37\x03\x00\x00", "int32 big-endian": b"\x00\x00\x03\x37",
        "int64 little-endian": b"\x37\x03" + b"\x00" * 6, "int64 big-endian": b"\x00" * 6 + b"\x03\x37",
    }
    assert fixed_width(-2)["int32 little-endian"] == b"\xfe\xff\xff\xff"
    assert set(fixed_width(1 << 40)) == {"int64 little-endian", "int64 big-endian"}
    assert fixed_width(1 << 64) == {}


def test_numbers_in_text_are_whole_tokens() -> None:
    assert numbers_in("deadline passed with 2 of 3 holder(s), 823 rows.") == {"2", "3", "823"}
    assert numbers_in("total 1,800 and 611,747.35") == {"1,800", "611,747.35"}
    # Not 823 in a longer number, a fraction, or an identifier.
    assert "823" not in numbers_in("1823 0.823 8230 job-823fa10c task-a823 823x")
    assert numbers_in("job-54e09dff42964a20 30d40eeded4248308d612e351f8d7c70") == set()


def test_significant_bytes_ignore_padding() -> None:
    assert significant_bytes(b"\x37\x03" + b"\x00" * 6) == 2
    assert significant_bytes(b"\xfe\xff\xff\xff") == 1
    assert significant_bytes(b"\x00\x12\x00\x34\x00") == 3
    assert significant_bytes(b"611747.35") == 9


def test_chance_of_match() -> None:
    assert chance_of_match(10, 11) == 0
    assert chance_of_match(1 << 24, 3) == pytest.approx(1.0, rel=1e-6)  # a 3-byte pattern: once per 16 MiB
    assert chance_of_match(RECORDED_OPAQUE_BYTES, 8) < 1e-12
    assert chance_of_match(RECORDED_OPAQUE_BYTES, 3) > 0.1  # why searching b"800" raw cried wolf


# ------------------------------------------------------------------ walking decoded messages


def test_leaves_walk_every_nested_and_repeated_field() -> None:
    job = buyer_pb2.Job(job_id="job-1", state=buyer_pb2.JOB_STATE_FAILED, deadline=12.5, tasks=[
        buyer_pb2.PartyTask(party="a", reason="r1"), buyer_pb2.PartyTask(party="b", state=3)])
    job.aggregate.encryption.paillier_n = b"\x01\x02"
    job.aggregate.encryption.coeff_mod_bit_sizes.extend([60, 40])
    got = [(path, value) for path, _, value in leaves(job)]
    assert got == [
        ("datawharf.v1.Job.job_id", "job-1"), ("datawharf.v1.Job.state", 6),
        ("datawharf.v1.Job.aggregate.encryption.paillier_n", b"\x01\x02"),
        ("datawharf.v1.Job.aggregate.encryption.coeff_mod_bit_sizes", 60),
        ("datawharf.v1.Job.aggregate.encryption.coeff_mod_bit_sizes", 40),
        ("datawharf.v1.Job.tasks.party", "a"), ("datawharf.v1.Job.tasks.reason", "r1"),
        ("datawharf.v1.Job.tasks.party", "b"), ("datawharf.v1.Job.tasks.state", 3),
        ("datawharf.v1.Job.deadline", 12.5),
    ]


def test_unknown_fields_are_reported() -> None:
    # A Heartbeat's bytes parsed as a Notice: field 1 is a double there, a string here.
    stray = party_pb2.Notice.FromString(party_pb2.Heartbeat(sent_at=1.5).SerializeToString())
    assert unknown_fields(stray) == ["datawharf.v1.Notice"]
    assert unknown_fields(party_pb2.Notice(message="x")) == []


def test_traffic_sorts_text_from_ciphertext() -> None:
    t = Traffic.of([party_pb2.PartyMessage(register=party_pb2.Register(software_version="0.1.0")),
                    common_pb2.EncryptedFigures(ciphertexts=[b"\x00\x9f\x01", b"printable 823 text"])])
    assert t.opaque == b"\x00\x9f\x01"
    assert set(t.numbers) == {"0.1.0", "823"}


# ------------------------------------------------------------------ a realistic fake wire log


def _record(method: str, caller: str, direction: str, msg) -> WireRecord:  # type: ignore[no-untyped-def]
    return WireRecord(method, caller, direction, msg.DESCRIPTOR.full_name, msg.SerializeToString(), msg)


def fake_log(*, plant_reason: str = "", plant_approx_rows: int = 0, plant_ciphertext: bytes = b"",
             plant_suppressed: int = 0, seed: int = 7) -> list[WireRecord]:
    """The messages of one aggregate job: listing, task, a contribution in two
    chunks, the buyer's watch and result, with something planted where asked."""
    rng = random.Random(seed)
    listing = common_pb2.DatasetListing(name="visits", approx_rows=plant_approx_rows or 820)
    n = rng.randbytes(256)
    task = party_pb2.Task(task_id="task-5e0a11f3b2c94d71", job_id="job-54e09dff42964a20", buyer="acme-insurance",
                          aggregate=common_pb2.AggregateSpec(dataset="visits", column="cost", decimals=2))
    task.aggregate.encryption.paillier_n = n
    ciphertexts = [rng.randbytes(512) for _ in range(4)]
    if plant_ciphertext:
        at = rng.randrange(512 - len(plant_ciphertext))
        ciphertexts[2] = ciphertexts[2][:at] + plant_ciphertext + ciphertexts[2][at + len(plant_ciphertext):]
    figures = common_pb2.EncryptedFigures(ciphertexts=ciphertexts,
                                          suppressed_groups=[plant_suppressed] if plant_suppressed else [])
    payload = figures.SerializeToString()
    half = len(payload) // 2
    view = buyer_pb2.Job(job_id=task.job_id, state=buyer_pb2.JOB_STATE_DONE, tasks=[
        buyer_pb2.PartyTask(party="st-mary", state=buyer_pb2.TASK_STATE_CONTRIBUTED, reason=plant_reason)])
    result = buyer_pb2.JobResult(job_id=task.job_id, contributors=["st-mary"],
                                 figures=common_pb2.EncryptedFigures(ciphertexts=[rng.randbytes(512)]))
    connect, buyer = "/datawharf.v1.PartyService/Connect", "/datawharf.v1.BuyerService/"
    return [
        _record(connect, "st-mary", "in", party_pb2.PartyMessage(register=party_pb2.Register(datasets=[listing]))),
        _record(connect, "st-mary", "out", party_pb2.GatewayMessage(task=task)),
        *(_record(connect, "st-mary", "in", party_pb2.PartyMessage(contribution=party_pb2.ContributionChunk(
            task_id=task.task_id, chunk=common_pb2.Chunk(seq=i, data=part, last=i == 1))))
          for i, part in enumerate((payload[:half], payload[half:]))),
        _record(buyer + "WatchJob", "acme-insurance", "out", view),
        _record(buyer + "FetchResult", "acme-insurance", "out",
                common_pb2.Chunk(seq=0, data=result.SerializeToString(), last=True)),
    ]


def test_a_clean_log_shows_no_figure() -> None:
    traffic, payloads = wire_traffic(fake_log())
    assert [type(p.message).__name__ for p in payloads] == ["EncryptedFigures", "JobResult"]
    assert traffic.unknown == []
    report = find_figures(traffic, FIGURES)
    assert report.found == [] and report.bound <= 1e-6


def test_chunks_are_reassembled_and_their_bytes_replaced_by_the_payload() -> None:
    messages, payloads = decoded(fake_log())
    assert all(not m.contribution.chunk.data for m in messages if isinstance(m, party_pb2.PartyMessage)
               and m.WhichOneof("body") == "contribution")
    assert len(payloads[0].message.ciphertexts) == 4 and payloads[0].caller == "st-mary"


def test_out_of_order_chunks_stay_opaque() -> None:
    log = fake_log()
    swapped = [log[0], log[1], log[3], log[2], *log[4:]]
    messages, payloads = decoded(swapped)
    assert [type(p.message).__name__ for p in payloads] == ["JobResult"]
    assert sum(len(m.contribution.chunk.data) for m in messages if isinstance(m, party_pb2.PartyMessage)) > 2000


@pytest.mark.parametrize("plant, expect", [
    ({"plant_reason": "st-mary holds 823 rows"}, "rows (823) as text '823', in datawharf.v1.Job.tasks.reason"),
    ({"plant_reason": "sum 611,747.35"}, "sum (61174735) as text '611,747.35', in datawharf.v1.Job.tasks.reason"),
    ({"plant_approx_rows": 823},
     "rows (823) as an integer field, in datawharf.v1.PartyMessage.register.datasets.approx_rows"),
    ({"plant_suppressed": 823},  # inside a chunked payload: found once reassembled
     "rows (823) as an integer field, in datawharf.v1.EncryptedFigures.suppressed_groups"),
    ({"plant_ciphertext": b"61174735"}, "sum (61174735) as text '61174735', in opaque bytes"),
    ({"plant_ciphertext": b"9081112346521"},
     "sum of squares (9081112346521) as text '9081112346521', in opaque bytes"),
    *(({"plant_ciphertext": encoding}, f"sum of squares (9081112346521) as {how}, in opaque bytes")
      for how, encoding in fixed_width(9_081_112_346_521).items()),
    ({"plant_ciphertext": struct.pack("<d", 611747.35)},
     "sum (61174735) as float64 little-endian 611747.35, in opaque bytes"),
])
def test_every_planted_encoding_is_found(plant: dict, expect: str) -> None:  # type: ignore[type-arg]
    traffic, _ = wire_traffic(fake_log(**plant))
    assert expect in find_figures(traffic, FIGURES).found


@pytest.mark.parametrize("how", sorted(fixed_width(61_174_735)))
def test_four_significant_bytes_are_searched_only_within_the_budget(how: str) -> None:
    # The sum's fixed-width encodings have four significant bytes: in the
    # fake log's 2.8 kB of ciphertext each matches by chance with p = 6.6e-7,
    # four of them exceed a 1e-6 budget and are skipped (the integer-field
    # check still stands); a caller that accepts 1e-5 gets them searched.
    traffic, _ = wire_traffic(fake_log(plant_ciphertext=fixed_width(61_174_735)[how]))
    strict = find_figures(traffic, FIGURES)
    assert strict.found == [] and any(s.startswith(f"sum (61174735) as {how} (4 significant") for s in strict.skipped)
    assert f"sum (61174735) as {how}, in opaque bytes" in find_figures(traffic, FIGURES, budget=1e-5).found


def test_a_short_figure_in_ciphertext_is_not_called_a_leak_at_the_recorded_size() -> None:
    # b"823" inside 3.2 MB of ciphertexts is a coin toss, not evidence: the
    # search is skipped and says so, and the integer and text checks stand.
    rng = random.Random(11)
    cts = [rng.randbytes(512) for _ in range(RECORDED_OPAQUE_BYTES // 512)]
    cts[100] = b"823" + cts[100][3:]
    traffic = Traffic.of([common_pb2.EncryptedFigures(ciphertexts=cts)])
    report = find_figures(traffic, FIGURES)
    assert report.found == []
    assert "rows (823) as text '823' (3 significant bytes: chance match 1.9e-01)" in report.skipped


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes_of_the_recorded_size_do_not_trigger(seed: int) -> None:
    # A false alarm here has probability at most report.bound (asserted tiny).
    rng = random.Random(seed)
    cts = [rng.randbytes(512) for _ in range(RECORDED_OPAQUE_BYTES // 512)]
    traffic = Traffic.of([common_pb2.EncryptedFigures(ciphertexts=cts)])
    report = find_figures(traffic, FIGURES)
    assert report.found == [] and 0 < report.bound <= 1e-6
    costs = [f"{rng.randrange(-20000, 300000) / 100:.2f}" for _ in range(2000)]
    ids = [f"SM-31{i:06d}" for i in range(2000)]
    values = find_values(traffic, costs + ids)
    assert values.found == [] and values.bound <= 1e-6


def test_raw_values_are_found_in_text_and_in_opaque_bytes() -> None:
    log = fake_log(plant_reason="row SM-31000123 costs 120.50", plant_ciphertext=struct.pack("<d", 14.68))
    traffic, _ = wire_traffic(log)
    found = find_values(traffic, ["SM-31000123", "120.50", "14.68", "77.01"]).found
    assert found == ["'120.50' as text, in datawharf.v1.Job.tasks.reason",
                     "'SM-31000123' as text, in datawharf.v1.Job.tasks.reason",
                     "'14.68' as float64 little-endian, in opaque bytes"]


def test_read_wire_log(tmp_path: Path) -> None:
    path = tmp_path / "wire.jsonl"
    lines = [json.dumps({"at": 0.0, "method": r.method, "caller": r.caller, "direction": r.direction,
                         "type": r.type, "bytes": base64.b64encode(r.raw).decode()}) for r in fake_log()]
    path.write_text("\n".join(lines) + "\n")
    records = read_wire_log(path)
    assert [r.msg for r in records] == [r.msg for r in fake_log()]
