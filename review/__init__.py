"""Offline review of a stack: its plan, computed by running the real program under Pulumi mocks."""
