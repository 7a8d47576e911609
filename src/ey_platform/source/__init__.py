"""The FakeStore source: the client, a compatible server and its synthetic data."""
