"""StackState's Mirror plugin as a load model: what it asks a mirror, and how often.

The figures are StackState's own defaults (MIRROR_API.md, "What real StackState
does"): the Mirror source form's *max active live streams* (200), *max events per
live-stream poll* (10,000), *minimum live-stream polling interval* (60 s) and
*request timeout UI* (15 s); monitors run every 60 s over a 5-minute window with
1-minute means; the stream wizard asks field names, field values and metrics for
the chosen interval (``LAST_1_HOUR`` by default).

Where StackState's documentation is silent the model chooses, and says so here:

* a live stream is a chart of the last hour, asked as ``MEAN`` in 1-minute buckets
  (``stream_method``, ``stream_bucket_ms``), re-asked at the polling interval with
  the window sliding to "now";
* the live streams' first polls are spread evenly over one polling interval, so the
  load is steady rather than one burst a minute;
* a wizard session is five UI requests in a row: field names, the values of the
  first field, field names under that choice, the values of the next field, and the
  raw metrics of the chosen series for the interval;
* the UI timeout is real (wall-clock) time even when the simulated clock runs
  faster: a user waits in real seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


@dataclass(frozen=True, kw_only=True)
class LoadModel:
    """How many of each StackState client there are, and what each one asks."""

    #: live streams being polled (the form's "Max active live streams": 200)
    live_streams: int = 200
    #: seconds between two polls of one live stream (the form's minimum: 60 s)
    poll_interval_s: float = 60.0
    #: the window a live stream shows (the telemetry interval, ``LAST_1_HOUR``)
    stream_window_ms: int = HOUR_MS
    stream_method: str = "MEAN"
    stream_bucket_ms: int = MINUTE_MS
    #: the ``limit`` of a poll (the form's "Max events per live-stream poll")
    max_events_per_poll: int = 10_000
    #: monitors, each asking a 1-minute mean over 5 minutes every ``monitor_interval_s``
    monitors: int = 20
    monitor_interval_s: float = 60.0
    monitor_window_ms: int = 5 * MINUTE_MS
    monitor_bucket_ms: int = MINUTE_MS
    #: stream-wizard sessions, spread over the run
    wizard_sessions: int = 4
    #: the interval the wizard asks metrics for (``LAST_1_HOUR``)
    wizard_window_ms: int = HOUR_MS
    #: StackState abandons a UI request after this many seconds ("Request timeout UI")
    ui_timeout_s: float = 15.0
    #: server-side requests (monitors) wait at most this long
    server_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        counts = {
            "live_streams": self.live_streams,
            "monitors": self.monitors,
            "wizard_sessions": self.wizard_sessions,
        }
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
        periods = {
            "poll_interval_s": self.poll_interval_s,
            "monitor_interval_s": self.monitor_interval_s,
            "ui_timeout_s": self.ui_timeout_s,
            "server_timeout_s": self.server_timeout_s,
        }
        for name, seconds in periods.items():
            if not seconds > 0:
                raise ValueError(f"{name} must be > 0")
        windows = (self.stream_window_ms, self.stream_bucket_ms, self.monitor_window_ms)
        if min(*windows, self.monitor_bucket_ms, self.wizard_window_ms) <= 0:
            raise ValueError("windows and buckets must be > 0 ms")


@dataclass(frozen=True, kw_only=True)
class Clock:
    """Simulated time: ``duration_s`` simulated seconds from ``start_ms``, ``speed``
    simulated seconds per real second (60: an hour of polling in a minute)."""

    start_ms: int
    duration_s: float = 3600.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or not self.speed > 0:
            raise ValueError("duration and speed must be > 0")

    @property
    def real_duration_s(self) -> float:
        return self.duration_s / self.speed

    def now_ms(self, real_elapsed_s: float) -> int:
        """The simulated epoch ms after ``real_elapsed_s`` real seconds."""
        return self.start_ms + int(real_elapsed_s * self.speed * 1000)

    def real_s(self, simulated_s: float) -> float:
        """Real seconds from the start until ``simulated_s`` simulated seconds have passed."""
        return simulated_s / self.speed
