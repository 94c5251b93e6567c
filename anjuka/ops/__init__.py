"""Running the registry: health, readiness and metrics for load balancers and operators."""
