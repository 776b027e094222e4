"""The simulator and the e2e world deliver webhooks as livekit-server does (`devtools.simulator.webhooks.
deliver`): a connection lost as the request went out, 429 and 5xx are tried again, a 4xx is final."""

from __future__ import annotations

import httpx
import pytest

from devtools.simulator.webhooks import deliver

NO_WAIT = (0.0, 0.0, 0.0, 0.0)  # LiveKit's five tries, without its 1-8 s waits


def answering(*outcomes: int | type[Exception]) -> tuple[httpx.AsyncClient, list[bytes]]:
    """A client whose n-th request gets `outcomes[n]`: a status, or a transport error raised."""
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        outcome = outcomes[len(bodies)]
        bodies.append(request.content)
        if isinstance(outcome, int):
            return httpx.Response(outcome)
        raise outcome("the server closed the connection", request=request)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), bodies


async def send(client: httpx.AsyncClient) -> httpx.Response:
    return await deliver(client, "http://warden/webhook", b'{"id":"EV_1"}', {}, backoff=NO_WAIT)


@pytest.mark.parametrize(
    ("outcomes", "status", "tries"),
    [
        ((httpx.ReadError, 200), 200, 2),  # a kept-alive connection closed under the request
        ((httpx.ConnectError, 503, 429, 200), 200, 4),
        ((503, 503, 503, 503, 503), 503, 5),  # five tries, then the last answer
        ((401,), 401, 1),  # any 4xx is final
        ((501,), 501, 1),
    ],
)
async def test_what_livekit_retries_is_tried_again_and_the_rest_is_final(
    outcomes: tuple[int | type[Exception], ...], status: int, tries: int
) -> None:
    client, bodies = answering(*outcomes)
    async with client:
        assert (await send(client)).status_code == status
    assert bodies == [b'{"id":"EV_1"}'] * tries  # the same event each time: Warden keeps one


async def test_a_connection_lost_on_every_try_is_raised_after_the_fifth() -> None:
    client, bodies = answering(*[httpx.ReadError] * 5)
    async with client:
        with pytest.raises(httpx.ReadError):
            await send(client)
    assert len(bodies) == 5
