"""The device side: targets (simulators, flashers, farms), the protocol harness, results, profiles."""
