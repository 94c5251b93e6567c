"""Statistics by area over time: kept as events happen, never by scanning the registry."""
