"""Domain operations over the store: intake of deliveries and the lifecycle of a task."""
