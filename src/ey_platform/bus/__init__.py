"""The message bus between the cart poller and the consumer."""
