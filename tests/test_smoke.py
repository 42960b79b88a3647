"""The smallest end-to-end check: start, ask all four methods, stop."""

from conftest import HOUR, T0


def test_four_methods_answer(client) -> None:
    assert client.test_connection().ok
    names = [f.field_name for f in client.field_names(start=T0, end=T0 + HOUR).fields]
    assert names[:2] == ["host", "metric"]
    values = client.field_values("host", start=T0, end=T0 + HOUR).values
    assert [v.value for v in values] == ["a-host", "b-host", "c-host"]
    series = client.metrics(host="a-host", metric="cpu.user", start=T0, end=T0 + HOUR)
    assert len(series) == 360 and not series.is_partial
