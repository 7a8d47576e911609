"""The bus on Google Cloud Pub/Sub.

- Publishing: one ``PublisherClient`` with message ordering on; the ordering key is the
  cart id. :meth:`PubSubBus.publish` waits for every future before it returns, so the
  poller saves its state only for events Pub/Sub has stored. If a publish fails, the
  client pauses that key (so a later message cannot overtake the failed one); the key is
  resumed and the error raised, and the poller publishes the same events again on its
  next poll.
- Consuming: synchronous pull of at most ``max_messages`` (the consumer's batch size),
  which bounds what one consumer holds: flow control by construction. The consumer holds
  one batch at a time and acks it after the warehouse commit; leases are not extended
  (a streaming pull would extend them behind the consumer's back and hide the lease
  contract of :mod:`.base`). A stop lets the batch in hand finish; nothing is cancelled
  midway, and an unacked batch is redelivered after the ack deadline.
- Acks go through ``acknowledge``; with exactly-once delivery on the subscription an ack
  whose lease expired is refused by the service and not counted.
- Dead letters: the subscription's dead-letter policy moves a message after
  ``max_delivery_attempts``; :meth:`PubSubBus.dead_letter` publishes an invalid message to
  the dead-letter topic with its reason and acks it. The dead-letter topic has its own
  subscription (``<topic>-sub``), or Pub/Sub would drop what reaches it.
- :meth:`PubSubBus.setup` creates what is missing where the identity may (a developer's
  project, the emulator). In production Terraform owns the topics and subscriptions, and
  the pipeline identities cannot create them: a ``PermissionDenied`` there is expected.
- Abilities (:mod:`.base`): setup, and inspection (:meth:`PubSubBus.dead_letters` pulls
  the dead letters and gives them back). No stats: backlog and age live in Cloud
  Monitoring (``subscription/num_undelivered_messages``, ``oldest_unacked_message_age``),
  not in the Pub/Sub data API, so ``bus_stats`` says None and ``stream status`` says n/a.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from ey_platform.bus.base import Message, Received
from ey_platform.errors import BusError
from ey_platform.gcp import api_errors, describe

if TYPE_CHECKING:
    import google.cloud.pubsub_v1 as pubsub_v1

log = logging.getLogger(__name__)

# Pub/Sub bounds the ack deadline to [10, 600] s and the delivery attempts to [5, 100].
_DEADLINE_RANGE = (10, 600)
_ATTEMPTS_RANGE = (5, 100)
_ACK_ATTEMPTS = 3


class PubSubBus:
    """Topic ``topic``, subscription ``subscription``, dead letters to ``dead_letter_topic``
    (kept on ``<dead_letter_topic>-sub``), in ``project``."""

    def __init__(
        self,
        publisher: pubsub_v1.PublisherClient,
        subscriber: pubsub_v1.SubscriberClient,
        project: str,
        topic: str = "carts-events",
        subscription: str = "carts-events-sub",
        dead_letter_topic: str = "carts-events-dlq",
        *,
        ack_deadline: float = 60.0,
        max_delivery_attempts: int = 5,
        exactly_once: bool = True,
        pull_timeout: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.subscriber = subscriber
        self.topic = publisher.topic_path(project, topic)
        self.subscription = subscriber.subscription_path(project, subscription)
        self.dead_letter_topic = publisher.topic_path(project, dead_letter_topic)
        self.dead_letter_subscription = subscriber.subscription_path(
            project, f"{dead_letter_topic}-sub"
        )
        self.ack_deadline = int(_bounded("ack_deadline", ack_deadline, _DEADLINE_RANGE))
        self.max_delivery_attempts = int(
            _bounded("max_delivery_attempts", max_delivery_attempts, _ATTEMPTS_RANGE)
        )
        self.exactly_once = exactly_once
        self.pull_timeout = pull_timeout

    # -- administration -------------------------------------------------------------

    def setup(self) -> None:
        publisher, subscriber = self.publisher, self.subscriber
        with api_errors(BusError, "Pub/Sub setup"):
            for topic in (self.topic, self.dead_letter_topic):
                self._ensure(
                    partial(publisher.get_topic, topic=topic),
                    partial(publisher.create_topic, name=topic),
                    topic,
                )
            dead = {"name": self.dead_letter_subscription, "topic": self.dead_letter_topic}
            self._ensure(
                partial(subscriber.get_subscription, subscription=dead["name"]),
                partial(subscriber.create_subscription, request=dead),
                dead["name"],
            )
            main = {
                "name": self.subscription,
                "topic": self.topic,
                "ack_deadline_seconds": self.ack_deadline,
                "enable_message_ordering": True,
                "enable_exactly_once_delivery": self.exactly_once,
                "dead_letter_policy": {
                    "dead_letter_topic": self.dead_letter_topic,
                    "max_delivery_attempts": self.max_delivery_attempts,
                },
            }
            self._ensure(
                partial(subscriber.get_subscription, subscription=self.subscription),
                partial(subscriber.create_subscription, request=main),
                self.subscription,
            )

    @staticmethod
    def _ensure(get: Callable[[], Any], create: Callable[[], Any], what: str) -> None:
        """Create ``what`` if it is missing; without permission to look, leave it to
        Terraform."""
        from google.api_core.exceptions import AlreadyExists, NotFound, PermissionDenied

        try:
            get()
        except NotFound:
            with contextlib.suppress(AlreadyExists):  # created meanwhile elsewhere
                create()
        except PermissionDenied:
            log.debug("pubsub.setup: no permission to inspect %s; assuming Terraform", what)

    # -- publishing -----------------------------------------------------------------

    def publish(self, messages: Sequence[Message]) -> list[str]:
        return self._publish(self.topic, messages)

    def _publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        pending = [
            self.publisher.publish(topic, m.data, ordering_key=m.ordering_key, **m.attributes)
            for m in messages
        ]
        try:
            return [f.result() for f in pending]
        except Exception as exc:
            for key in {m.ordering_key for m in messages if m.ordering_key}:
                self.publisher.resume_publish(topic, key)
            futures.wait([f for f in pending if not f.done()])
            raise BusError(f"publish to {topic} failed: {describe(exc)}") from exc

    # -- consuming ------------------------------------------------------------------

    def pull(self, max_messages: int) -> list[Received]:
        return self._pull(self.subscription, max_messages)

    def _pull(self, subscription: str, max_messages: int) -> list[Received]:
        from google.api_core.exceptions import DeadlineExceeded

        with api_errors(BusError, f"pull from {subscription}"):
            try:
                response = self.subscriber.pull(
                    subscription=subscription,
                    max_messages=max_messages,
                    timeout=self.pull_timeout,
                )
            except DeadlineExceeded:  # nothing arrived within the timeout
                return []
        return [
            Received(
                ack_id=r.ack_id,
                message_id=r.message.message_id,
                data=r.message.data,
                attributes=dict(r.message.attributes),
                ordering_key=r.message.ordering_key,
                publish_time=_utc(r.message.publish_time),
                # Pub/Sub counts attempts only with a dead-letter policy; 0 means unknown
                delivery_attempt=r.delivery_attempt or 1,
            )
            for r in response.received_messages
        ]

    def ack(self, ack_ids: Sequence[str]) -> int:
        from google.api_core.exceptions import GoogleAPICallError

        pending, acked = list(ack_ids), 0
        for _ in range(_ACK_ATTEMPTS):
            if not pending:
                break
            try:
                self.subscriber.acknowledge(subscription=self.subscription, ack_ids=pending)
            except GoogleAPICallError as exc:
                # With exactly-once delivery the service names each refused ack id:
                # PERMANENT_FAILURE_* (the lease expired: the message will be delivered
                # again and the sink skips what it stored) or TRANSIENT_FAILURE_* (retry).
                refused = ack_failures(exc)
                if refused is None:
                    raise BusError(f"ack on {self.subscription}: {describe(exc)}") from exc
                acked += len(pending) - len(refused)
                pending = [i for i, why in refused.items() if why.startswith("TRANSIENT_")]
                continue
            acked += len(pending)
            pending = []
        return acked

    def nack(self, ack_ids: Sequence[str]) -> None:
        self._give_back(self.subscription, ack_ids)

    def _give_back(self, subscription: str, ack_ids: Sequence[str]) -> None:
        """End the leases now: the messages are delivered again at once."""
        if ack_ids:
            with api_errors(BusError, f"nack on {subscription}"):
                self.subscriber.modify_ack_deadline(
                    subscription=subscription, ack_ids=list(ack_ids), ack_deadline_seconds=0
                )

    def dead_letter(self, received: Received, reason: str) -> None:
        attributes = {
            **received.attributes,
            "dead_letter_reason": reason,
            "delivery_attempts": str(received.delivery_attempt),
            "original_message_id": received.message_id,
        }
        self._publish(
            self.dead_letter_topic,
            [Message(received.data, attributes, received.ordering_key)],
        )
        self.ack([received.ack_id])

    def dead_letters(self, limit: int = 100) -> list[Received]:
        """Look at dead letters without taking them: they are pulled and given back."""
        found = self._pull(self.dead_letter_subscription, limit)
        self._give_back(self.dead_letter_subscription, [m.ack_id for m in found])
        return found

    def close(self) -> None:
        self.publisher.stop()  # sends what is batched, then refuses new messages
        self.subscriber.close()


def _bounded(name: str, value: float, bounds: tuple[int, int]) -> float:
    """``value`` within what Pub/Sub accepts, saying so when it had to move it."""
    low, high = bounds
    if low <= value <= high:
        return value
    moved = min(max(value, low), high)
    log.warning(
        "pubsub: %s=%s is outside Pub/Sub's range %s-%s; using %s", name, value, low, high, moved
    )
    return moved


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), UTC)  # a protobuf Timestamp


def ack_failures(exc: Exception) -> dict[str, str] | None:
    """The ack ids an acknowledge refused, with why (exactly-once delivery), or None if
    the error is about the call, not about ack ids."""
    if getattr(exc, "reason", None) != "EXACTLY_ONCE_ACKID_FAILURE":
        return None
    return {ack_id: str(why) for ack_id, why in dict(getattr(exc, "metadata", {})).items()}
