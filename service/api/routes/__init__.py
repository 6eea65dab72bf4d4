"""HTTP routes, one module per area: tasks, predict, admin, and operations."""
