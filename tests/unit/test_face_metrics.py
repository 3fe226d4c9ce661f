"""The WebSocket face's and the webhooks' counters: the caller says whether a name is known."""

from prometheus_client import REGISTRY

from circles.metrics import count_rpc
from webhooks.metrics import count_webhook


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_known_method_is_counted_by_name_an_unknown_one_as_unknown() -> None:
    known = {"method": "whoami", "code": "0"}
    unknown = {"method": "unknown", "code": "-32601"}
    before_known, before_unknown = (
        sample("circles_rpc_calls_total", known),
        sample("circles_rpc_calls_total", unknown),
    )
    count_rpc("whoami", 0, known=True)
    count_rpc("whoami", 0, known=True)
    count_rpc("no-such-method", -32601, known=False)
    assert sample("circles_rpc_calls_total", known) == before_known + 2
    assert sample("circles_rpc_calls_total", unknown) == before_unknown + 1
    assert sample("circles_rpc_calls_total", {"method": "no-such-method", "code": "-32601"}) == 0


def test_a_webhook_for_an_unknown_provider_counts_as_unknown() -> None:
    stripe = {"provider": "stripe", "status": "200"}
    unknown = {"provider": "unknown", "status": "404"}
    before_stripe, before_unknown = (
        sample("circles_webhook_requests_total", stripe),
        sample("circles_webhook_requests_total", unknown),
    )
    count_webhook("stripe", 200, known=True)
    count_webhook("nope", 404, known=False)
    assert sample("circles_webhook_requests_total", stripe) == before_stripe + 1
    assert sample("circles_webhook_requests_total", unknown) == before_unknown + 1
