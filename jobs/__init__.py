"""Job specs, the operation registry, job records and states, error codes."""
