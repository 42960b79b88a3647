"""Conditions, field names and field values: what StackState's stream wizard walks through.

The wizard calls Field Names, then Field Values with what the user typed, then Get
Metric Values, narrowing by the conditions chosen so far. These tests drive the
in-process server with the bodies StackState sends and check the catalog's rules
(README): AND of conditions, InSetValue, first series in catalog order, errors
naming the conditions.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import HOUR, T0
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mirror_wire import (
    FIELD_NAMES,
    FIELD_VALUES,
    METRIC,
    assert_error,
    assert_field_names_shape,
    assert_field_values_shape,
    assert_raw_shape,
    field_names_body,
    field_values_body,
    metrics_body,
    option_values,
    raw_arrays,
)

from mirror_kit import SyntheticSource, create_app
from mirror_kit.protocol import (
    BooleanValue,
    DoubleValue,
    EqualityCondition,
    InSetValue,
    MetricNotFoundError,
    StringValue,
    UnsupportedFieldTypeError,
)
from mirror_kit.sources import LabeledSeries, SeriesCatalog

START, END = T0, T0 + HOUR
SERIES_ORDER = [s.key for s in SyntheticSource().catalog.series]


@pytest.fixture
async def api(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app())


async def post(api: TestClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = await api.post(path, json=body)
    return answer.status, await answer.json()


async def series_answer(api: TestClient, where: dict[str, Any]) -> dict[str, Any]:
    status, body = await post(api, METRIC, metrics_body(START, END, where))
    assert status == 200, body
    assert_raw_shape(body)
    return body


# --- conditions select series ---------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "served"),
    [
        ({"host": "b-host", "metric": "mem.used"}, "b-host/mem.used"),
        ({"cores": 8, "metric": "cpu.system"}, "b-host/cpu.system"),
        ({"production": False, "metric": "net.bytes_in"}, "c-host/net.bytes_in"),
        ({"host": ["c-host", "z-host"], "metric": "cpu.user"}, "c-host/cpu.user"),
        ({"region": "us-east", "metric": "mem.used", "production": False}, "c-host/mem.used"),
        ({"cores": 2.0, "interface": "eth0"}, "c-host/net.bytes_in"),
    ],
    ids=["string", "double", "boolean", "in-set", "and-of-three", "double-and-string"],
)
async def test_each_condition_type_selects_its_series(
    api: TestClient, where: dict[str, Any], served: str
) -> None:
    host, metric = served.split("/")
    exact = await series_answer(api, {"host": host, "metric": metric})
    assert await series_answer(api, where) == exact


async def test_conditions_are_anded(api: TestClient) -> None:
    """host=a-host AND production=false holds for no series, although each alone does."""
    for where in ({"host": "a-host"}, {"production": False}):
        await series_answer(api, where)
    status, body = await post(
        api, METRIC, metrics_body(START, END, {"host": "a-host", "production": False})
    )
    assert status == 404
    assert_error(body, "MetricNotFoundError")


@pytest.mark.parametrize(
    ("where", "first"),
    [
        ({}, "a-host/cpu.user"),
        ({"host": "b-host"}, "b-host/cpu.user"),
        ({"region": "eu-west"}, "a-host/cpu.user"),
        ({"production": False}, "c-host/cpu.user"),
        ({"host": ["c-host", "b-host"]}, "b-host/cpu.user"),
        ({"metric": "mem.used"}, "a-host/mem.used"),
        ({"interface": "eth0"}, "a-host/net.bytes_in"),
    ],
)
async def test_several_series_left_serves_first_in_catalog_order(
    api: TestClient, where: dict[str, Any], first: str
) -> None:
    assert first in SERIES_ORDER
    host, metric = first.split("/")
    several = await series_answer(api, where)
    assert several == await series_answer(api, {"host": host, "metric": metric})
    assert len(raw_arrays(several)[0]) == 360


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"hostname": "a-host"}, "hostname"),
        ({"host": "z-host"}, "z-host"),
        ({"host": "a-host", "metric": "disk.free"}, "disk.free"),
        ({"host": ["y-host", "z-host"]}, "z-host"),
        ({"cores": 3}, "cores"),
    ],
    ids=["unknown-field", "no-such-value", "and-no-match", "in-set-none", "double-none"],
)
async def test_nothing_selected_is_metric_not_found(
    api: TestClient, where: dict[str, Any], named: str
) -> None:
    """A metric query for nothing is 404; field names and values of nothing are empty lists."""
    status, answer = await post(api, METRIC, metrics_body(START, END, where))
    assert status == 404, answer
    assert_error(answer, "MetricNotFoundError")
    assert named in answer["metric"]
    for key in where:
        assert key in answer["metric"], "the conditions are named"
    status, names = await post(api, FIELD_NAMES, field_names_body(START, END, where))
    assert (status, names["fields"], names["isPartial"]) == (200, [], False)
    values = await field_values(api, "region", where=where)
    assert values["values"] == [] and values["isPartial"] is False


@pytest.mark.parametrize(
    "where",
    [{"host": 4.0}, {"host": True}, {"cores": False}],
    ids=["double-on-string", "bool-on-string", "b-on-n"],
)
async def test_type_mismatch_is_unsupported_field_type(
    api: TestClient, where: dict[str, Any]
) -> None:
    status, body = await post(api, METRIC, metrics_body(START, END, where))
    assert status == 400
    assert_error(body, "UnsupportedFieldTypeError")
    assert body["mirrorType"] in ("STRING", "NUMBER", "BOOLEAN")


@pytest.mark.parametrize(
    "metric_field", ["double", "rawValue", "value", "", "cores", "mem.used", "no.such.metric"]
)
async def test_metric_field_is_accepted_and_selects_nothing(
    api: TestClient, metric_field: str
) -> None:
    """Synthetic series have one value each: metricField (what StackState sends on every
    query, sometimes a condition key) is "the source field for metric values", not a name."""
    where = {"host": "b-host", "metric": "cpu.user", "cores": 8.0}
    body = metrics_body(START, END, where)
    body["query"]["metricField"] = metric_field
    status, answer = await post(api, METRIC, body)
    assert status == 200, answer
    assert answer == await series_answer(api, where)


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ({"cores": "4"}, True),
        ({"cores": "4.0"}, True),
        ({"cores": "5"}, False),
        ({"production": "true"}, True),
        ({"production": "yes"}, False),
        ({"cores": ["4.0", "x"]}, True),
    ],
)
async def test_string_values_match_numbers_and_booleans_by_text(
    api: TestClient, where: dict[str, Any], matches: bool
) -> None:
    """StackState's templates carry condition values as strings; CompleteValues are strings."""
    status, answer = await post(api, METRIC, metrics_body(START, END, {"host": "a-host", **where}))
    assert status == (200 if matches else 404), answer


# --- field names ---------------------------------------------------------------------


async def field_names(api: TestClient, where: dict[str, Any], limit: int | None = None) -> Any:
    kwargs = {} if limit is None else {"limit": limit}
    status, body = await post(api, FIELD_NAMES, field_names_body(START, END, where, **kwargs))
    assert status == 200, body
    assert_field_names_shape(body)
    return body


async def test_field_names_and_their_types(api: TestClient) -> None:
    body = await field_names(api, {})
    types = {f["fieldName"]: f["fieldType"] for f in body["fields"]}
    assert types == {
        "host": "STRING",
        "metric": "STRING",
        "region": "STRING",
        "cores": "NUMBER",
        "production": "BOOLEAN",
        "interface": "STRING",
    }
    assert body["isPartial"] is False


@pytest.mark.parametrize(
    ("where", "has_interface"),
    [
        ({"metric": "net.bytes_in"}, True),
        ({"metric": "cpu.user"}, False),
        ({"host": "a-host", "metric": ["cpu.user", "mem.used"]}, False),
        ({"host": "a-host"}, True),
    ],
)
async def test_conditions_narrow_field_names(
    api: TestClient, where: dict[str, Any], has_interface: bool
) -> None:
    names = [f["fieldName"] for f in (await field_names(api, where))["fields"]]
    assert ("interface" in names) is has_interface
    assert {"host", "metric", "region", "cores", "production"} <= set(names)


async def test_field_names_limit_marks_partial(api: TestClient) -> None:
    every = (await field_names(api, {}))["fields"]
    cut = await field_names(api, {}, limit=2)
    assert cut["fields"] == every[:2] and cut["isPartial"] is True
    whole = await field_names(api, {}, limit=len(every))
    assert whole["fields"] == every and whole["isPartial"] is False


# --- field values ----------------------------------------------------------------------


async def field_values(api: TestClient, field: str, **options: Any) -> Any:
    status, body = await post(api, FIELD_VALUES, field_values_body(field, START, END, **options))
    assert status == 200, body
    assert_field_values_shape(body)
    return body


async def test_field_values_of_each_type(api: TestClient) -> None:
    hosts = await field_values(api, "host")
    assert option_values(hosts) == [("CompleteValue", f"{h}-host") for h in "abc"]
    for number in ("NUMBER", "DOUBLE"):
        cores = await field_values(api, "cores", field_type=number)
        assert option_values(cores) == [("CompleteValue", v) for v in ("2", "4", "8")]
    production = await field_values(api, "production", field_type="BOOLEAN")
    assert option_values(production) == [("CompleteValue", "false"), ("CompleteValue", "true")]


async def test_field_value_patterns_refine_to_complete_values(api: TestClient) -> None:
    """``cpu.*`` offered at the top level; picked as the next prefix it gives the values."""
    top = await field_values(api, "metric")
    assert option_values(top) == [
        ("FieldValuePattern", "cpu.*"),
        ("FieldValuePattern", "mem.*"),
        ("FieldValuePattern", "net.*"),
    ]
    for prefix in ("cpu.*", "cpu."):
        deeper = await field_values(api, "metric", prefix=prefix)
        assert option_values(deeper) == [
            ("CompleteValue", "cpu.system"),
            ("CompleteValue", "cpu.user"),
        ]
    assert option_values(await field_values(api, "metric", prefix="c")) == [
        ("FieldValuePattern", "cpu.*")
    ]
    assert option_values(await field_values(api, "host", prefix="b")) == [
        ("CompleteValue", "b-host")
    ]
    assert (await field_values(api, "host", prefix="zz"))["values"] == []


async def test_field_values_follow_other_conditions_not_their_own(api: TestClient) -> None:
    eu = await field_values(api, "host", where={"region": "eu-west", "host": "a-host"})
    assert option_values(eu) == [("CompleteValue", "a-host"), ("CompleteValue", "b-host")]
    net = await field_values(api, "interface", where={"metric": "net.bytes_in"})
    assert option_values(net) == [("CompleteValue", "eth0")]


async def test_field_values_errors(api: TestClient) -> None:
    status, body = await post(api, FIELD_VALUES, field_values_body("nosuch", START, END))
    assert status == 404
    assert_error(body, "MetricNotFoundError")
    status, body = await post(
        api, FIELD_VALUES, field_values_body("cores", START, END, field_type="BOOLEAN")
    )
    assert status == 400
    assert_error(body, "UnsupportedFieldTypeError")


async def test_field_values_offset_limit_and_partial(api: TestClient) -> None:
    every = (await field_values(api, "host"))["values"]
    pages: list[Any] = []
    partial_flags = []
    for offset in range(0, len(every), 2):
        page = await field_values(api, "host", offset=offset, limit=2)
        pages.extend(page["values"])
        partial_flags.append(page["isPartial"])
    assert pages == every
    assert partial_flags == [True, False]
    exact = await field_values(api, "host", offset=1, limit=2)
    assert exact["values"] == every[1:] and exact["isPartial"] is False
    beyond = await field_values(api, "host", offset=10, limit=2)
    assert beyond == {"values": [], "isPartial": False, "_type": "FieldValuesResponse"}
    none = await field_values(api, "host", limit=0)
    assert none["values"] == [] and none["isPartial"] is True


def test_selection_is_the_same_for_equal_condition_sets_and_errors_every_time() -> None:
    catalog = SyntheticSource().catalog
    a_host = (EqualityCondition("host", StringValue("a-host")),)
    cpu = catalog.select(a_host)
    assert [s.labels["metric"] for s in cpu][:2] == ["cpu.user", "cpu.system"]
    assert catalog.select(list(a_host)) == cpu  # a list is the same set
    assert catalog.select(a_host, "double") == cpu
    assert catalog.select(()) == catalog.series
    nowhere = (EqualityCondition("host", StringValue("no-such-host")),)
    for _ in range(2):  # raised every time, never remembered as an answer
        with pytest.raises(MetricNotFoundError):
            catalog.select(nowhere)


# --- the index selects exactly what testing every series would ---------------------------

#: Labels of mixed types on purpose: True == 1.0 in Python, 2.0 reads "2" and "2.0".
MIXED = SeriesCatalog(
    [
        LabeledSeries(f"s{i}", labels)
        for i, labels in enumerate(
            [
                {"host": "a", "n": 1.0, "flag": True, "mixed": True},
                {"host": "b", "n": 2.0, "flag": False, "mixed": 1.0},
                {"host": "a.b", "n": 2.5, "mixed": "1"},
                {"host": "c", "n": 1e17, "flag": True, "mixed": "true"},
                {"n": 0.0, "other": "x"},
            ]
        )
    ]
)
TEXT_LIST = [
    "a",
    "b",
    "a.b",
    "c",
    "z",
    "1",
    "1.0",
    "2",
    "2.0",
    "2.5",
    "true",
    "false",
    "x",
    "0",
    "1e+17",
    "100000000000000000",
]
TEXTS = st.sampled_from(TEXT_LIST)
VALUES = st.one_of(
    TEXTS.map(StringValue),
    st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 1e17]).map(DoubleValue),
    st.booleans().map(BooleanValue),
    st.frozensets(TEXTS, max_size=6).map(InSetValue),
)
CONDITIONS = st.lists(
    st.builds(EqualityCondition, st.sampled_from(sorted(MIXED.fields)), VALUES), max_size=3
)


@settings(max_examples=300, deadline=None)
@given(CONDITIONS)
@example([EqualityCondition("n", StringValue("2.0"))])  # a whole double's second form
@example([EqualityCondition("n", InSetValue(frozenset({"1e+17", "z"})))])
@example([EqualityCondition("mixed", DoubleValue(1.0))])  # 1.0, not True
@example([EqualityCondition("mixed", BooleanValue(True))])  # True, not 1.0
@example([EqualityCondition("mixed", InSetValue(frozenset({"true"})))])
@example([EqualityCondition("host", InSetValue(frozenset(TEXT_LIST)))])  # more than the index
def test_the_index_selects_what_each_condition_matches(
    conditions: list[EqualityCondition],
) -> None:
    expected = tuple(
        s
        for s in MIXED.series
        if all(c.key in s.labels and c.matches(s.labels[c.key]) for c in conditions)
    )
    try:
        chosen = MIXED.select(conditions)
    except UnsupportedFieldTypeError:
        assert any(
            c.value.field_type not in (None, MIXED.fields[c.key].field_type.kind)
            for c in conditions
        )
        return
    except MetricNotFoundError:
        assert expected == ()
        return
    assert chosen == expected
