"""OCPI input serializers: one request's validation never leaks into another's."""

from ocpi.modules.bookings.serializers import BookingRequestSerializer

REQUEST = {
    "country_code": "DE", "party_id": "EMS", "request_id": "R-1", "location_id": "LOC1",
    "period": {"start_from": "2026-06-02T08:00:00Z", "end_before": "2026-06-02T09:00:00Z"},
    "authorization_reference": "AUTH-1",
}  # fmt: skip


def test_a_cancellation_relaxing_its_fields_leaves_the_next_request_strict():
    cancel = {"country_code": "DE", "party_id": "EMS", "request_id": "R-1",
              "canceled": {"cancellation_reason": "UNKNOWN", "who_canceled": "EMSP"}}  # fmt: skip
    first = BookingRequestSerializer(data=cancel)
    assert first.is_valid(), first.errors
    second = BookingRequestSerializer(data={k: v for k, v in REQUEST.items() if k != "period"})
    assert not second.is_valid()
    assert set(second.errors) == {"period"}


def test_errors_and_values_do_not_leak_between_instances():
    bad = BookingRequestSerializer(data={**REQUEST, "period": {"start_from": "x", "end_before": 1}})
    good = BookingRequestSerializer(data=REQUEST)
    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert set(bad.errors["period"]) == {"start_from", "end_before"}
    assert good.validated_data["period"]["end_before"].hour == 9


def test_nested_shapes_validate_in_parallel():
    import threading

    token = {"country_code": "DE", "party_id": "EMS", "uid": "U", "type": "RFID",
             "contract_id": "C"}  # fmt: skip
    failures = []

    def validate(n: int) -> None:
        for i in range(200):
            bad = i % 2 == n % 2
            body = {**REQUEST, "tokens": [{**token, "uid": "X" * 37 if bad else f"U{n}-{i}"}]}
            serializer = BookingRequestSerializer(data=body)
            if serializer.is_valid() == bad:
                failures.append((n, i, serializer.errors))
            elif not bad and serializer.validated_data["tokens"][0]["uid"] != f"U{n}-{i}":
                failures.append((n, i, serializer.validated_data))
            elif bad and "uid" not in serializer.errors["tokens"][0]:
                failures.append((n, i, serializer.errors))

    threads = [threading.Thread(target=validate, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
