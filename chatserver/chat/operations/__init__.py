"""For operators: health, readiness, metrics, exports, actions."""
