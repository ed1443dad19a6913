"""The processor role: reads the event log partition by partition and applies it to customers."""
